//! The facade methods every door calls for handoffs, ratings and the end of a
//! conversation, and the two turns `Assistant::answer` hands to this module
//! before retrieval (a request for a human, a closing message).
//!
//! Owns: these entry points. Never: the flow itself (mod.rs's [`Desk`]).

use tresor_kb::lang::Lang;

use super::{detect, EndOutcome, FeedbackOutcome, HandoffReceipt, HandoffRequest, OutboxEntry};
use crate::engine::{bare_answer, Answer, AskRequest, Assistant};
use crate::error::Result;
use crate::route::{Intent, RouteChoice};
use crate::store::Feedback;

impl Assistant {
    /// Hands conversation `conversation_id` to a human (a button, `tresor handoff`, `POST /api/handoff`):
    /// the ticket goes to the configured target; the receipt says where and what the user is told.
    pub fn handoff(&self, conversation_id: i64, reason: Option<&str>) -> Result<HandoffReceipt> {
        self.handoff_with(&HandoffRequest { conversation_id: Some(conversation_id), reason: reason.map(str::to_string), ..Default::default() })
    }

    /// A handoff with every detail (trigger, actor, language).
    pub fn handoff_with(&self, req: &HandoffRequest) -> Result<HandoffReceipt> {
        self.desk().create(req)
    }

    /// Delivers the outbox's pending tickets again.
    pub fn retry_handoffs(&self) -> Result<Vec<HandoffReceipt>> {
        self.desk().retry_pending()
    }

    /// Every ticket this workspace made, delivered or pending.
    pub fn handoff_outbox(&self) -> Result<Vec<OutboxEntry>> {
        self.handoffs.entries()
    }

    /// Thumbs / CSAT / comment on an answer (`message_id`) or a conversation (`thread_id`): stored with
    /// the thread and recorded as a `feedback` event; a second CSAT of one conversation is refused.
    /// `offer_handoff` when the rating is negative.
    pub fn feedback(&self, f: &Feedback) -> Result<FeedbackOutcome> {
        self.desk().feedback(f)
    }

    /// A door closed conversation `conversation_id` (`reason`: closed, idle, ...; `idle` ends it only
    /// past `[handoff] idle_timeout_secs`). Says whether to ask for CSAT now (once per conversation).
    pub fn end_conversation(&self, conversation_id: i64, reason: Option<&str>) -> Result<EndOutcome> {
        self.desk().end(conversation_id, reason.unwrap_or("closed"))
    }

    /// The turns this module answers before retrieval: a request for a human (the handoff runs)
    /// and a closing message (the conversation ends; CSAT is asked once).
    pub(crate) fn handoff_turns(&mut self, q: &str, lang: Lang, req: &AskRequest, on_text: &mut dyn FnMut(&str)) -> Result<Option<Answer>> {
        let code = lang.as_str();
        if detect::wants_human(q) {
            let receipt = self.desk().create(&HandoffRequest {
                conversation_id: req.thread,
                reason: None,
                trigger: Some("user_request".into()),
                actor: req.actor.clone(),
                lang: Some(code.into()),
                pending_user: Some(q.to_string()),
            })?;
            on_text(&receipt.message);
            let mut a = bare_answer(receipt.message.clone(), Intent::SmallTalk, lang, RouteChoice { role: "none".into(), reason: "the user asked for a human".into() });
            a.route = "handoff".into();
            a.handoff = Some(receipt);
            return Ok(Some(a));
        }
        if let (true, Some(t)) = (detect::is_closing(q), req.thread) {
            let end = self.desk().end(t, "closing_message")?;
            let mut text = super::farewell(code);
            if let Some(question) = &end.question {
                text = format!("{text} {question}");
            }
            on_text(&text);
            let mut a = bare_answer(text, Intent::SmallTalk, lang, RouteChoice { role: "none".into(), reason: "the user closed the conversation".into() });
            a.route = "closing".into();
            a.ask_csat = end.ask_csat;
            return Ok(Some(a));
        }
        Ok(None)
    }
}
