//! The action layer of the engine: a message that asks for a tool becomes
//! an action — understood (tresor-tools' `understand`), its arguments
//! filled (the extractor's values, the model under the tool's JSON-Schema
//! grammar for what only a model can write, see `fill.rs`), checked against
//! the schema, and then run at once (read-only tools), held for the user's
//! confirmation (side effects), or held for the arguments still missing,
//! which the next message in the conversation supplies.
//!
//! Owns: which tools are in force (built-ins whose data is imported and the
//! admin policy allows, plus the admin's MCP servers' tools not denied), the
//! order of the steps, the answer text about an action (`reply.rs`), the
//! audit entries of actions (tool, outcome and the arguments' hash, never
//! their values), and the tool result as the answer's cited source.
//! Never: runs a tool suggested by retrieved text (only the user's own
//! message is routed), runs a side effect without the user's yes, executes
//! an action twice (tresor-tools' action store guarantees it), or invents a
//! value the user did not give (it stays `missing`).

mod fill;
mod mcp;
pub mod functions;
pub(crate) mod reply;
#[cfg(test)]
mod tests;

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tresor_kb::lang::Lang;
use tresor_tools::actions::{Action, Executor, Outcome, Status};
use tresor_tools::builtin::ExecCtx;
use tresor_tools::hours::OpeningHours;
use tresor_tools::spec::{builtins, ToolSpec};
use tresor_tools::store::ToolStore;
use tresor_tools::understand::{self, ToolCard};

use crate::engine::{Assistant, AskRequest, Source};
use crate::error::{AssistantError, Result};

pub use fill::FillMode;

/// `[tools]` in assistant.toml.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ToolsConfig {
    /// Off: no message is routed to a tool.
    pub enabled: bool,
    /// Opening hours for `book_appointment` (default Mon–Fri 09:00–17:00, Europe/Berlin).
    pub hours: OpeningHours,
    /// How the model takes part in filling arguments: "grammar" (under the
    /// tool's JSON-Schema grammar; default), "free" (unconstrained, parsed
    /// afterwards — for measuring what the grammar changes) or "off"
    /// (the extractor's values only).
    pub model_arguments: FillMode,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        ToolsConfig { enabled: true, hours: OpeningHours::default(), model_arguments: FillMode::Grammar }
    }
}

/// What `confirm_action` / `decline_action` did, with the sentence to show.
#[derive(Debug, Clone, Serialize)]
pub struct ActionReport {
    pub action: Action,
    /// "executed", "already_done" (nothing ran: the action had ended) or "in_progress".
    pub outcome: Outcome,
    pub message: String,
}

/// One tool turn's result, for the answer.
pub(crate) struct ToolTurn {
    pub text: String,
    pub actions: Vec<Action>,
    pub sources: Vec<Source>,
    /// The tool that answered (its result is the cited source), if any ran.
    pub ran: Option<String>,
    pub reason: String,
    pub model_ms: f64,
}

/// The engine's handle on the tools: the store is opened on first use, and
/// only when an admin imported something (asking never creates it).
#[derive(Default)]
pub(crate) struct ToolLayer {
    store: Option<ToolStore>,
    mcp: mcp::McpTools,
}

/// What running an action may use: the built-ins' context, and the MCP servers for external tools.
struct EngineExec<'a> {
    ctx: ExecCtx,
    specs: &'a [ToolSpec],
    mcp: &'a mcp::McpTools,
}

impl Executor for EngineExec<'_> {
    fn ctx(&self) -> &ExecCtx {
        &self.ctx
    }
    fn spec(&self, tool: &str) -> Option<ToolSpec> {
        self.specs.iter().find(|s| s.name == tool).cloned().or_else(|| tresor_tools::spec::builtin_spec(tool))
    }
    fn call_external(&self, spec: &ToolSpec, args: &Value, timeout: std::time::Duration) -> tresor_tools::error::Result<Value> {
        self.mcp.call(spec, args, timeout)
    }
}

