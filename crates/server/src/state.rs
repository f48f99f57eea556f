//! The server's shared state and its engines: one worker thread per
//! workspace owns that workspace's [`Assistant`] (opened on its first job)
//! and runs its jobs in order; handlers reach it through [`AppState::call`] /
//! [`AppState::send`] after taking a slot in the workspace's bounded queue
//! ([`AppState::permit`]). Owns the queues, the per-workspace counters, the
//! workers and their supervision ([`EngineHealth`]).
//!
//! Isolation: a job runs under `catch_unwind`; a panic fails that request
//! only (its caller gets a 500), the workspace's assistant is dropped (a
//! poisoned lock or a half-written state goes with it) and reopened at once
//! on the same worker, and `/api/health` says `degraded` while a reopen
//! fails. Fairness: workspaces never share a worker or a queue, so one
//! workspace's long generation or large ingest cannot starve another's.
//!
//! Never: runs a job of one workspace with another workspace's assistant, or
//! touches an assistant off its worker thread.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tresor_assistant::Assistant;
use tresor_guard::workspace::Workspaces;

use crate::auth::Tokens;
use crate::error::{ApiError, ApiResult};
use crate::limits::{PromptLimits, RateLimiter};
use crate::{ServeError, ServeOptions};

/// A job for a workspace's worker: what to do with that workspace's
/// assistant (or with the error that kept it from opening).
pub(crate) type Work = Box<dyn FnOnce(Result<&mut Assistant, String>) + Send>;

/// Opens a workspace's assistant: (name, data dir) → engine. Runs on the workspace's worker.
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

/// What `/api/health` reports of the engines (numbers only: it is served
/// without a token, so it never names a workspace).
#[derive(Default)]
pub(crate) struct EngineHealth {
    /// Jobs that panicked (each failed its own request only).
    pub panics: AtomicU64,
    /// Workspaces whose assistant is down: it failed to open or to reopen
    /// after a panic (the next job tries again).
    pub down: Mutex<std::collections::HashSet<Arc<str>>>,
    /// Worker threads that ended while their workspace was still served (a bug: never expected).
    pub lost_workers: AtomicU64,
    pub workers: AtomicU64,
}

impl EngineHealth {
    /// `ok`, or `degraded` while a workspace's assistant is down or a worker was lost.
    pub fn status(&self) -> &'static str {
        let down = !self.down.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
        if down || self.lost_workers.load(Ordering::Relaxed) > 0 {
            "degraded"
        } else {
            "ok"
        }
    }
    fn set_down(&self, ws: &Arc<str>, down: bool) {
        let mut d = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if down {
            d.insert(ws.clone());
        } else {
            d.remove(ws);
        }
    }
}

/// The workers, one per workspace, started on the workspace's first job.
struct Engines {
    build: Arc<Mutex<BuildAssistant>>,
    workers: Mutex<HashMap<Arc<str>, std::sync::mpsc::Sender<Work>>>,
    health: Arc<EngineHealth>,
}

#[derive(Clone)]
pub(crate) struct AppState {
    engines: Arc<Engines>,
    max_queue: usize,
    queues: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    pub tokens: Arc<Tokens>,
    pub limiter: Option<Arc<RateLimiter>>,
    /// Failed authentications per client IP (brute-forcing a token).
    pub auth_failures: Arc<RateLimiter>,
    /// Which `Host` / `Origin` may reach the API (DNS rebinding).
    pub hosts: Arc<crate::origin::HostPolicy>,
    pub prompt_limits: PromptLimits,
    pub upload_limit: usize,
    pub started: Instant,
    /// Requests without a valid token (server-wide: they belong to no workspace).
    pub unauthorized: Arc<AtomicU64>,
    counters: Arc<Mutex<HashMap<String, Arc<Counters>>>>,
}

