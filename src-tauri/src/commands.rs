//! The Tauri commands the UI invokes. Each one is a thin call into the
//! engine crates (tresor-assistant, tresor-kb, tresor-models); errors come
//! back to the UI as their full anyhow chain. Blocking work runs on a
//! blocking thread, never on the UI's event loop. Never: answer, retrieval or
//! model logic of its own.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Emitter, Manager, State};
use tresor_assistant::store::Feedback;
use tresor_assistant::tresor_telemetry::{self, DashboardData, Scenario, Simulation, Window};
use tresor_assistant::AskRequest;
use tresor_kb::IngestProgress;
use tresor_models::{Catalog, Check};

use crate::host::Host;
use crate::settings::Settings;

type Res<T> = std::result::Result<T, String>;

fn err(e: anyhow::Error) -> String {
    format!("{e:#}")
}

/// Runs blocking work off the event loop with the app's `Host`.
async fn blocking<T: Send + 'static>(app: AppHandle, f: impl FnOnce(&AppHandle, &Host) -> Result<T> + Send + 'static) -> Res<T> {
    tauri::async_runtime::spawn_blocking(move || {
        let host = app.state::<Host>();
        f(&app, &host)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(err)
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

#[derive(Serialize, ts_rs::TS)]
pub struct AppInfo {
    version: String,
    data_dir: String,
    models_dir: String,
    kbs: Vec<String>,
}

/// The app's version, folders and knowledge bases (names from the data dir:
/// needs no key, so the window does not wait for the unlock).
#[tauri::command]
pub fn app_info(host: State<'_, Host>) -> AppInfo {
    AppInfo {
        version: env!("CARGO_PKG_VERSION").to_string(),
        data_dir: host.data_dir().display().to_string(),
        models_dir: host.models_dir().display().to_string(),
        kbs: tresor_assistant::library::kb_names(host.data_dir()),
    }
}

/// Waits for the data key (unlocked in the background since launch); the
/// error says why it cannot be unlocked (wrong passphrase), which the window shows.
#[tauri::command]
pub async fn unlock(app: AppHandle) -> Res<()> {
    blocking(app, |_, host| host.key().map(|_| ())).await
}

/// The UI calls this once its first screen is painted and its data loaded:
/// the window is interactive. Logs the time since the process started
/// (`RUST_LOG=tresor_desktop=info`; scripts/bench-desktop reads it) and returns it.
#[tauri::command]
pub fn ui_ready() -> f64 {
    let ms = crate::since_start_ms();
    tracing::info!("window ready {ms:.0} ms after start");
    ms
}

/// Loads the engine (embedder, stores) in the background when the user
/// starts typing a question, so the models are not in memory before anyone
/// asks and the first answer does not wait for them either. Returns at once.
#[tauri::command]
pub fn warm_up(app: AppHandle) {
    tauri::async_runtime::spawn_blocking(move || {
        let host = app.state::<Host>();
        if let Err(e) = host.with_engine(|_| Ok(())) {
            tracing::warn!("engine not ready: {e:#}");
        }
    });
}

// ---- chat -------------------------------------------------------------------

#[derive(Clone, Serialize)]
struct Token<'a> {
    request: u64,
    text: &'a str,
}

/// Answers `question` from knowledge base `kb` ("": none, the model answers
/// alone; None: `default` when it exists) inside thread `thread` (a new one when None), streaming
/// the answer text as `tresor://token` events tagged with `request`; returns
/// the full answer (sources, refusal, timings) at the end.
#[tauri::command]
pub async fn ask(app: AppHandle, request: u64, question: String, kb: Option<String>, thread: Option<i64>) -> Res<serde_json::Value> {
    blocking(app, move |app, host| {
        let kb = match kb {
            // "no knowledge base" picked: the model answers alone, ungrounded
            Some(k) if k.is_empty() => None,
            Some(k) => Some(k),
            None => tresor_assistant::library::default_kb(host.data_dir()),
        };
        let thread = match thread {
            Some(t) => t,
            None => {
                let title: String = question.trim().chars().take(60).collect();
                host.threads()?.create_thread(&title, kb.as_deref())?
            }
        };
        let cancel = Arc::new(AtomicBool::new(false));
        *host.cancel.lock().unwrap_or_else(|p| p.into_inner()) = Some(cancel.clone());
        let req = AskRequest { question, kb, thread: Some(thread), cancel: Some(cancel), now: now_from_env()?, ..Default::default() };
        let answer = host.with_engine(|a| {
            Ok(a.answer(&req, &mut |text| {
                let _ = app.emit("tresor://token", Token { request, text });
            })?)
        });
        *host.cancel.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let answer = answer?;
        let mut v = serde_json::to_value(&answer)?;
        v["stopped"] = serde_json::Value::Bool(answer.trace.finish.as_deref() == Some("cancelled"));
        Ok(v)
    })
    .await
}

/// Stops the answer in flight (it keeps what was streamed so far).
#[tauri::command]
pub fn stop_answer(host: State<'_, Host>) -> bool {
    match host.cancel.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        Some(c) => {
            c.store(true, Ordering::Relaxed);
            true
        }
        None => false,
    }
}

/// "Now" for relative dates in tool calls ("tomorrow at 10:30"): `TRESOR_NOW` when set
/// (ISO 8601 with an offset, as the CLI's `--now` / `TRESOR_NOW`), else None (the clock).
pub fn now_from_env() -> Result<Option<jiff::Timestamp>> {
    parse_now(env("TRESOR_NOW").as_deref())
}

fn parse_now(v: Option<&str>) -> Result<Option<jiff::Timestamp>> {
    match v.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Ok(Some(
            s.parse::<jiff::Timestamp>()
                .map_err(|e| anyhow!("TRESOR_NOW `{s}`: expected ISO 8601 with an offset, e.g. 2026-12-07T09:30:00+01:00 ({e})"))?,
        )),
        None => Ok(None),
    }
}