/// The conversation key actions are idempotent within.
pub(crate) fn conversation_key(req: &AskRequest) -> String {
    match req.thread {
        Some(t) => format!("thread:{t}"),
        None => format!("ask:{}", hex::encode(rand_bytes())),
    }
}

fn rand_bytes() -> [u8; 8] {
    use sha2::{Digest, Sha256};
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let h = Sha256::digest(format!("{t}:{}", std::process::id()).as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&h[..8]);
    out
}

fn tool_err(e: tresor_tools::error::ToolError) -> AssistantError {
    AssistantError::Tool(e)
}

impl Assistant {
    /// The workspace's tool store, when an admin has imported tool data (None otherwise).
    pub(crate) fn tool_store(&mut self) -> Result<Option<&ToolStore>> {
        if self.tools.store.is_none() {
            let path = self.data_dir().join(tresor_tools::store::DB_FILE);
            if !path.exists() {
                return Ok(None);
            }
            self.tools.store = Some(ToolStore::open(self.data_dir(), self.key()).map_err(tool_err)?);
        }
        Ok(self.tools.store.as_ref())
    }

    /// The tool store, created when missing (an MCP action needs one to be recorded in).
    fn tool_store_or_create(&mut self) -> Result<&ToolStore> {
        if self.tools.store.is_none() {
            self.tools.store = Some(ToolStore::open(self.data_dir(), self.key()).map_err(tool_err)?);
        }
        Ok(self.tools.store.as_ref().expect("opened above"))
    }

    /// The tools in force: built-ins whose data is imported (tickets need none, once any
    /// tool data exists) and that the admin policy allows, then the tools of the policy's
    /// MCP servers (`SERVER.tool`) that it does not deny.
    pub fn tools(&mut self) -> Result<Vec<ToolSpec>> {
        let policy = self.gate.policy.clone();
        self.tool_store()?;
        in_force(&policy, self.tools.store.as_ref(), &mut self.tools.mcp)
    }

    /// The imported price list's products and SKUs (lower case): a sentence that names one
    /// with an amount of money states a price, which only `price_lookup` may give.
    pub(crate) fn price_catalogue(&mut self) -> Result<Vec<String>> {
        let Some(store) = self.tool_store()? else { return Ok(Vec::new()) };
        let rows = store.prices().map_err(tool_err)?;
        let mut terms: Vec<String> = Vec::new();
        for r in rows {
            for t in [r.sku.to_lowercase(), r.product.to_lowercase()] {
                if t.chars().count() >= 3 {
                    terms.push(t);
                }
            }
        }
        Ok(terms)
    }

    /// MCP servers of the policy that could not be reached, with the reason.
    pub fn mcp_failures(&mut self) -> Vec<(String, String)> {
        let policy = self.gate.policy.clone();
        self.tools.mcp.ensure(&policy);
        self.tools.mcp.failures()
    }

    /// "Now" for this request, in the opening hours' time zone.
    pub(crate) fn tools_now(&self, now: Option<jiff::Timestamp>) -> Result<jiff::Zoned> {
        let tz = tresor_tools::hours::time_zone(&self.config().tools.hours.timezone).map_err(tool_err)?;
        Ok(now.unwrap_or_else(jiff::Timestamp::now).to_zoned(tz))
    }

