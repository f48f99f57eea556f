//! The action state machine, stored in `tools.sqlite`.
//!
//! ```text
//! proposed ─┬─> needs_input ──(fill)──> needs_confirmation
//!           ├─> needs_confirmation ──(confirm)──> [confirmed] ──> [running] ──> succeeded | failed | timed_out
//!           ├─> failed (invalid arguments)
//!           └─(decline, from needs_input / needs_confirmation)──> declined
//! ```
//! `proposed` and `confirmed` are never stored; `running` is stored only
//! for external (MCP) tools, whose call happens outside any transaction.
//!
//! Owns: idempotency and "at most once". The idempotency key is
//! sha256(conversation, tool, canonical arguments): proposing the same
//! side-effect action again in the same conversation returns the existing
//! one (unless that one was declined or failed). `confirm` runs an action at
//! most once ever: a second confirm executes nothing ([`Outcome::AlreadyDone`]).
//! A built-in side effect (appointment, ticket) is written in the same
//! SQLite transaction as the action's `succeeded`, so a kill at any moment
//! leaves both or neither. An external tool is marked `running` (with the
//! process id) before the call; a later open that finds it `running` and
//! its process gone reports it `failed` ("interrupted; it may have run") and
//! never re-executes it. Transient failures are retried with exponential
//! backoff up to the spec's `retries` attempts; a [`ToolError::Timeout`] ends
//! in `timed_out`. Never: audit entries with argument values (the engine
//! writes the audit log from [`Action::audit_fields`]: tool, outcome and the
//! arguments' hash).

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::builtin::{self, ExecCtx};
use crate::error::{DbCtx, Result, ToolError};
use crate::schema;
use crate::spec::{builtin_spec, SideEffect, ToolSource, ToolSpec, CREATE_TICKET};
use crate::store::{new_id, unix_now, ToolStore};

/// Where an action stands. Serialised in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Proposed,
    NeedsInput,
    NeedsConfirmation,
    Confirmed,
    Running,
    Succeeded,
    Failed,
    Declined,
    TimedOut,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Proposed => "proposed",
            Status::NeedsInput => "needs_input",
            Status::NeedsConfirmation => "needs_confirmation",
            Status::Confirmed => "confirmed",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Declined => "declined",
            Status::TimedOut => "timed_out",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "proposed" => Status::Proposed,
            "needs_input" => Status::NeedsInput,
            "needs_confirmation" => Status::NeedsConfirmation,
            "confirmed" => Status::Confirmed,
            "running" => Status::Running,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "declined" => Status::Declined,
            "timed_out" => Status::TimedOut,
            _ => return None,
        })
    }

    /// No further transition: succeeded, failed, declined, timed_out.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Declined | Status::TimedOut)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One action. Serialises as `{id, tool, arguments, status, result, error,
/// missing}` (the `actions` of `tresor ask --json`); on failure `result`
/// holds the error's details (`code`, and `closest` / `free_slots` where
/// the tool offers alternatives).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    pub id: String,
    pub tool: String,
    pub arguments: Value,
    pub status: Status,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub missing: Vec<String>,
    #[serde(skip)]
    pub conversation: String,
    #[serde(skip)]
    pub source: String,
    #[serde(skip)]
    pub side_effect: bool,
    /// sha256 of the canonical arguments as proposed.
    #[serde(skip)]
    pub args_hash: String,
    #[serde(skip)]
    pub attempts: u32,
    /// Unix seconds.
    #[serde(skip)]
    pub created: i64,
    #[serde(skip)]
    pub updated: i64,
}

/// What the audit log may record of an action: no argument values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditFields {
    pub action_id: String,
    pub tool: String,
    pub source: String,
    /// The status: succeeded, failed, declined, ...
    pub outcome: String,
    /// sha256 (hex) of the canonical arguments.
    pub argument_hash: String,
}

impl Action {
    pub fn audit_fields(&self) -> AuditFields {
        AuditFields {
            action_id: self.id.clone(),
            tool: self.tool.clone(),
            source: self.source.clone(),
            outcome: self.status.as_str().to_string(),
            argument_hash: self.args_hash.clone(),
        }
    }
}