// ---- tools and actions ------------------------------------------------------------

/// What confirming or declining an action did: the action as it stands now, "executed" |
/// "already_done" | "in_progress", and the sentence to show.
#[derive(Serialize, ts_rs::TS)]
pub struct ActionReportView {
    #[ts(type = "{ id: string, tool: string, arguments: Record<string, unknown>, status: 'needs_input' | 'needs_confirmation' | 'succeeded' | 'failed' | 'declined' | 'timed_out', result: unknown, error: string | null, missing: Array<string> }")]
    action: serde_json::Value,
    #[ts(type = "'executed' | 'already_done' | 'in_progress'")]
    outcome: String,
    message: String,
}

fn report_view(r: tresor_assistant::ActionReport) -> Result<ActionReportView> {
    let outcome = serde_json::to_value(r.outcome)?.as_str().unwrap_or_default().to_string();
    Ok(ActionReportView { action: serde_json::to_value(&r.action)?, outcome, message: r.message })
}

/// The user approved action `id` (the confirmation card's button): runs it, at most once ever.
#[tauri::command]
pub async fn confirm_action(app: AppHandle, id: String) -> Res<ActionReportView> {
    blocking(app, move |_, host| {
        let now = now_from_env()?;
        report_view(host.with_engine(|a| Ok(a.confirm_action(&id, now, None)?))?)
    })
    .await
}

/// The user declined action `id`: nothing runs.
#[tauri::command]
pub async fn decline_action(app: AppHandle, id: String) -> Res<ActionReportView> {
    blocking(app, move |_, host| report_view(host.with_engine(|a| Ok(a.decline_action(&id, None)?))?)).await
}

/// Action `id` as it stands now (a stored conversation's card shows its current state:
/// approved or declined since the answer).
#[tauri::command]
pub async fn get_action(app: AppHandle, id: String) -> Res<serde_json::Value> {
    blocking(app, move |_, host| Ok(serde_json::to_value(host.with_engine(|a| Ok(a.action(&id)?))?)?)).await
}

