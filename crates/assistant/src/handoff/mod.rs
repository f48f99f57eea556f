//! Human handoff and the end of a conversation (CSAT), for every door.
//!
//! A user may ask for a human at any time ("talk to a person", "Mitarbeiter
//! sprechen": [`detect`]) — `Assistant::answer` sees it before retrieval and
//! hands the conversation over; the assistant offers it after refusing twice in
//! a conversation or after a negative rating (`offer_handoff`). A handoff makes
//! a [`Ticket`] (the conversation with PII redacted per the policy, the
//! sources shown, the reason, timestamps, ids), keeps it in the encrypted
//! outbox ([`outbox`]) and delivers it to the target of the admin policy /
//! `assistant.toml` `[handoff]` ([`config`]: a folder, an .eml file, an HTTP
//! endpoint on the admin's list; [`deliver`]). A failed delivery is reported
//! and the ticket waits in the outbox for the next try. Every handoff is an
//! audit entry and a `handoff` event (escalation in the KPIs).
//!
//! A conversation ends on an idle timeout, a closing message ("thanks, bye")
//! or when a door says so; the engine then asks once for a 1–5 rating
//! (`ask_csat`), and a second rating of the same conversation is refused.
//!
//! Owns: the handoff flow, the ticket, the outbox, the end-of-conversation
//! decision and the texts the user sees for them (DE/EN). Never: a door's
//! flags or HTTP shapes, the event schema (tresor-telemetry) or the policy
//! file format (tresor-guard's `[handoff]`).

pub mod config;
pub mod deliver;
pub mod detect;
mod facade;
pub mod outbox;
pub mod ticket;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;
use tresor_guard::audit::{os_actor, AuditLog, Event as AuditEvent};
use tresor_guard::crypto::WorkspaceKey;
use tresor_guard::policy::Policy;
use tresor_telemetry::EventKind;

pub use config::{HandoffConfig, Resolved, Target};
pub use deliver::DeliveryError;
pub use outbox::{HandoffStore, OutboxEntry};
pub use ticket::{Ticket, TicketMessage, TicketSource, TICKET_SCHEMA};

use crate::config::AssistantConfig;
use crate::error::Result;
use crate::policy::PolicyGate;
use crate::store::{Feedback, ThreadStore};

/// What a handoff did, and what the user is told.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct HandoffReceipt {
    pub ticket_id: String,
    pub conversation_id: Option<i64>,
    /// delivered | queued (delivery failed; kept in the outbox and retried) | kept (no target set up)
    pub status: String,
    /// none | folder | eml | http
    pub target: String,
    /// The file written or the URL posted to.
    pub delivered_to: Option<String>,
    /// Why delivery failed.
    pub error: Option<String>,
    /// What happens next, in the user's language.
    pub message: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// The ticket as delivered (PII redacted).
    #[cfg_attr(feature = "ts", ts(type = "unknown"))]
    pub ticket: Ticket,
}

/// A rating was stored; `offer_handoff` when it was negative (thumbs down, CSAT ≤ 2).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct FeedbackOutcome {
    pub id: i64,
    pub offer_handoff: bool,
    /// The offer in the conversation's language (None: no offer).
    pub offer: Option<String>,
}

/// The end of a conversation: whether to ask for CSAT now.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct EndOutcome {
    pub conversation_id: i64,
    /// The conversation ended with this call (false: it had ended before, or is not idle yet).
    pub ended: bool,
    pub ask_csat: bool,
    /// The CSAT question in the conversation's language when `ask_csat`.
    pub question: Option<String>,
}

/// One handoff to make.
#[derive(Debug, Clone, Default)]
pub struct HandoffRequest {
    pub conversation_id: Option<i64>,
    pub reason: Option<String>,
    /// user_request | offer | door (default door)
    pub trigger: Option<String>,
    /// Audit actor (None: the OS user).
    pub actor: Option<String>,
    /// de | en (None: the conversation's last user message decides).
    pub lang: Option<String>,
    /// The message that asked, not yet stored in the thread.
    pub pending_user: Option<String>,
}

fn de(lang: &str) -> bool {
    lang == "de"
}