/// The result of [`ToolStore::propose`].
#[derive(Debug, Clone, PartialEq)]
pub struct Proposed {
    pub action: Action,
    /// True when an earlier action with the same idempotency key was returned.
    pub existing: bool,
}

/// What [`ToolStore::confirm`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// This call ran the tool (the action's status says how it ended).
    Executed,
    /// The action had already ended: nothing was executed.
    AlreadyDone,
    /// Another process is executing it right now: nothing was executed.
    InProgress,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Confirmed {
    pub action: Action,
    pub outcome: Outcome,
}

/// What `confirm` needs to run a tool: the built-ins' context, the spec of
/// any tool (built-in by default), and the call of an external tool.
pub trait Executor {
    fn ctx(&self) -> &ExecCtx;

    /// The spec of `tool` (the engine adds its MCP tools).
    fn spec(&self, tool: &str) -> Option<ToolSpec> {
        builtin_spec(tool)
    }

    /// Calls an external tool. Must give up after `timeout` with
    /// [`ToolError::Timeout`], and return [`ToolError::Transient`] only when
    /// the call certainly had no effect (it is retried).
    fn call_external(&self, spec: &ToolSpec, _args: &Value, _timeout: Duration) -> Result<Value> {
        Err(ToolError::UnknownTool(spec.name.clone()))
    }
}

impl Executor for ExecCtx {
    fn ctx(&self) -> &ExecCtx {
        self
    }
}

const INTERRUPTED: &str = "interrupted; it may have run — check before retrying";
const COLUMNS: &str = "id, tool, arguments, status, result, error, missing, conversation, source, side_effect, args_hash, attempts, created, updated";

fn row_action(r: &rusqlite::Row<'_>) -> rusqlite::Result<Action> {
    let json_col = |i: usize| -> rusqlite::Result<Option<Value>> {
        let s: Option<String> = r.get(i)?;
        Ok(s.and_then(|s| serde_json::from_str(&s).ok()))
    };
    let status: String = r.get(3)?;
    Ok(Action {
        id: r.get(0)?,
        tool: r.get(1)?,
        arguments: json_col(2)?.unwrap_or_else(|| json!({})),
        status: Status::parse(&status).unwrap_or(Status::Failed),
        result: json_col(4)?,
        error: r.get(5)?,
        missing: json_col(6)?.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default(),
        conversation: r.get(7)?,
        source: r.get(8)?,
        side_effect: r.get::<_, i64>(9)? != 0,
        args_hash: r.get(10)?,
        attempts: r.get::<_, i64>(11)? as u32,
        created: r.get(12)?,
        updated: r.get(13)?,
    })
}

fn load(conn: &Connection, path: &Path, id: &str) -> Result<Action> {
    conn.query_row(&format!("SELECT {COLUMNS} FROM actions WHERE id = ?1"), params![id], row_action)
        .optional()
        .db(path)?
        .ok_or_else(|| ToolError::NoSuchAction(id.to_string()))
}

/// sha256(conversation, tool, canonical arguments), hex.
pub fn idempotency_key(conversation: &str, tool: &str, args: &Value) -> String {
    let mut h = Sha256::new();
    for part in [conversation, tool, &schema::canonical(args)] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Arguments as kept once an action has ended: a ticket's texts PII-masked
/// like the ticket itself.
fn stored_arguments(tool: &str, args: &Value) -> Value {
    let mut out = args.clone();
    if tool == CREATE_TICKET {
        if let Value::Object(m) = &mut out {
            for k in ["subject", "description"] {
                if let Some(Value::String(s)) = m.get_mut(k) {
                    *s = crate::builtin::mask_pii(s);
                }
            }
        }
    }
    out
}

/// How the checked arguments stand against the schema.
struct Checked {
    args: Value,
    missing: Vec<String>,
    invalid: Vec<String>,
}

fn check(spec: &ToolSpec, raw: Value) -> Result<Checked> {
    let mut args = schema::parse_arguments(&spec.name, raw)?;
    schema::drop_empty(&mut args);
    if spec.is_builtin() {
        builtin::normalise_arguments(&spec.name, &mut args);
    }
    schema::apply_defaults(&spec.schema, &mut args);
    let missing = schema::missing_required(&spec.schema, &args);
    // what was given must be valid; the missing fields are exempt from `required`
    let mut relaxed = spec.schema.clone();
    if let Some(Value::Array(req)) = relaxed.get_mut("required") {
        req.retain(|r| r.as_str().is_some_and(|r| !missing.iter().any(|m| m == r)));
    }
    let invalid = schema::validate(&relaxed, &args).err().unwrap_or_default();
    Ok(Checked { args, missing, invalid })
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(5)).min(2_000))
}