/// A tool in force, for the tools screen.
#[derive(Serialize, ts_rs::TS)]
pub struct ToolView {
    name: String,
    description: String,
    description_de: String,
    /// The arguments' JSON Schema.
    #[ts(type = "Record<string, unknown>")]
    schema: serde_json::Value,
    #[ts(type = "'read_only' | 'side_effect'")]
    side_effect: String,
    /// "builtin" or "mcp:SERVER".
    source: String,
}

/// The tools in force (built-ins whose data is imported and the policy allows, MCP tools).
#[tauri::command]
pub async fn list_tools(app: AppHandle) -> Res<Vec<ToolView>> {
    blocking(app, |_, host| {
        let specs = host.with_engine(|a| Ok(a.tools()?))?;
        specs
            .into_iter()
            .map(|s| {
                let v = serde_json::to_value(&s)?;
                Ok(ToolView {
                    name: s.name,
                    description: s.description_en,
                    description_de: s.description_de,
                    schema: s.schema,
                    side_effect: v["side_effect"].as_str().unwrap_or_default().to_string(),
                    source: s.source.to_string(),
                })
            })
            .collect()
    })
    .await
}

/// What a tool data import did: rows imported and rows it replaced.
#[derive(Serialize, ts_rs::TS)]
pub struct ToolImportView {
    #[ts(type = "'prices' | 'orders' | 'calendar'")]
    kind: String,
    file: String,
    rows: usize,
    replaced: usize,
}

/// Imports a tool data file (kind prices | orders | calendar) into the app's tool store,
/// audited as the OS user's (`tools.import`), like knowledge-base changes.
#[tauri::command]
pub async fn import_tool_data(app: AppHandle, kind: String, path: String) -> Res<ToolImportView> {
    blocking(app, move |_, host| {
        let path = PathBuf::from(path.trim());
        if !path.is_absolute() {
            bail!("{} is not an absolute path", path.display());
        }
        let r = tresor_assistant::tools_data::import(host.data_dir(), host.key()?, crate::host::DESKTOP_WORKSPACE, None, &kind, &path)?;
        Ok(ToolImportView { kind: r.kind, file: r.file, rows: r.rows, replaced: r.replaced })
    })
    .await
}

/// What the tools booked and opened: appointments and tickets (the tools screen's lists).
#[derive(Serialize, ts_rs::TS)]
pub struct ToolRecords {
    #[ts(type = "Array<{ appointment_id: string, action_id: string | null, date: string, time: string, duration_minutes: number, topic: string | null, start: string, end: string, created: string }>")]
    appointments: Vec<tresor_tools::store::Appointment>,
    #[ts(type = "Array<{ ticket_id: string, action_id: string | null, subject: string, description: string, priority: string, created: string }>")]
    tickets: Vec<tresor_tools::store::Ticket>,
}

#[tauri::command]
pub async fn tool_records(app: AppHandle) -> Res<ToolRecords> {
    blocking(app, |_, host| {
        let store = tresor_tools::store::ToolStore::open(host.data_dir(), host.key()?)?;
        Ok(ToolRecords { appointments: store.appointments()?, tickets: store.tickets()? })
    })
    .await
}

// ---- threads and feedback ----------------------------------------------------

#[tauri::command]
pub async fn threads_list(app: AppHandle) -> Res<Vec<tresor_assistant::store::ThreadInfo>> {
    blocking(app, |_, host| Ok(host.threads()?.threads()?)).await
}

#[tauri::command]
pub async fn thread_messages(app: AppHandle, id: i64) -> Res<Vec<tresor_assistant::store::StoredMessage>> {
    blocking(app, move |_, host| Ok(host.threads()?.messages(id)?)).await
}

#[tauri::command]
pub async fn thread_create(app: AppHandle, title: String, kb: Option<String>) -> Res<i64> {
    blocking(app, move |_, host| Ok(host.threads()?.create_thread(&title, kb.as_deref())?)).await
}