    /// The action turn for `q`, or None when it needs no tool (or no tool is in force).
    pub(crate) fn tool_turn(&mut self, q: &str, lang: Lang, req: &AskRequest, conversation: &str) -> Result<Option<ToolTurn>> {
        if !self.config().tools.enabled {
            return Ok(None);
        }
        let specs = self.tools()?;
        if specs.is_empty() {
            return Ok(None);
        }
        let now = self.tools_now(req.now)?;
        let cards: Vec<ToolCard> = specs.iter().map(card).collect();
        let store = self.tool_store_or_create()?;
        // a message that answers the question for a missing argument fills the pending action
        let pending = store.list(conversation).map_err(tool_err)?.into_iter().rev().find(|a| a.status == Status::NeedsInput);
        let u = understand::understand(q, &now, &cards);
        if let Some(p) = pending {
            let (more, _) = understand::fill(&p.tool, p.arguments.as_object().unwrap_or(&Map::new()), q, &now);
            let new_tool = u.tool.as_deref().is_some_and(|t| t != p.tool);
            if !more.is_empty() && !new_tool {
                let spec = specs.iter().find(|s| s.name == p.tool).cloned();
                if let Some(spec) = spec {
                    let filled = self.tool_store_or_create()?.fill(&p.id, &spec, Value::Object(more)).map_err(tool_err)?;
                    return self.settle(filled.action, &spec, &specs, lang, req, now, "the message filled a pending action's missing arguments".into(), 0.0).map(Some);
                }
            }
        }
        let Some(tool) = u.tool.clone() else { return Ok(None) };
        let Some(spec) = specs.iter().find(|s| s.name == tool).cloned() else { return Ok(None) };
        let t = Instant::now();
        let args = fill::arguments(self, &spec, q, lang, &u.arguments)?;
        let model_ms = if args.model_ran { t.elapsed().as_secs_f64() * 1e3 } else { 0.0 };
        let reason = format!("tool router: {} ({})", tool, u.route.reason);
        let store = self.tool_store_or_create()?;
        let proposed = match args.value {
            Ok(v) => store.propose(conversation, &spec, v).map_err(tool_err)?.action,
            // the model's unconstrained output did not parse (free mode only): a failed
            // action that is never stored, since nothing can run from it
            Err(e) => malformed(conversation, &spec, e),
        };
        self.settle(proposed, &spec, &specs, lang, req, now, reason, model_ms).map(Some)
    }

    /// Runs a read-only action at once (or a side effect the user said yes to up front),
    /// and words the answer.
    #[allow(clippy::too_many_arguments)]
    fn settle(&mut self, action: Action, spec: &ToolSpec, specs: &[ToolSpec], lang: Lang, req: &AskRequest, now: jiff::Zoned, reason: String, model_ms: f64) -> Result<ToolTurn> {
        let mut action = action;
        self.audit_action("tool.propose", &action, req.actor.as_deref())?;
        // read-only tools run at once unless the admin's `[tools] confirm` names them
        let at_once = spec.is_read_only() && !self.gate.policy.tool_needs_confirmation(&spec.name);
        if action.status == Status::NeedsConfirmation && (at_once || req.yes) {
            let exec = EngineExec { ctx: ExecCtx { now, hours: self.config().tools.hours.clone() }, specs, mcp: &self.tools.mcp };
            let store = self.tools.store.as_ref().expect("the action was proposed in it");
            let t = Instant::now();
            let done = store.confirm(&action.id, &exec as &dyn Executor).map_err(tool_err)?;
            self.record_tool_run(&done.action, t);
            action = done.action;
            self.audit_action("tool.run", &action, req.actor.as_deref())?;
        }
        Ok(turn_for(action, spec, lang, reason, model_ms))
    }