/// Whether the process `pid` still runs (Linux: /proc; elsewhere only our
/// own process counts as alive).
fn pid_alive(pid: i64) -> bool {
    if pid == std::process::id() as i64 {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        false
    }
}

impl ToolStore {
    /// Records a proposed call of `spec` in `conversation` (a thread id or
    /// any stable key of the conversation). `arguments`: an object or a JSON
    /// string of one. Blank values count as not given. The action comes back
    /// as `needs_input` (with `missing`), `needs_confirmation`, or `failed`
    /// (arguments the schema rejects). For a side-effect tool an equal
    /// earlier proposal (same idempotency key, not declined or failed) is
    /// returned instead. Read-only tools always get a new action (running
    /// them twice is harmless and the data may have changed): the engine
    /// confirms those at once.
    pub fn propose(&self, conversation: &str, spec: &ToolSpec, arguments: Value) -> Result<Proposed> {
        let c = check(spec, arguments)?;
        let key = idempotency_key(conversation, &spec.name, &c.args);
        let tx = self.write_tx()?;
        if spec.side_effect == SideEffect::SideEffect {
            let existing = tx
                .query_row(
                    &format!(
                        "SELECT {COLUMNS} FROM actions WHERE idem_key = ?1 AND status NOT IN ('declined', 'failed', 'timed_out')
                         ORDER BY created DESC, rowid DESC LIMIT 1"
                    ),
                    params![key],
                    row_action,
                )
                .optional()
                .db(&self.path)?;
            if let Some(action) = existing {
                tx.commit().db(&self.path)?;
                return Ok(Proposed { action, existing: true });
            }
        }
        let (status, error, result) = if !c.invalid.is_empty() {
            let e = ToolError::InvalidArguments { tool: spec.name.clone(), errors: c.invalid.clone() };
            (Status::Failed, Some(e.to_string()), Some(e.details()))
        } else if !c.missing.is_empty() {
            (Status::NeedsInput, None, None)
        } else {
            (Status::NeedsConfirmation, None, None)
        };
        let id = new_id("act_");
        let now = unix_now();
        let args = if status.is_terminal() { stored_arguments(&spec.name, &c.args) } else { c.args.clone() };
        tx.execute(
            "INSERT INTO actions(id, idem_key, conversation, tool, source, side_effect, arguments, args_hash, status, result, error, missing, created, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
            params![
                id,
                key,
                conversation,
                spec.name,
                spec.source.to_string(),
                (spec.side_effect == SideEffect::SideEffect) as i64,
                args.to_string(),
                schema::arguments_hash(&c.args),
                status.as_str(),
                result.map(|r| r.to_string()),
                error,
                serde_json::to_string(&c.missing).expect("strings serialise"),
                now
            ],
        )
        .db(&self.path)?;
        let action = load(&tx, &self.path, &id)?;
        tx.commit().db(&self.path)?;
        Ok(Proposed { action, existing: false })
    }