#[tauri::command]
pub async fn thread_rename(app: AppHandle, id: i64, title: String) -> Res<()> {
    blocking(app, move |_, host| Ok(host.threads()?.rename_thread(id, &title)?)).await
}

#[tauri::command]
pub async fn thread_delete(app: AppHandle, id: i64) -> Res<()> {
    blocking(app, move |_, host| Ok(host.threads()?.delete_thread(id)?)).await
}

/// The engine's handoff desk for this data dir (no model is loaded).
fn desk(host: &Host) -> Result<tresor_assistant::HandoffDesk> {
    Ok(tresor_assistant::HandoffDesk::open(host.data_dir(), host.key()?)?)
}

/// Thumbs (+1/-1) on an answer, or a CSAT score (1-5) on a thread (once per thread): the engine's
/// `feedback`, the same call as the CLI's and the API's; `offer_handoff` after a negative rating.
#[tauri::command]
pub async fn feedback(app: AppHandle, feedback: Feedback) -> Res<tresor_assistant::FeedbackOutcome> {
    blocking(app, move |_, host| Ok(desk(host)?.desk().feedback(&feedback)?)).await
}

/// Hands the thread to a human: the engine makes the ticket (personal data masked) and delivers it
/// to the configured target (docs/handoff.md); the receipt's `message` says what happens next.
#[tauri::command]
pub async fn handoff(app: AppHandle, thread: i64, note: String) -> Res<tresor_assistant::HandoffReceipt> {
    blocking(app, move |_, host| {
        let req = tresor_assistant::HandoffRequest { conversation_id: Some(thread), reason: Some(note), ..Default::default() };
        Ok(desk(host)?.desk().create(&req)?)
    })
    .await
}

// ---- dashboard ------------------------------------------------------------------

/// The last `since` (`7d`, `30d`, `90d`: the forms `tresor kpi --since` takes) up to now.
fn window_since(since: &str) -> Result<Window> {
    Ok(Window { since: Some(tresor_telemetry::time::parse_time(since)?), until: None })
}

/// Everything the dashboard screen shows over the last `since`: the engine's dashboard data (tiles with their
/// trend against the window before, daily series, stage latency, content gaps, tool errors).
#[tauri::command]
pub async fn dashboard(app: AppHandle, since: String) -> Res<DashboardData> {
    blocking(app, move |_, host| {
        let w = window_since(&since)?;
        host.with_engine(|a| Ok(a.dashboard(w)?))
    })
    .await
}

/// The simulator's sliders; null keeps the measured value (`tresor simulate`'s flags).
#[derive(Debug, Deserialize, ts_rs::TS)]
pub struct ScenarioInput {
    /// Conversations per day.
    volume_per_day: Option<f64>,
    /// Added to the measured containment rate (−0.1: ten points less).
    containment_delta: f64,
    /// 0–1.
    cache_hit_rate: Option<f64>,
    /// Share of each model among the answers that are not cache hits.
    model_mix: Option<BTreeMap<String, f64>>,
}

/// The cost simulator over the events of the last `since`: measured baseline, the scenario, every assumption.
#[tauri::command]
pub async fn simulate(app: AppHandle, since: String, scenario: ScenarioInput) -> Res<Simulation> {
    blocking(app, move |_, host| {
        let w = window_since(&since)?;
        if scenario.volume_per_day.is_some_and(|v| !(v >= 0.0 && v.is_finite())) {
            bail!("the volume must be a number of conversations per day, 0 or more");
        }
        let scenario = Scenario {
            volume_per_day: scenario.volume_per_day,
            containment_delta: scenario.containment_delta,
            cache_hit_rate: scenario.cache_hit_rate,
            model_mix: scenario.model_mix.map(|m| m.into_iter().collect()),
        };
        host.with_engine(|a| Ok(a.simulate(&w, &scenario)?))
    })
    .await
}