/// What the user is told after a handoff.
pub fn next_steps(status: &str, ticket_id: &str, lang: &str) -> String {
    match (status, de(lang)) {
        ("delivered", false) => format!("I have passed our conversation to a colleague (ticket {ticket_id}). A colleague will get back to you as soon as possible; please keep the ticket number."),
        ("delivered", true) => format!("Ich habe unser Gespräch an einen Kollegen übergeben (Ticket {ticket_id}). Ein Kollege meldet sich so bald wie möglich bei Ihnen; bitte notieren Sie die Ticketnummer."),
        ("queued", false) => format!("Your request is saved as ticket {ticket_id}, but it could not be delivered to the support team just now; Tresor will send it again. A colleague will get back to you once it has arrived."),
        ("queued", true) => format!("Ihre Anfrage ist als Ticket {ticket_id} gespeichert, konnte aber gerade nicht an das Support-Team übermittelt werden; Tresor sendet sie erneut. Ein Kollege meldet sich bei Ihnen, sobald sie angekommen ist."),
        (_, false) => format!("Your request is saved as ticket {ticket_id}. No handoff channel is set up in this workspace yet, so please contact your support team directly and quote the ticket number."),
        (_, true) => format!("Ihre Anfrage ist als Ticket {ticket_id} gespeichert. In diesem Arbeitsbereich ist noch kein Übergabekanal eingerichtet; bitte wenden Sie sich direkt an Ihr Support-Team und nennen Sie die Ticketnummer."),
    }
}

/// The offer after two refusals or a negative rating.
pub fn offer_text(lang: &str) -> String {
    if de(lang) {
        "Soll ich das Gespräch an einen Kollegen übergeben? Schreiben Sie einfach „Mitarbeiter sprechen“.".into()
    } else {
        "Would you like me to pass this conversation to a colleague? Just say \"talk to a person\".".into()
    }
}

/// The CSAT question at the end of a conversation.
pub fn csat_question(lang: &str) -> String {
    if de(lang) {
        "Wie zufrieden waren Sie mit diesem Gespräch? Bitte bewerten Sie es von 1 (schlecht) bis 5 (sehr gut); ein Kommentar ist willkommen.".into()
    } else {
        "How satisfied were you with this conversation? Please rate it from 1 (poor) to 5 (excellent); a comment is welcome.".into()
    }
}

/// The reply to a closing message.
pub fn farewell(lang: &str) -> String {
    if de(lang) {
        "Danke für das Gespräch, auf Wiedersehen!".into()
    } else {
        "Thank you for the conversation, goodbye!".into()
    }
}

/// Whether a rating is negative enough to offer a human.
pub fn negative(f: &Feedback) -> bool {
    f.thumbs == Some(-1) || f.csat.is_some_and(|c| c <= 2)
}

/// The handoff and end-of-conversation logic over a thread store, its handoff
/// tables, the settings and the audit log (borrowed from the engine or a door's [`HandoffDesk`]).
pub struct Desk<'a> {
    pub threads: &'a ThreadStore,
    pub store: &'a HandoffStore,
    pub cfg: &'a HandoffConfig,
    pub policy: &'a Policy,
    pub audit: &'a AuditLog,
    pub workspace: &'a str,
    pub data_dir: &'a Path,
    pub key: &'a WorkspaceKey,
}