    /// Confirms action `id` and runs it (at most once ever: a second confirm runs nothing and says so).
    pub fn confirm_action(&mut self, id: &str, now: Option<jiff::Timestamp>, actor: Option<&str>) -> Result<ActionReport> {
        let now = self.tools_now(now)?;
        if self.tool_store()?.is_none() {
            return Err(tool_err(tresor_tools::error::ToolError::NoSuchAction(id.to_string())));
        }
        // an MCP action needs its server: the specs connect the policy's servers
        let pending = self.tool_store()?.expect("checked").get(id).map_err(tool_err)?;
        let specs = if tresor_mcp::split_qualified(&pending.tool).is_some() { self.tools()? } else { Vec::new() };
        let exec = EngineExec { ctx: ExecCtx { now, hours: self.config().tools.hours.clone() }, specs: &specs, mcp: &self.tools.mcp };
        let store = self.tools.store.as_ref().expect("checked");
        let t = Instant::now();
        let done = store.confirm(id, &exec as &dyn Executor).map_err(tool_err)?;
        if done.outcome == Outcome::Executed {
            self.record_tool_run(&done.action, t);
            self.audit_action("tool.run", &done.action, actor)?;
        }
        let lang = lang_of_action(&done.action);
        let message = match (done.outcome, done.action.status) {
            (Outcome::AlreadyDone, s) => {
                if lang == Lang::De {
                    format!("Diese Aktion ist bereits abgeschlossen ({s}); es wurde nichts erneut ausgeführt.")
                } else {
                    format!("This action has already ended ({s}); nothing was executed again.")
                }
            }
            (Outcome::InProgress, _) => {
                if lang == Lang::De { "Diese Aktion läuft gerade; es wurde nichts erneut ausgeführt.".into() } else { "This action is running right now; nothing was executed again.".into() }
            }
            (Outcome::Executed, Status::Succeeded) => reply::result(&done.action.tool, done.action.result.as_ref().unwrap_or(&Value::Null), lang),
            (Outcome::Executed, s) => reply::outcome(&done.action.tool, s.as_str(), done.action.error.as_deref(), lang),
        };
        Ok(ActionReport { action: done.action, outcome: done.outcome, message })
    }

    /// Declines action `id` (nothing runs).
    pub fn decline_action(&mut self, id: &str, actor: Option<&str>) -> Result<ActionReport> {
        let store = self.tool_store()?.ok_or_else(|| tool_err(tresor_tools::error::ToolError::NoSuchAction(id.to_string())))?;
        let action = store.decline(id).map_err(tool_err)?;
        self.audit_action("tool.decline", &action, actor)?;
        let message = reply::outcome(&action.tool, "declined", None, lang_of_action(&action));
        Ok(ActionReport { action, outcome: Outcome::Executed, message })
    }

    /// One action by id.
    pub fn action(&mut self, id: &str) -> Result<Action> {
        let store = self.tool_store()?.ok_or_else(|| tool_err(tresor_tools::error::ToolError::NoSuchAction(id.to_string())))?;
        store.get(id).map_err(tool_err)
    }

    /// The tool-action event for the KPIs (tool error rate, latency per tool). A failed
    /// write is logged, not fatal: the action has already run.
    fn record_tool_run(&self, action: &Action, started: Instant) {
        let status = match action.status {
            Status::Succeeded => "ok",
            Status::TimedOut => "timeout",
            _ => "error",
        };
        let error_class = (status != "ok")
            .then(|| action.result.as_ref().and_then(|r| r.get("code")).and_then(Value::as_str).unwrap_or("failed").to_string());
        let conversation = action.conversation.strip_prefix("thread:").and_then(|t| t.parse::<i64>().ok());
        let ev = tresor_telemetry::ToolAction { tool: action.tool.clone(), status: status.into(), latency_ms: started.elapsed().as_secs_f64() * 1e3, error_class };
        if let Err(e) = self.record_tool_action(conversation, None, &ev) {
            tracing::warn!("telemetry: recording the tool action failed: {e}");
        }
    }

    fn audit_action(&self, event: &str, action: &Action, actor: Option<&str>) -> Result<()> {
        let f = action.audit_fields();
        self.audit(event, actor, json!({ "action_id": f.action_id, "tool": f.tool, "source": f.source, "outcome": f.outcome, "argument_hash": f.argument_hash }))
    }
}

