//! The server's shared state and its engine: one thread owns every
//! workspace's [`Assistant`] (opened on its first job) and runs jobs in
//! order; handlers reach it through [`AppState::call`] / [`AppState::send`]
//! after taking a slot in the bounded queue ([`AppState::permit`]). Owns the
//! queue, the per-workspace counters and the engine thread; never runs a job
//! of one workspace with another workspace's assistant, and never touches an
//! assistant off the engine thread.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tresor_assistant::Assistant;
use tresor_guard::workspace::Workspaces;

use crate::auth::Tokens;
use crate::error::{ApiError, ApiResult};
use crate::limits::{PromptLimits, RateLimiter};
use crate::{ServeError, ServeOptions};

/// A job for the engine thread: the workspace it runs in and what to do with
/// that workspace's assistant (or with the error that kept it from opening).
type Job = (Ws, Work);
/// What a job does with its workspace's assistant.
pub(crate) type Work = Box<dyn FnOnce(Result<&mut Assistant, String>) + Send>;

/// Opens a workspace's assistant: (name, data dir) → engine. Runs on the engine thread.
pub type BuildAssistant = Box<dyn FnMut(&str, &FsPath) -> Result<Assistant, String> + Send>;

/// Counters of one workspace (what its own `/api/metrics` shows).
#[derive(Default)]
pub(crate) struct Counters {
    pub requests: AtomicU64,
    pub rejected: AtomicU64,
    pub rate_limited: AtomicU64,
    pub errors: AtomicU64,
    pub in_flight: AtomicU64,
}

/// The workspace a request runs in (set by [`crate::auth`] from the token).
#[derive(Clone)]
pub(crate) struct Ws {
    pub name: Arc<str>,
    pub dir: Arc<PathBuf>,
    pub counters: Arc<Counters>,
    /// Who asks, as the audit log names it: `token:<sha256 prefix>` (never the token).
    pub actor: Arc<str>,
}

#[derive(Clone)]
pub(crate) struct AppState {
    jobs: std::sync::mpsc::Sender<Job>,
    queue: Arc<Semaphore>,
    max_queue: usize,
    pub tokens: Arc<Tokens>,
    pub limiter: Option<Arc<RateLimiter>>,
    pub prompt_limits: PromptLimits,
    pub upload_limit: usize,
    pub started: Instant,
    /// Requests without a valid token (server-wide: they belong to no workspace).
    pub unauthorized: Arc<AtomicU64>,
    counters: Arc<Mutex<HashMap<String, Arc<Counters>>>>,
}

/// A slot in the engine queue, counted in its workspace's in-flight gauge.
pub(crate) struct Permit {
    _slot: OwnedSemaphorePermit,
    counters: Arc<Counters>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AppState {
    /// Starts the engine thread and opens `opts.workspace`'s assistant on it
    /// (so a broken set-up fails now); the other workspaces open on their
    /// first request.
    pub fn start(opts: &ServeOptions, build: BuildAssistant) -> Result<AppState, ServeError> {
        let workspaces = Workspaces::new(opts.root.clone());
        let first_dir = workspaces.open(&opts.workspace)?;
        let tokens = Tokens::load(workspaces, &opts.workspace, &opts.token)?;
        let jobs = spawn_engine(opts.workspace.clone(), first_dir, build)?;
        Ok(AppState {
            jobs,
            queue: Arc::new(Semaphore::new(opts.max_queue.max(1))),
            max_queue: opts.max_queue.max(1),
            tokens: Arc::new(tokens),
            limiter: opts.rate_limit.map(|l| Arc::new(RateLimiter::new(l))),
            prompt_limits: opts.prompt_limits,
            upload_limit: opts.upload_limit,
            started: Instant::now(),
            unauthorized: Arc::new(AtomicU64::new(0)),
            counters: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// A slot in the engine queue for `ws`, or 429 when the queue is full.
    pub fn permit(&self, ws: &Ws) -> ApiResult<Permit> {
        let slot = self.queue.clone().try_acquire_owned().map_err(|_| {
            ws.counters.rejected.fetch_add(1, Ordering::Relaxed);
            ApiError::busy(self.max_queue)
        })?;
        ws.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(Permit { _slot: slot, counters: ws.counters.clone() })
    }

    pub fn counters(&self, workspace: &str) -> Arc<Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner()).entry(workspace.to_string()).or_default().clone()
    }

    /// Sends a job to the engine thread, to run with `ws`'s assistant.
    pub fn send(&self, ws: &Ws, job: Work) -> ApiResult<()> {
        self.jobs.send((ws.clone(), job)).map_err(|_| ApiError::internal("the engine has stopped"))
    }

    /// Runs `f` with `ws`'s assistant on the engine thread and waits for its result.
    pub async fn call<T: Send + 'static>(&self, ws: &Ws, f: impl FnOnce(&mut Assistant) -> T + Send + 'static) -> ApiResult<T> {
        let (tx, rx) = oneshot::channel();
        self.send(
            ws,
            Box::new(move |a| {
                let _ = tx.send(a.map(f));
            }),
        )?;
        rx.await.map_err(|_| ApiError::internal("the engine dropped the request"))?.map_err(not_opened)
    }
}

/// The error of a job whose workspace's assistant could not be opened.
pub(crate) fn not_opened(e: String) -> ApiError {
    ApiError::internal(format!("the workspace could not be opened: {e}"))
}

/// Spawns the engine thread, opens `first` on it and waits until that is
/// done. The thread ends when every sender of the returned channel is gone.
fn spawn_engine(first: String, first_dir: PathBuf, mut build: BuildAssistant) -> Result<std::sync::mpsc::Sender<Job>, ServeError> {
    let (jobs, rx) = std::sync::mpsc::channel::<Job>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name("tresor-engine".into())
        .spawn(move || {
            let mut open: HashMap<Arc<str>, Assistant> = HashMap::new();
            match build(&first, &first_dir) {
                Ok(a) => {
                    open.insert(first.as_str().into(), a);
                    let _ = ready_tx.send(Ok(()));
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            }
            while let Ok((ws, job)) = rx.recv() {
                if !open.contains_key(&ws.name) {
                    match build(&ws.name, &ws.dir) {
                        Ok(a) => {
                            tracing::info!(workspace = %ws.name, "opened workspace");
                            open.insert(ws.name.clone(), a);
                        }
                        Err(e) => {
                            job(Err(e));
                            continue;
                        }
                    }
                }
                job(Ok(open.get_mut(&ws.name).expect("opened above")));
            }
        })
        .map_err(|e| ServeError::Engine(e.to_string()))?;
    ready_rx.recv().map_err(|e| ServeError::Engine(e.to_string()))?.map_err(ServeError::Engine)?;
    Ok(jobs)
}