impl Desk<'_> {
    /// The target and redaction in force.
    pub fn resolved(&self) -> Result<Resolved> {
        self.cfg.resolve(&self.policy.handoff, self.data_dir)
    }

    fn lang_of(&self, conversation: Option<i64>, pending: Option<&str>) -> String {
        let last_user = conversation
            .and_then(|c| self.threads.messages(c).ok())
            .and_then(|m| m.into_iter().rev().find(|m| m.role == "user").map(|m| m.content));
        let text = pending.map(str::to_string).or(last_user).unwrap_or_default();
        crate::text::language(&text).as_str().to_string()
    }

    /// Makes the ticket, keeps it in the outbox, delivers it; records the audit entry and the
    /// `handoff` event. A failed delivery is not an error here: the receipt says `queued` and why.
    pub fn create(&self, req: &HandoffRequest) -> Result<HandoffReceipt> {
        let resolved = self.resolved()?;
        let info = req.conversation_id.map(|c| self.threads.thread(c)).transpose()?;
        let messages = match req.conversation_id {
            Some(c) => self.threads.messages(c)?,
            None => Vec::new(),
        };
        let lang = req.lang.clone().unwrap_or_else(|| self.lang_of(req.conversation_id, req.pending_user.as_deref()));
        let trigger = req.trigger.clone().unwrap_or_else(|| "door".into());
        let reason = req.reason.clone().filter(|r| !r.trim().is_empty()).unwrap_or_else(|| match trigger.as_str() {
            "user_request" => "The user asked to talk to a person.".into(),
            "offer" => "The user accepted the offer of a human after the assistant could not help.".into(),
            _ => "Handed off by the user.".into(),
        });
        let now = jiff::Timestamp::now();
        let mut r = ticket::Redactor::new(resolved.redact, *self.key.subkey("tresor-handoff-pseudonym"));
        let t = ticket::build(
            info.as_ref(),
            &messages,
            ticket::TicketInput {
                ticket_id: ticket::new_ticket_id(now),
                workspace: self.workspace,
                reason: &reason,
                trigger: &trigger,
                lang: &lang,
                now,
                pending_user: req.pending_user.as_deref(),
            },
            &mut r,
        );
        let kind = resolved.target.kind();
        self.store.put(&t, kind)?;
        let (status, delivered_to, error) = match &resolved.target {
            Target::None => ("kept", None, None),
            target => {
                let res = deliver::deliver(&t, target).map_err(|e| e.to_string());
                self.store.settle(&t.ticket_id, kind, &res)?;
                match res {
                    Ok(to) => ("delivered", Some(to), None),
                    Err(e) => {
                        tracing::warn!(ticket = %t.ticket_id, error = %e, "handoff not delivered; kept in the outbox");
                        ("queued", None, Some(e))
                    }
                }
            }
        };
        let data = json!({
            "ticket_id": t.ticket_id, "conversation_id": t.conversation_id, "status": status, "target": kind,
            "trigger": trigger, "reason": tresor_guard::redact::for_log(&reason), "error": error,
        });
        self.audit.append(&AuditEvent { event: "handoff".into(), actor: req.actor.clone().unwrap_or_else(os_actor), workspace: self.workspace.into(), data })?;
        if let Some(ev) = self.threads.events() {
            let kb = info.as_ref().and_then(|i| i.kb.clone());
            ev.record(&tresor_telemetry::Event::now(req.conversation_id, None, kb, EventKind::Handoff { reason: Some(tresor_guard::redact::for_log(&reason)) }))?;
        }
        // older tickets waiting for a retry go along with this one
        if status == "delivered" {
            let _ = self.retry_pending();
        }
        Ok(HandoffReceipt {
            message: next_steps(status, &t.ticket_id, &lang),
            ticket_id: t.ticket_id.clone(),
            conversation_id: t.conversation_id,
            status: status.into(),
            target: kind.into(),
            delivered_to,
            error,
            created: t.created.clone(),
            ticket: t,
        })
    }

    /// Tries every pending ticket of the outbox again (with the target in force now).
    pub fn retry_pending(&self) -> Result<Vec<HandoffReceipt>> {
        let resolved = self.resolved()?;
        let kind = resolved.target.kind();
        let mut out = Vec::new();
        if resolved.target == Target::None {
            return Ok(out);
        }
        for t in self.store.pending()? {
            let res = deliver::deliver(&t, &resolved.target).map_err(|e| e.to_string());
            self.store.settle(&t.ticket_id, kind, &res)?;
            let (status, to, err) = match res {
                Ok(to) => ("delivered", Some(to), None),
                Err(e) => ("queued", None, Some(e)),
            };
            let data = json!({ "ticket_id": t.ticket_id, "conversation_id": t.conversation_id, "status": status, "target": kind, "error": err });
            self.audit.append(&AuditEvent { event: "handoff.retry".into(), actor: os_actor(), workspace: self.workspace.into(), data })?;
            out.push(HandoffReceipt {
                message: next_steps(status, &t.ticket_id, &t.lang),
                ticket_id: t.ticket_id.clone(),
                conversation_id: t.conversation_id,
                status: status.into(),
                target: kind.into(),
                delivered_to: to,
                error: err,
                created: t.created.clone(),
                ticket: t,
            });
        }
        Ok(out)
    }

    /// Ends conversation `id` (`reason`: closed | idle | closing_message | ...) and decides
    /// whether to ask for CSAT: once, when it has an answer and no rating yet. `idle` ends
    /// it only when its last message is older than `idle_timeout_secs`.
    pub fn end(&self, id: i64, reason: &str) -> Result<EndOutcome> {
        let info = self.threads.thread(id)?;
        let not_now = EndOutcome { conversation_id: id, ended: false, ask_csat: false, question: None };
        if reason == "idle" {
            let last = self.store.last_message_at(id)?.unwrap_or(info.updated);
            let now = jiff::Timestamp::now().as_second();
            if self.cfg.idle_timeout_secs == 0 || now - last < self.cfg.idle_timeout_secs as i64 {
                return Ok(not_now);
            }
        }
        let ended = self.store.end(id, reason)?;
        if ended {
            if let Some(ev) = self.threads.events() {
                ev.record(&tresor_telemetry::Event::now(Some(id), None, info.kb.clone(), EventKind::ConversationEnded { reason: Some(tresor_guard::redact::for_log(reason)) }))?;
            }
        }
        let answered = self.threads.messages(id)?.iter().any(|m| m.role == "assistant");
        let ask = self.cfg.ask_csat && answered && !self.store.rated(id)? && self.store.mark_csat_asked(id)?;
        let lang = self.lang_of(Some(id), None);
        Ok(EndOutcome { conversation_id: id, ended, ask_csat: ask, question: ask.then(|| csat_question(&lang)) })
    }

    /// Stores a rating (a second CSAT of one conversation is refused) and says whether to offer a human.
    pub fn feedback(&self, f: &Feedback) -> Result<FeedbackOutcome> {
        let id = self.threads.add_feedback(f)?;
        let thread = match (f.thread_id, f.message_id) {
            (Some(t), _) => Some(t),
            (None, Some(m)) => self.threads.thread_of_message(m)?,
            _ => None,
        };
        let handed_off = thread.is_some_and(|t| self.store.entries().map(|e| e.iter().any(|x| x.conversation_id == Some(t))).unwrap_or(false));
        let offer = negative(f) && !handed_off;
        let lang = self.lang_of(thread, None);
        Ok(FeedbackOutcome { id, offer_handoff: offer, offer: offer.then(|| offer_text(&lang)) })
    }

    /// Whether an answer that `refused` in conversation `thread` should offer a human: the
    /// conversation's refusals (this one included) reached `offer_after_refusals`, and it was not handed off.
    pub fn offer_after(&self, thread: Option<i64>, refused: bool) -> Result<bool> {
        let (Some(t), true, n) = (thread, refused, self.cfg.offer_after_refusals) else { return Ok(false) };
        if n == 0 {
            return Ok(false);
        }
        let before = self.threads.messages(t)?.iter().filter(|m| m.role == "assistant" && m.meta.as_ref().and_then(|v| v.get("refused")).and_then(|v| v.as_bool()) == Some(true)).count();
        let handed_off = self.store.entries()?.iter().any(|x| x.conversation_id == Some(t));
        Ok(before + 1 >= n as usize && !handed_off)
    }
}

