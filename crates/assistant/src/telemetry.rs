//! The engine's side of the measurement layer (tresor-telemetry): the
//! message event of every answer (written by the record step of `answer`
//! and of a policy refusal), and the facade methods the doors call for what
//! happens after an answer — an explicit resolution, a tool call (feedback,
//! handoffs and the end of a conversation are `handoff/`'s) — plus the KPIs,
//! the dashboard data and the cost simulator over the workspace's events.
//!
//! Owns: turning an [`Answer`] into a [`Message`] event and the facade
//! methods. Never: a KPI formula or the event schema (tresor-telemetry's),
//! or a door's flags.

use sha2::{Digest, Sha256};
use tresor_telemetry::{Event, EventKind, EventStore, Message, Outcome, ToolAction, Window};

use crate::engine::{Answer, AskRequest, Assistant};
use crate::error::{AssistantError, Result};

/// `api` for a request with an API token's actor, else `local` (CLI, desktop).
fn channel(req: &AskRequest) -> &'static str {
    if req.actor.as_deref().is_some_and(|a| a.starts_with("token:")) {
        "api"
    } else {
        "local"
    }
}

impl Assistant {
    /// The workspace's event store (None when `[telemetry] enabled = false`).
    pub fn events(&self) -> Option<&EventStore> {
        self.threads().events()
    }

    fn event_store(&self) -> Result<&EventStore> {
        self.events().ok_or_else(|| AssistantError::Invalid("telemetry is off in this workspace ([telemetry] enabled = false in assistant.toml)".into()))
    }

    /// A short hash of the answer settings (assistant.toml without `[telemetry]`).
    fn prompt_version(&self) -> String {
        let mut v = serde_json::to_value(self.config()).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("telemetry");
        }
        hex::encode(&Sha256::digest(v.to_string().as_bytes())[..6])
    }

    /// The record step's events for `ans` to question `q`: `conversation_started` when it is a thread's first
    /// answer, then `message`. A failure to write them is logged, never the answer's failure.
    pub(crate) fn record_answer_events(&self, req: &AskRequest, q: &str, ans: &Answer) {
        if let Err(e) = self.try_record_answer_events(req, q, ans) {
            tracing::warn!(error = %e, "could not record the answer's telemetry events");
        }
    }

    fn try_record_answer_events(&self, req: &AskRequest, q: &str, ans: &Answer) -> Result<()> {
        let Some(store) = self.events() else { return Ok(()) };
        let t = &self.config().telemetry;
        let kb = ans.trace.kb.clone().or_else(|| req.kb.clone());
        if let Some(thread) = ans.thread_id {
            // the user turn and this answer are the thread's only messages: it starts here
            if self.threads().thread(thread)?.messages <= 2 {
                let kind = EventKind::ConversationStarted { channel: channel(req).into() };
                store.record(&Event::now(Some(thread), None, kb.clone(), kind))?;
            }
        }
        let tm = &ans.timings;
        let m = Message {
            channel: channel(req).into(),
            route: ans.route.clone(),
            model: ans.model.clone(),
            variant: t.variant.clone(),
            prompt_version: self.prompt_version(),
            lang: ans.lang.clone(),
            question_id: store.keys().question_id(q),
            topic_id: store.keys().topic_id(q),
            question_text: t.store_question_text.then(|| tresor_telemetry::question::masked(q)),
            tokens_in: ans.tokens.prompt as u64,
            tokens_out: ans.tokens.completion as u64,
            tokens_context: ans.tokens.context as u64,
            ttft_ms: tm.ttft_ms,
            total_ms: tm.total_ms,
            retrieve_ms: tm.retrieve_ms,
            pack_ms: tm.pack_ms,
            load_ms: tm.load_ms,
            generate_ms: tm.generate_ms,
            validate_ms: tm.validate_ms,
            policy_ms: tm.policy_ms,
            firewall_ms: tm.firewall_ms,
            record_ms: tm.record_ms,
            cache_hit: ans.cache_hit,
            grounded: ans.grounded,
            refused: ans.refused,
            extractive: ans.trace.extractive,
            passages_retrieved: ans.trace.passages.len() as u64,
            passages_cited: ans.sources.len() as u64,
        };
        store.record(&Event::now(ans.thread_id, ans.message_id, kb, EventKind::Message(m)))?;
        Ok(())
    }

    /// An explicit outcome for conversation `conversation_id` (the latest counts; see docs/kpi.md).
    pub fn resolve(&self, conversation_id: i64, outcome: Outcome) -> Result<()> {
        self.threads().record_conversation_event(conversation_id, EventKind::Resolution { outcome })
    }

    /// One tool call of the action layer (the tools layer calls this for every call, allowed or not).
    pub fn record_tool_action(&self, conversation_id: Option<i64>, message_id: Option<i64>, action: &ToolAction) -> Result<()> {
        let Some(store) = self.events() else { return Ok(()) };
        let kb = match conversation_id {
            Some(c) => store.conversation_kb(c)?,
            None => None,
        };
        store.record(&Event::now(conversation_id, message_id, kb, EventKind::ToolAction(action.clone())))?;
        Ok(())
    }

    /// The KPIs over `window` with this workspace's cost table.
    pub fn kpis(&self, window: &Window) -> Result<tresor_telemetry::Kpis> {
        let events = self.event_store()?.events(window)?;
        Ok(tresor_telemetry::compute(&events, &self.config().telemetry.cost))
    }

    /// Everything the dashboard screen shows over `window` (tiles, series, stages, gaps, tool errors).
    pub fn dashboard(&self, window: Window) -> Result<tresor_telemetry::DashboardData> {
        Ok(tresor_telemetry::dashboard(self.event_store()?, window, &self.config().telemetry.cost)?)
    }

    /// The cost simulator (`tresor simulate`) measured over the events in `window`, with this workspace's cost table.
    pub fn simulate(&self, window: &Window, scenario: &tresor_telemetry::Scenario) -> Result<tresor_telemetry::Simulation> {
        let events = self.event_store()?.events(window)?;
        Ok(tresor_telemetry::simulate(&events, scenario, &self.config().telemetry.cost)?)
    }
}

#[cfg(test)]
mod tests;