    /// Adds the arguments a `needs_input` action lacked (the next message of
    /// the thread): `more` is merged over the stored arguments and the action
    /// is checked again. When the completed action equals an earlier one
    /// (same idempotency key), that one is returned and this one declined.
    pub fn fill(&self, id: &str, spec: &ToolSpec, more: Value) -> Result<Proposed> {
        let current = self.get(id)?;
        if current.status != Status::NeedsInput {
            return Err(ToolError::InvalidTransition { id: id.into(), status: current.status.to_string(), op: "fill in" });
        }
        let more = schema::parse_arguments(&spec.name, more)?;
        let mut merged = current.arguments.clone();
        if let (Value::Object(m), Value::Object(add)) = (&mut merged, more) {
            for (k, v) in add {
                m.insert(k, v);
            }
        }
        let c = check(spec, merged)?;
        let key = idempotency_key(&current.conversation, &spec.name, &c.args);
        if spec.side_effect == SideEffect::SideEffect && c.missing.is_empty() && c.invalid.is_empty() {
            let other: Option<String> = self
                .conn
                .query_row(
                    "SELECT id FROM actions WHERE idem_key = ?1 AND id != ?2 AND status NOT IN ('declined', 'failed', 'timed_out') LIMIT 1",
                    params![key, id],
                    |r| r.get(0),
                )
                .optional()
                .db(&self.path)?;
            if let Some(other) = other {
                self.decline(id)?;
                return Ok(Proposed { action: self.get(&other)?, existing: true });
            }
        }
        let (status, error, result) = if !c.invalid.is_empty() {
            let e = ToolError::InvalidArguments { tool: spec.name.clone(), errors: c.invalid.clone() };
            (Status::Failed, Some(e.to_string()), Some(e.details().to_string()))
        } else if !c.missing.is_empty() {
            (Status::NeedsInput, None, None)
        } else {
            (Status::NeedsConfirmation, None, None)
        };
        let tx = self.write_tx()?;
        let n = tx
            .execute(
                "UPDATE actions SET arguments = ?2, idem_key = ?3, args_hash = ?4, status = ?5, error = ?6, result = ?7, missing = ?8, updated = ?9
                 WHERE id = ?1 AND status = 'needs_input'",
                params![
                    id,
                    c.args.to_string(),
                    key,
                    schema::arguments_hash(&c.args),
                    status.as_str(),
                    error,
                    result,
                    serde_json::to_string(&c.missing).expect("strings serialise"),
                    unix_now()
                ],
            )
            .db(&self.path)?;
        let action = load(&tx, &self.path, id)?;
        tx.commit().db(&self.path)?;
        if n == 0 {
            return Err(ToolError::InvalidTransition { id: id.into(), status: action.status.to_string(), op: "fill in" });
        }
        Ok(Proposed { action, existing: false })
    }

    /// Runs a `needs_confirmation` action, at most once ever. Returns the
    /// action as it ended and whether this call executed it. An action that
    /// already ended is returned untouched with [`Outcome::AlreadyDone`];
    /// `needs_input` and `declined`... see [`Status`]: confirming an action
    /// that lacks arguments is [`ToolError::InvalidTransition`].
    pub fn confirm(&self, id: &str, exec: &dyn Executor) -> Result<Confirmed> {
        let tx = self.write_tx()?;
        let action = load(&tx, &self.path, id)?;
        match action.status {
            s if s.is_terminal() => {
                tx.commit().db(&self.path)?;
                return Ok(Confirmed { action, outcome: Outcome::AlreadyDone });
            }
            Status::Running => {
                tx.commit().db(&self.path)?;
                return Ok(Confirmed { action, outcome: Outcome::InProgress });
            }
            Status::NeedsInput => {
                return Err(ToolError::InvalidTransition { id: id.into(), status: action.status.to_string(), op: "confirm (arguments are missing)" })
            }
            _ => {}
        }
        let spec = exec.spec(&action.tool).filter(|s| s.source.to_string() == action.source);
        let Some(spec) = spec else {
            let e = ToolError::UnknownTool(action.tool.clone());
            finish(&tx, &self.path, &action, Err(&e))?;
            let action = load(&tx, &self.path, id)?;
            tx.commit().db(&self.path)?;
            return Ok(Confirmed { action, outcome: Outcome::Executed });
        };
        let c = check(&spec, action.arguments.clone())?;
        if !c.missing.is_empty() || !c.invalid.is_empty() {
            let e = if c.invalid.is_empty() {
                ToolError::MissingArguments { tool: spec.name.clone(), missing: c.missing }
            } else {
                ToolError::InvalidArguments { tool: spec.name.clone(), errors: c.invalid }
            };
            finish(&tx, &self.path, &action, Err(&e))?;
            let action = load(&tx, &self.path, id)?;
            tx.commit().db(&self.path)?;
            return Ok(Confirmed { action, outcome: Outcome::Executed });
        }
        if spec.is_builtin() {
            self.run_builtin(tx, &action, &spec, &c.args, exec.ctx())
        } else {
            self.run_external(tx, &action, &spec, &c.args, exec)
        }
    }