/// The handoff desk of a data dir without the engine (no model is loaded): what
/// `tresor handoff` and `tresor feedback` use.
pub struct HandoffDesk {
    threads: ThreadStore,
    store: HandoffStore,
    cfg: AssistantConfig,
    gate: PolicyGate,
    audit: AuditLog,
    workspace: String,
    data_dir: PathBuf,
    key: WorkspaceKey,
}

impl HandoffDesk {
    pub fn open(data_dir: &Path, key: &WorkspaceKey) -> Result<Self> {
        let cfg = AssistantConfig::load(data_dir)?;
        let db = data_dir.join(crate::store::DB_FILE);
        let threads = ThreadStore::open_with(&db, key, &cfg.telemetry)?;
        let store = HandoffStore::open(&db, key)?;
        Ok(HandoffDesk { threads, store, cfg, gate: PolicyGate::load(data_dir)?, audit: AuditLog::for_data_dir(data_dir), workspace: "default".into(), data_dir: data_dir.to_path_buf(), key: key.clone() })
    }

    /// The workspace name for the audit log (a door that resolved a named workspace sets it).
    pub fn set_workspace(&mut self, name: &str) {
        self.workspace = name.to_string();
    }

    pub fn desk(&self) -> Desk<'_> {
        Desk {
            threads: &self.threads,
            store: &self.store,
            cfg: &self.cfg.handoff,
            policy: &self.gate.policy,
            audit: &self.audit,
            workspace: &self.workspace,
            data_dir: &self.data_dir,
            key: &self.key,
        }
    }
}