/// A slot in a workspace's engine queue, counted in its in-flight gauge.
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
    /// Opens `opts.workspace`'s assistant on its worker (so a broken set-up
    /// fails now); the other workspaces open on their first request.
    pub fn start(opts: &ServeOptions, build: BuildAssistant) -> Result<AppState, ServeError> {
        let workspaces = Workspaces::new(opts.root.clone());
        let first_dir = workspaces.open(&opts.workspace)?;
        if let Ok(list) = workspaces.list() {
            for w in list {
                if let Ok(dir) = workspaces.open(&w.name) {
                    sweep_uploads(&dir);
                }
            }
        }
        let tokens = Tokens::load(workspaces, &opts.workspace, &opts.token)?;
        let engines = Arc::new(Engines { build: Arc::new(Mutex::new(build)), workers: Mutex::new(HashMap::new()), health: Arc::default() });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        engines
            .send(
                &opts.workspace.as_str().into(),
                &first_dir,
                Box::new(move |a| {
                    let _ = ready_tx.send(a.map(|_| ()));
                }),
            )
            .map_err(ServeError::Engine)?;
        ready_rx.recv().map_err(|e| ServeError::Engine(e.to_string()))?.map_err(ServeError::Engine)?;
        Ok(AppState {
            engines,
            max_queue: opts.max_queue.max(1),
            queues: Arc::default(),
            tokens: Arc::new(tokens),
            limiter: opts.rate_limit.map(|l| Arc::new(RateLimiter::new(l))),
            auth_failures: Arc::new(RateLimiter::new(crate::limits::AUTH_FAILURES)),
            hosts: Arc::new(crate::origin::HostPolicy::new(opts.addr, &opts.allowed_hosts)),
            prompt_limits: opts.prompt_limits,
            upload_limit: opts.upload_limit,
            started: Instant::now(),
            unauthorized: Arc::new(AtomicU64::new(0)),
            counters: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The engines' health (for `/api/health`).
    pub fn health(&self) -> &EngineHealth {
        &self.engines.health
    }

    /// A slot in `ws`'s own engine queue, or 429 when it is full (another
    /// workspace's full queue never blocks this one).
    pub fn permit(&self, ws: &Ws) -> ApiResult<Permit> {
        let queue = self
            .queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(ws.name.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.max_queue)))
            .clone();
        let slot = queue.try_acquire_owned().map_err(|_| {
            ws.counters.rejected.fetch_add(1, Ordering::Relaxed);
            ApiError::busy(self.max_queue)
        })?;
        ws.counters.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(Permit { _slot: slot, counters: ws.counters.clone() })
    }

    pub fn counters(&self, workspace: &str) -> Arc<Counters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner()).entry(workspace.to_string()).or_default().clone()
    }

    /// Sends a job to `ws`'s worker, to run with `ws`'s assistant.
    pub fn send(&self, ws: &Ws, job: Work) -> ApiResult<()> {
        self.engines.send(&ws.name, &ws.dir, job).map_err(ApiError::internal)
    }

    /// Runs `f` with `ws`'s assistant on its worker and waits for its result
    /// (a panic in `f` is a 500 for this request only).
    pub async fn call<T: Send + 'static>(&self, ws: &Ws, f: impl FnOnce(&mut Assistant) -> T + Send + 'static) -> ApiResult<T> {
        let (tx, rx) = oneshot::channel();
        self.send(
            ws,
            Box::new(move |a| {
                let _ = tx.send(a.map(f));
            }),
        )?;
        rx.await.map_err(|_| ApiError::internal("the request failed inside the engine (see the server log); the engine keeps serving"))?.map_err(not_opened)
    }
}

/// Removes what a crash left of plaintext uploads (`uploads/` of a
/// workspace): an upload lives only between its arrival and its ingest.
pub(crate) fn sweep_uploads(dir: &FsPath) {
    let up = dir.join("uploads");
    if up.is_dir() {
        match std::fs::remove_dir_all(&up) {
            Ok(()) => tracing::info!("removed left-over uploads in {}", up.display()),
            Err(e) => tracing::warn!("could not remove left-over uploads in {}: {e}", up.display()),
        }
    }
}