    /// Built-in: the tool's writes and the action's end in one transaction.
    fn run_builtin(&self, tx: rusqlite::Transaction<'_>, action: &Action, spec: &ToolSpec, args: &Value, ctx: &ExecCtx) -> Result<Confirmed> {
        let attempts = spec.retries.max(1);
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            // an early return drops `tx`, which rolls everything back
            tx.execute_batch("SAVEPOINT tool_run").db(&self.path)?;
            match builtin::execute_on(&tx, &self.path, &spec.name, args, ctx, Some(&action.id)) {
                Ok(v) => {
                    tx.execute_batch("RELEASE tool_run").db(&self.path)?;
                    break Ok(v);
                }
                Err(e) => {
                    tx.execute_batch("ROLLBACK TO tool_run; RELEASE tool_run").db(&self.path)?;
                    if e.is_transient() && attempt < attempts {
                        std::thread::sleep(backoff(attempt));
                        continue;
                    }
                    break Err(e);
                }
            }
        };
        tx.execute("UPDATE actions SET attempts = attempts + ?2 WHERE id = ?1", params![action.id, attempt]).db(&self.path)?;
        finish(&tx, &self.path, action, outcome.as_ref())?;
        let done = load(&tx, &self.path, &action.id)?;
        tx.commit().db(&self.path)?;
        Ok(Confirmed { action: done, outcome: Outcome::Executed })
    }

    /// External: `running` committed before the call, the end after it.
    fn run_external(&self, tx: rusqlite::Transaction<'_>, action: &Action, spec: &ToolSpec, args: &Value, exec: &dyn Executor) -> Result<Confirmed> {
        tx.execute(
            "UPDATE actions SET status = 'running', runner_pid = ?2, updated = ?3 WHERE id = ?1",
            params![action.id, std::process::id() as i64, unix_now()],
        )
        .db(&self.path)?;
        tx.commit().db(&self.path)?;
        let timeout = Duration::from_millis(spec.timeout_ms.max(1));
        let attempts = spec.retries.max(1);
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            let started = std::time::Instant::now();
            match exec.call_external(spec, args, timeout) {
                Err(e) if e.is_transient() && attempt < attempts => std::thread::sleep(backoff(attempt)),
                Err(e) if !matches!(e, ToolError::Timeout { .. }) && started.elapsed() > timeout => {
                    break Err(ToolError::Timeout { tool: spec.name.clone(), ms: spec.timeout_ms })
                }
                other => break other,
            }
        };
        let tx = self.write_tx()?;
        let current = load(&tx, &self.path, &action.id)?;
        if current.status == Status::Running {
            tx.execute("UPDATE actions SET attempts = attempts + ?2 WHERE id = ?1", params![action.id, attempt]).db(&self.path)?;
            finish(&tx, &self.path, action, outcome.as_ref())?;
        }
        let done = load(&tx, &self.path, &action.id)?;
        tx.commit().db(&self.path)?;
        Ok(Confirmed { action: done, outcome: Outcome::Executed })
    }

    /// The engine's usual step: [`ToolStore::propose`], then run it at once
    /// when that is allowed — a read-only tool always, a side-effect tool
    /// only with `confirmed` (`--yes`, or the user already said yes).
    /// Otherwise the action stays `needs_confirmation` / `needs_input`.
    pub fn propose_and_run(&self, conversation: &str, spec: &ToolSpec, arguments: Value, confirmed: bool, exec: &dyn Executor) -> Result<Action> {
        let p = self.propose(conversation, spec, arguments)?;
        if p.action.status == Status::NeedsConfirmation && (spec.is_read_only() || confirmed) {
            return Ok(self.confirm(&p.action.id, exec)?.action);
        }
        Ok(p.action)
    }

    /// Declines an action that has not run (`needs_input`,
    /// `needs_confirmation`). Declining a declined action is a no-op.
    pub fn decline(&self, id: &str) -> Result<Action> {
        let tx = self.write_tx()?;
        let a = load(&tx, &self.path, id)?;
        match a.status {
            Status::Declined => {}
            Status::NeedsInput | Status::NeedsConfirmation | Status::Proposed | Status::Confirmed => {
                let args = stored_arguments(&a.tool, &a.arguments);
                tx.execute(
                    "UPDATE actions SET status = 'declined', arguments = ?2, updated = ?3 WHERE id = ?1",
                    params![id, args.to_string(), unix_now()],
                )
                .db(&self.path)?;
            }
            s => return Err(ToolError::InvalidTransition { id: id.into(), status: s.to_string(), op: "decline" }),
        }
        let a = load(&tx, &self.path, id)?;
        tx.commit().db(&self.path)?;
        Ok(a)
    }

    pub fn get(&self, id: &str) -> Result<Action> {
        load(&self.conn, &self.path, id)
    }

    /// The actions of a conversation, oldest first.
    pub fn list(&self, conversation: &str) -> Result<Vec<Action>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM actions WHERE conversation = ?1 ORDER BY created, rowid"))
            .db(&self.path)?;
        let rows = stmt.query_map(params![conversation], row_action).db(&self.path)?;
        rows.collect::<std::result::Result<_, _>>().db(&self.path)
    }

    /// The most recent actions of every conversation, newest first.
    pub fn recent(&self, limit: usize) -> Result<Vec<Action>> {
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM actions ORDER BY created DESC, rowid DESC LIMIT ?1"))
            .db(&self.path)?;
        let rows = stmt.query_map(params![limit as i64], row_action).db(&self.path)?;
        rows.collect::<std::result::Result<_, _>>().db(&self.path)
    }

    /// Actions left `running` by a process that is gone become `failed`
    /// ("interrupted; it may have run"): never re-executed automatically.
    /// Returns how many. Called by [`ToolStore::open`].
    pub fn recover_interrupted(&self) -> Result<usize> {
        let running: Vec<(String, Option<i64>)> = {
            let mut stmt = self.conn.prepare("SELECT id, runner_pid FROM actions WHERE status = 'running'").db(&self.path)?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).db(&self.path)?;
            rows.collect::<std::result::Result<_, _>>().db(&self.path)?
        };
        let mut n = 0;
        for (id, pid) in running {
            if pid.is_some_and(pid_alive) {
                continue;
            }
            n += self
                .conn
                .execute(
                    "UPDATE actions SET status = 'failed', error = ?2, result = ?3, updated = ?4 WHERE id = ?1 AND status = 'running'",
                    params![id, INTERRUPTED, json!({"code": "interrupted"}).to_string(), unix_now()],
                )
                .db(&self.path)?;
        }
        Ok(n)
    }
}

/// Ends `action` with `outcome` (inside the caller's transaction).
fn finish(conn: &Connection, path: &Path, action: &Action, outcome: std::result::Result<&Value, &ToolError>) -> Result<()> {
    let (status, result, error) = match outcome {
        Ok(v) => (Status::Succeeded, Some(v.clone()), None),
        Err(e @ ToolError::Timeout { .. }) => (Status::TimedOut, Some(e.details()), Some(e.to_string())),
        Err(e) => (Status::Failed, Some(e.details()), Some(e.to_string())),
    };
    let args = stored_arguments(&action.tool, &action.arguments);
    conn.execute(
        "UPDATE actions SET status = ?2, result = ?3, error = ?4, arguments = ?5, missing = '[]', updated = ?6 WHERE id = ?1",
        params![action.id, status.as_str(), result.map(|r| r.to_string()), error, args.to_string(), unix_now()],
    )
    .db(path)?;
    Ok(())
}

/// The source of an action as a [`ToolSource`].
pub fn source_of(action: &Action) -> Option<ToolSource> {
    action.source.parse().ok()
}

#[cfg(test)]
mod tests;