/// The user closed the conversation (`reason` closed) or it sat idle (`idle`): whether to ask for CSAT now.
#[tauri::command]
pub async fn conversation_end(app: AppHandle, thread: i64, reason: Option<String>) -> Res<tresor_assistant::EndOutcome> {
    blocking(app, move |_, host| Ok(desk(host)?.desk().end(thread, reason.as_deref().unwrap_or("closed"))?)).await
}

/// The engine's idle timeout (`[handoff] idle_timeout_secs` of the data dir's assistant.toml, 0: off):
/// the chat screen's idle timer (ui/src/lib/idle.ts) ends a conversation as `idle` after it.
#[tauri::command]
pub async fn idle_timeout(app: AppHandle) -> Res<u64> {
    blocking(app, move |_, host| Ok(tresor_assistant::AssistantConfig::load(host.data_dir())?.handoff.idle_timeout_secs)).await
}

// ---- knowledge bases ------------------------------------------------------------

#[derive(Serialize, ts_rs::TS)]
pub struct KbView {
    name: String,
    documents: usize,
    chunks: usize,
    files: Vec<tresor_kb::DocInfo>,
}

#[tauri::command]
pub async fn kb_list(app: AppHandle) -> Res<Vec<KbView>> {
    blocking(app, |_, host| {
        Ok(host
            .library()?
            .summaries()?
            .into_iter()
            .map(|k| KbView { name: k.name, documents: k.documents, chunks: k.chunks, files: k.files })
            .collect())
    })
    .await
}

#[derive(Clone, Serialize, ts_rs::TS)]
pub struct IngestEvent {
    kb: String,
    #[ts(type = "'start' | 'file' | 'advance' | 'finish'")]
    phase: &'static str,
    file: Option<String>,
    files: usize,
    bytes_total: u64,
    bytes_done: u64,
    chunks: usize,
}

/// Ingest progress as `tresor://ingest` events.
struct Progress {
    app: AppHandle,
    state: std::sync::Mutex<IngestEvent>,
}

impl Progress {
    fn new(app: &AppHandle, kb: &str) -> Progress {
        let state = IngestEvent { kb: kb.to_string(), phase: "start", file: None, files: 0, bytes_total: 0, bytes_done: 0, chunks: 0 };
        Progress { app: app.clone(), state: std::sync::Mutex::new(state) }
    }

    fn send(&self, f: impl FnOnce(&mut IngestEvent)) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s);
        let _ = self.app.emit("tresor://ingest", s.clone());
    }
}

impl IngestProgress for Progress {
    fn start(&self, files: usize, bytes: u64) {
        self.send(|s| {
            s.phase = "start";
            s.files = files;
            s.bytes_total = bytes;
        });
    }
    fn file(&self, source: &str) {
        self.send(|s| {
            s.phase = "file";
            s.file = Some(source.to_string());
        });
    }
    fn advance(&self, bytes: u64, chunks: usize) {
        self.send(|s| {
            s.phase = "advance";
            s.bytes_done += bytes;
            s.chunks += chunks;
        });
    }
    fn finish(&self) {
        self.send(|s| s.phase = "finish");
    }
}

/// Adds files or folders to knowledge base `kb` (created when new); progress
/// as events, per-file failures in the returned report.
#[tauri::command]
pub async fn kb_add(app: AppHandle, kb: String, paths: Vec<String>) -> Res<tresor_kb::IngestReport> {
    blocking(app, move |app, host| {
        if paths.is_empty() {
            bail!("no folder or file given");
        }
        let paths: Vec<PathBuf> = paths.iter().map(|p| PathBuf::from(p.trim())).collect();
        for p in &paths {
            if !p.is_absolute() {
                bail!("{} is not an absolute path", p.display());
            }
            if !p.exists() {
                bail!("{} does not exist", p.display());
            }
        }
        let progress = Progress::new(app, &kb);
        host.with_engine(|a| Ok(a.ingest(&kb, &paths, None, &progress)?))
    })
    .await
}