/// The error of a job whose workspace's assistant could not be opened.
pub(crate) fn not_opened(e: String) -> ApiError {
    tracing::error!("a workspace could not be opened: {e}");
    ApiError::internal("the workspace could not be opened (see the server log)")
}

impl Engines {
    /// Queues `job` on the worker of `name` (started now when it has none,
    /// or when its thread is gone).
    fn send(&self, name: &Arc<str>, dir: &FsPath, job: Work) -> Result<(), String> {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        let job = match workers.get(name) {
            Some(tx) => match tx.send(job) {
                Ok(()) => return Ok(()),
                Err(std::sync::mpsc::SendError(job)) => {
                    self.health.lost_workers.fetch_add(1, Ordering::Relaxed);
                    job
                }
            },
            None => job,
        };
        let tx = spawn_worker(name.clone(), dir.to_path_buf(), self.build.clone(), self.health.clone())?;
        tx.send(job).map_err(|_| "the engine worker stopped at once".to_string())?;
        workers.insert(name.clone(), tx);
        Ok(())
    }
}

/// Opens `name`'s assistant with `build`; a panic in `build` is an error.
fn open(build: &Mutex<BuildAssistant>, name: &str, dir: &FsPath) -> Result<Assistant, String> {
    let mut b = build.lock().unwrap_or_else(|p| p.into_inner());
    match catch_unwind(AssertUnwindSafe(|| (*b)(name, dir))) {
        Ok(r) => r,
        Err(p) => Err(format!("opening the workspace panicked: {}", panic_text(&*p))),
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_else(|| "(no message)".into())
}

/// A workspace's worker: opens its assistant on the first job, runs every
/// job under `catch_unwind`, and after a panic drops the assistant and
/// reopens it at once (down in [`EngineHealth`] until that works).
fn spawn_worker(name: Arc<str>, dir: PathBuf, build: Arc<Mutex<BuildAssistant>>, health: Arc<EngineHealth>) -> Result<std::sync::mpsc::Sender<Work>, String> {
    let (tx, rx) = std::sync::mpsc::channel::<Work>();
    let h = health.clone();
    std::thread::Builder::new()
        .name(format!("tresor-engine-{name}"))
        .spawn(move || {
            h.workers.fetch_add(1, Ordering::Relaxed);
            // while this worker lives the workspace is in use: `tresor key rotate` refuses
            let _in_use = match tresor_guard::crypto::hold_in_use(&dir) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(workspace = %name, "cannot mark the workspace in use: {e}");
                    None
                }
            };
            let mut assistant: Option<Assistant> = None;
            let ensure = |assistant: &mut Option<Assistant>| -> Result<(), String> {
                if assistant.is_none() {
                    match open(&build, &name, &dir) {
                        Ok(a) => {
                            tracing::info!(workspace = %name, "opened workspace");
                            *assistant = Some(a);
                            h.set_down(&name, false);
                        }
                        Err(e) => {
                            h.set_down(&name, true);
                            return Err(e);
                        }
                    }
                }
                Ok(())
            };
            while let Ok(job) = rx.recv() {
                if let Err(e) = ensure(&mut assistant) {
                    let _ = catch_unwind(AssertUnwindSafe(|| job(Err(e))));
                    continue;
                }
                let a = assistant.as_mut().expect("opened above");
                if let Err(p) = catch_unwind(AssertUnwindSafe(|| job(Ok(a)))) {
                    tracing::error!(workspace = %name, "a request panicked in the engine: {}; reopening the workspace", panic_text(&*p));
                    let old = assistant.take();
                    let _ = catch_unwind(AssertUnwindSafe(move || drop(old)));
                    h.set_down(&name, true);
                    if let Err(e) = ensure(&mut assistant) {
                        tracing::error!(workspace = %name, "reopening after a panic failed: {e}");
                    }
                    // counted once the workspace's state (reopened or down) is known
                    h.panics.fetch_add(1, Ordering::Relaxed);
                }
            }
            h.workers.fetch_sub(1, Ordering::Relaxed);
        })
        .map_err(|e| format!("cannot start an engine worker: {e}"))?;
    Ok(tx)
}