/// The failed action of a tool call whose arguments are not a JSON object.
fn malformed(conversation: &str, spec: &ToolSpec, error: String) -> Action {
    Action {
        id: format!("act_{}", &hex::encode(rand_bytes())[..12]),
        tool: spec.name.clone(),
        arguments: json!({}),
        status: Status::Failed,
        result: None,
        error: Some(error),
        missing: Vec::new(),
        conversation: conversation.to_string(),
        source: spec.source.to_string(),
        side_effect: !spec.is_read_only(),
        args_hash: String::new(),
        attempts: 0,
        created: 0,
        updated: 0,
    }
}

/// The tools in force under `policy` (see [`Assistant::tools`]).
fn in_force(policy: &tresor_guard::policy::Policy, store: Option<&ToolStore>, mcp: &mut mcp::McpTools) -> Result<Vec<ToolSpec>> {
    let mut out = Vec::new();
    if let Some(store) = store {
        for spec in builtins() {
            let has_data = match tresor_tools::builtin::data_kind(&spec.name) {
                Some(kind) => store.has_data(kind).map_err(tool_err)?,
                None => true,
            };
            if has_data && policy.tool_allowed(&spec.name) {
                out.push(spec);
            }
        }
    }
    if !policy.mcp_servers().is_empty() {
        mcp.ensure(policy);
        out.extend(mcp.specs(policy));
    }
    Ok(out)
}

/// The tools in force in `data_dir` without building the engine (no model is loaded):
/// what `tresor tools list` prints; MCP servers that could not be reached come back
/// with the reason.
pub fn tools_in_force(data_dir: &std::path::Path, key: &tresor_guard::crypto::WorkspaceKey) -> Result<(Vec<ToolSpec>, Vec<(String, String)>)> {
    let policy = crate::policy::PolicyGate::load(data_dir)?.policy;
    let path = data_dir.join(tresor_tools::store::DB_FILE);
    let store = if path.exists() { Some(ToolStore::open(data_dir, key).map_err(tool_err)?) } else { None };
    let mut mcp = mcp::McpTools::default();
    let specs = in_force(&policy, store.as_ref(), &mut mcp)?;
    Ok((specs, mcp.failures()))
}

fn lang_of_action(a: &Action) -> Lang {
    // the action keeps no language; its arguments' text tells (a ticket's description), else English
    let text: String = a.arguments.as_object().map(|m| m.values().filter_map(Value::as_str).collect::<Vec<_>>().join(" ")).unwrap_or_default();
    if text.split_whitespace().count() >= 3 { crate::text::language(&text) } else { Lang::En }
}

/// The router's view of a tool.
fn card(s: &ToolSpec) -> ToolCard {
    ToolCard {
        name: s.name.clone(),
        description_en: s.description_en.clone(),
        description_de: s.description_de.clone(),
        examples: Vec::new(),
        read_only: s.is_read_only(),
    }
}

/// The answer text, sources and actions of an action as it stands.
fn turn_for(action: Action, spec: &ToolSpec, lang: Lang, reason: String, model_ms: f64) -> ToolTurn {
    let null = Value::Null;
    let mut sources = Vec::new();
    let mut ran = None;
    let text = match action.status {
        Status::NeedsInput => reply::ask_missing(&action.tool, &action.arguments, &action.missing, lang),
        Status::NeedsConfirmation => reply::propose(&action.tool, &action.arguments, lang),
        Status::Succeeded => {
            let r = action.result.as_ref().unwrap_or(&null);
            ran = Some(action.tool.clone());
            sources.push(Source {
                n: 1,
                source: format!("tool:{}", action.tool),
                title: spec.name.clone(),
                heading: String::new(),
                page: None,
                snippet: r.to_string().chars().take(400).collect(),
                chunk_id: 0,
            });
            format!("{} [1]", reply::result(&action.tool, r, lang))
        }
        s => reply::outcome(&action.tool, s.as_str(), action.error.as_deref(), lang),
    };
    ToolTurn { text, actions: vec![action], sources, ran, reason, model_ms }
}