/// Deletes knowledge base `kb` (its store only; the original files stay).
#[tauri::command]
pub async fn kb_remove(app: AppHandle, kb: String) -> Res<()> {
    blocking(app, move |_, host| {
        // the engine closes the store it may hold open, then deletes it (audited)
        host.with_engine(|a| Ok(a.remove_kb(&kb, None)?))
    })
    .await
}

/// Re-indexes knowledge base `kb`: picks up changed, new and deleted files
/// under its documents' folders, then rebuilds the full-text and vector indexes.
#[tauri::command]
pub async fn kb_reindex(app: AppHandle, kb: String) -> Res<tresor_kb::IngestReport> {
    blocking(app, move |app, host| {
        let progress = Progress::new(app, &kb);
        host.with_engine(|a| Ok(a.reindex(&kb, None, &progress)?))
    })
    .await
}

#[derive(Serialize, ts_rs::TS)]
pub struct SourceView {
    source: String,
    exists: bool,
    chunks: Vec<ChunkView>,
}

#[derive(Serialize, ts_rs::TS)]
pub struct ChunkView {
    id: i64,
    heading: String,
    page: Option<u32>,
    text: String,
}

/// A cited document's passages (the UI highlights the cited one).
#[tauri::command]
pub async fn kb_source(app: AppHandle, kb: String, source: String) -> Res<SourceView> {
    blocking(app, move |_, host| {
        let store = host.library()?.open(&kb)?;
        let chunks = store
            .chunks_of(&source)?
            .into_iter()
            .map(|c| ChunkView { id: c.id, heading: c.heading, page: c.page, text: c.text })
            .collect();
        Ok(SourceView { exists: PathBuf::from(&source).is_file(), source, chunks })
    })
    .await
}

/// Opens an ingested document with the desktop's default application
/// (only sources of a knowledge base, never an arbitrary path).
#[tauri::command]
pub async fn open_source(app: AppHandle, kb: String, source: String) -> Res<()> {
    blocking(app, move |app, host| {
        let store = host.library()?.open(&kb)?;
        if store.document_sha(&source)?.is_none() {
            bail!("{source} is not a document of knowledge base `{kb}`");
        }
        if !std::path::Path::new(&source).is_file() {
            bail!("{source} is no longer there (moved or deleted since it was added); re-index knowledge base `{kb}`");
        }
        use tauri_plugin_opener::OpenerExt;
        app.opener().open_path(&source, None::<&str>).map_err(|e| anyhow!("opening {source}: {e}"))
    })
    .await
}

// ---- models ---------------------------------------------------------------------

#[derive(Serialize, ts_rs::TS)]
pub struct ModelView {
    id: String,
    name: Option<String>,
    role: String,
    status: String,
    usable: bool,
    size: Option<u64>,
    size_text: String,
    #[ts(type = "'verified' | 'unknown' | 'mismatch' | 'missing'")]
    checksum: String,
    pullable: bool,
    hint: String,
}

#[tauri::command]
pub async fn models_list(app: AppHandle) -> Res<Vec<ModelView>> {
    blocking(app, |_, host| {
        let catalog = Catalog::load(host.models_dir())?;
        let results = tresor_models::verify_with(host.models_dir(), Check::Cached, false)?;
        Ok(results
            .into_iter()
            .filter_map(|r| {
                let m = catalog.get(&r.id)?;
                let checksum = if r.files.iter().any(|f| f.state.is_bad()) {
                    "mismatch"
                } else if r.files.iter().all(|f| f.state == tresor_models::FileState::Ok) {
                    "verified"
                } else if r.files.iter().all(|f| f.state.is_present()) {
                    "unknown"
                } else {
                    "missing"
                };
                let size = m.total_size();
                Some(ModelView {
                    id: r.id.clone(),
                    name: m.name.clone(),
                    role: r.role.as_str().to_string(),
                    status: r.status.as_str().to_string(),
                    usable: r.status.is_usable(),
                    size,
                    size_text: size.map(tresor_models::human_size).unwrap_or_default(),
                    checksum: checksum.to_string(),
                    pullable: m.hub().is_some(),
                    hint: m.install_hint(),
                })
            })
            .collect())
    })
    .await
}

#[derive(Clone, Serialize, ts_rs::TS)]
pub struct PullEvent {
    id: String,
    bytes: u64,
    total: Option<u64>,
}

/// Downloads a hub model (the only network use of the app, and only on this
/// explicit request); progress as `tresor://pull` events.
#[tauri::command]
pub async fn model_pull(app: AppHandle, id: String) -> Res<String> {
    blocking(app, move |app, host| {
        let catalog = Catalog::load(host.models_dir())?;
        let model = catalog.require(&id)?.clone();
        let total = model.total_size();
        let partials: Vec<PathBuf> = model.files.iter().map(|f| tresor_models::partial_path(&catalog.file_path(&f.path))).collect();
        let done = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (done, app, id) = (done.clone(), app.clone(), id.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let bytes = partials.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
                    let _ = app.emit("tresor://pull", PullEvent { id: id.clone(), bytes, total });
                    std::thread::sleep(Duration::from_millis(250));
                }
            })
        };
        let r = tresor_models::pull_model(host.models_dir(), &id, &tresor_models::PullOptions::default());
        done.store(true, Ordering::Relaxed);
        let _ = watcher.join();
        let path = r.map_err(|e| {
            let msg = format!("{e:#}");
            if is_offline(&msg) {
                anyhow!("offline: no network connection to the model hub ({msg})")
            } else {
                anyhow!(msg)
            }
        })?;
        host.reset();
        Ok(path.display().to_string())
    })
    .await
}

/// The hub could not be reached at all (tresor-models' `HubOffline`: no route,
/// DNS, refused): the UI shows its offline message. A transfer that broke off
/// part-way (`Interrupted`: "stopped after N bytes", resumable) is not offline:
/// its own message is shown.
pub fn is_offline(msg: &str) -> bool {
    msg.contains("cannot reach ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn tresor_now_parses_like_the_cli() {
        assert_eq!(super::parse_now(None).unwrap(), None);
        assert_eq!(super::parse_now(Some("  ")).unwrap(), None);
        let t = super::parse_now(Some("2026-12-07T09:30:00+01:00")).unwrap().unwrap();
        assert_eq!(t.to_string(), "2026-12-07T08:30:00Z");
        let e = super::parse_now(Some("tomorrow")).unwrap_err().to_string();
        assert!(e.contains("TRESOR_NOW `tomorrow`"), "{e}");
    }

    #[test]
    fn only_an_unreachable_hub_is_offline() {
        let unreachable = tresor_models::ModelsError::HubOffline {
            endpoint: "http://127.0.0.1:9".into(),
            what: "a/b (revision main)".into(),
            url: "http://127.0.0.1:9/a/resolve/main/b".into(),
            dest: "/m/b".into(),
            detail: "Connection Failed: Connect error: Connection refused".into(),
        };
        assert!(super::is_offline(&unreachable.to_string()));
        let broken = tresor_models::ModelsError::Interrupted {
            url: "http://127.0.0.1:9/a/resolve/main/b".into(),
            partial: "/m/b.partial".into(),
            got: 131072,
            total: "100000000".into(),
            detail: "Connection reset by peer".into(),
        };
        assert!(!super::is_offline(&broken.to_string()), "a broken transfer is reported as it is, with its resume hint");
    }
}

// ---- settings and policy ------------------------------------------------------------

#[tauri::command]
pub async fn settings_get(app: AppHandle) -> Res<Settings> {
    blocking(app, |_, host| Settings::load(host.data_dir(), &env)).await
}

#[tauri::command]
pub async fn settings_set(app: AppHandle, settings: Settings) -> Res<Settings> {
    blocking(app, move |_, host| {
        settings.save(host.data_dir())?;
        Ok(settings)
    })
    .await
}

/// The admin policy in force, read-only.
#[tauri::command]
pub async fn policy_view(app: AppHandle) -> Res<crate::policy::PolicyView> {
    blocking(app, |_, host| crate::policy::view(host.data_dir())).await
}
