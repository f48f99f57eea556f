//! A handoff ticket: the conversation (PII redacted per the policy), the
//! sources it was shown, the reason, timestamps and ids — as JSON (the
//! contract a helpdesk reads), as readable Markdown, and as an RFC 5322
//! message (UTF-8, text/plain, base64 body).
//!
//! Owns: the ticket's fields and its three renderings. Never: where it goes.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tresor_guard::redact::{self, PseudonymVault, Setting};

use crate::store::{StoredMessage, ThreadInfo};

/// Version of the ticket JSON (docs/handoff.md).
pub const TICKET_SCHEMA: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct TicketSource {
    pub n: usize,
    pub source: String,
    pub title: String,
    pub heading: String,
    pub page: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TicketMessage {
    /// The stored message's id (None: the message that asked for the handoff, not yet stored).
    pub id: Option<i64>,
    /// user | assistant
    pub role: String,
    pub text: String,
    /// RFC 3339, UTC.
    pub at: String,
    pub sources: Vec<TicketSource>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ticket {
    pub schema: u32,
    pub ticket_id: String,
    pub conversation_id: Option<i64>,
    pub workspace: String,
    pub kb: Option<String>,
    pub title: String,
    /// RFC 3339, UTC: when the ticket was made / the conversation began.
    pub created: String,
    pub conversation_started: Option<String>,
    pub reason: String,
    /// user_request (the user asked in the chat) | offer (accepted the assistant's offer) | door (a handoff button or command)
    pub trigger: String,
    pub lang: String,
    /// How personal data was redacted: mask | pseudonym | drop | off.
    pub pii: String,
    pub messages: Vec<TicketMessage>,
    /// Every source the user was shown, once, in order of first appearance.
    pub sources: Vec<TicketSource>,
}

/// A new ticket id: `T-YYYYMMDD-` and 8 hex digits of randomness.
pub fn new_ticket_id(now: jiff::Timestamp) -> String {
    let mut seed = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut seed);
    let h = Sha256::digest([&seed[..], &now.as_nanosecond().to_le_bytes()].concat());
    format!("T-{}-{}", now.strftime("%Y%m%d"), hex::encode(&h[..4]).to_uppercase())
}

pub(crate) fn rfc3339(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn at_secs(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).map(rfc3339).unwrap_or_default()
}

/// Redacts text per a setting (pseudonyms under `pseudonym_key`; the vault stays with nobody).
pub struct Redactor {
    setting: Setting,
    key: [u8; 32],
    vault: PseudonymVault,
}

impl Redactor {
    pub fn new(setting: Setting, pseudonym_key: [u8; 32]) -> Self {
        Redactor { setting, key: pseudonym_key, vault: PseudonymVault::new() }
    }
    pub fn apply(&mut self, text: &str) -> String {
        match self.setting {
            Setting::Pseudonym => redact::apply(text, Setting::Pseudonym, Some((&self.key, &mut self.vault))),
            s => redact::apply(text, s, None),
        }
    }
    pub fn name(&self) -> &'static str {
        match self.setting {
            Setting::Off => "off",
            Setting::Mask => "mask",
            Setting::Pseudonym => "pseudonym",
            Setting::Drop => "drop",
        }
    }
}

/// What a ticket is made of besides the stored messages.
pub struct TicketInput<'a> {
    pub ticket_id: String,
    pub workspace: &'a str,
    pub reason: &'a str,
    pub trigger: &'a str,
    pub lang: &'a str,
    pub now: jiff::Timestamp,
    /// The message that asked for the handoff when it is not stored yet.
    pub pending_user: Option<&'a str>,
}

/// The ticket for `thread` with its `messages`, every text redacted by `r`.
pub fn build(thread: Option<&ThreadInfo>, messages: &[StoredMessage], input: TicketInput<'_>, r: &mut Redactor) -> Ticket {
    let mut all_sources: Vec<TicketSource> = Vec::new();
    let mut out = Vec::new();
    for m in messages {
        let sources: Vec<TicketSource> = m
            .meta
            .as_ref()
            .and_then(|v| v.get("sources"))
            .and_then(|s| s.as_array())
            .map(|a| {
                a.iter()
                    .map(|s| {
                        let t = |k: &str| s.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
                        TicketSource {
                            n: s.get("n").and_then(|v| v.as_u64()).unwrap_or(0) as usize,
                            source: t("source"),
                            title: t("title"),
                            heading: t("heading"),
                            page: s.get("page").and_then(|v| v.as_u64()).map(|p| p as u32),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        for s in &sources {
            if !all_sources.iter().any(|x| x.source == s.source && x.heading == s.heading && x.page == s.page) {
                all_sources.push(s.clone());
            }
        }
        out.push(TicketMessage { id: Some(m.id), role: m.role.clone(), text: r.apply(&m.content), at: at_secs(m.created), sources });
    }
    if let Some(q) = input.pending_user {
        out.push(TicketMessage { id: None, role: "user".into(), text: r.apply(q), at: rfc3339(input.now), sources: Vec::new() });
    }
    Ticket {
        schema: TICKET_SCHEMA,
        ticket_id: input.ticket_id,
        conversation_id: thread.map(|t| t.id),
        workspace: input.workspace.to_string(),
        kb: thread.and_then(|t| t.kb.clone()),
        title: r.apply(thread.map(|t| t.title.as_str()).unwrap_or("Conversation")),
        created: rfc3339(input.now),
        conversation_started: thread.map(|t| at_secs(t.created)),
        reason: r.apply(input.reason),
        trigger: input.trigger.to_string(),
        lang: input.lang.to_string(),
        pii: r.name().to_string(),
        messages: out,
        sources: all_sources,
    }
}

impl Ticket {
    /// The readable Markdown: header, reason, every turn with the sources it showed.
    pub fn to_markdown(&self) -> String {
        let mut s = format!("# Tresor handoff {}\n\n", self.ticket_id);
        s.push_str(&format!("- conversation: {}\n", self.conversation_id.map_or("–".into(), |c| c.to_string())));
        s.push_str(&format!("- title: {}\n", self.title));
        s.push_str(&format!("- workspace: {}\n", self.workspace));
        if let Some(kb) = &self.kb {
            s.push_str(&format!("- knowledge base: {kb}\n"));
        }
        s.push_str(&format!("- created: {}\n", self.created));
        if let Some(c) = &self.conversation_started {
            s.push_str(&format!("- conversation started: {c}\n"));
        }
        s.push_str(&format!("- trigger: {}\n- language: {}\n", self.trigger, self.lang));
        s.push_str(&format!(
            "- personal data: {}\n\n",
            if self.pii == "off" { "NOT masked (the admin policy turned redaction off)".to_string() } else { format!("redacted ({})", self.pii) }
        ));
        s.push_str(&format!("## Reason\n\n{}\n\n## Conversation\n\n", self.reason));
        for m in &self.messages {
            let who = if m.role == "user" { "User" } else { "Tresor" };
            s.push_str(&format!("**{who}** ({}): {}\n", m.at, m.text));
            for src in &m.sources {
                s.push_str(&format!("  - [{}] {}{}\n", src.n, src.source, if src.heading.is_empty() { String::new() } else { format!(" — {}", src.heading) }));
            }
            s.push('\n');
        }
        if !self.sources.is_empty() {
            s.push_str("## Sources shown\n\n");
            for src in &self.sources {
                let page = src.page.map_or(String::new(), |p| format!(", page {p}"));
                s.push_str(&format!("- {}{}{}\n", src.source, if src.heading.is_empty() { String::new() } else { format!(" — {}", src.heading) }, page));
            }
        }
        s
    }

    /// An RFC 5322 message: From/To/Subject (RFC 2047 encoded)/Date/Message-ID, MIME 1.0,
    /// text/plain UTF-8 with a base64 body (lines of 76), CRLF line ends.
    pub fn to_eml(&self, from: &str, to: &str) -> String {
        let now = jiff::Timestamp::now();
        let date = now.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string();
        let subject = format!("Tresor handoff {}: {}", self.ticket_id, self.title);
        let domain = from.rsplit_once('@').map_or("localhost", |(_, d)| d);
        let body = b64(self.to_markdown().as_bytes());
        let mut m = String::new();
        for (k, v) in [
            ("From", header_addr(from)),
            ("To", header_addr(to)),
            ("Subject", encode_word(&subject)),
            ("Date", date),
            ("Message-ID", format!("<{}@{}>", self.ticket_id, domain)),
            ("MIME-Version", "1.0".into()),
            ("Content-Type", "text/plain; charset=utf-8".into()),
            ("Content-Transfer-Encoding", "base64".into()),
            ("X-Tresor-Ticket", self.ticket_id.clone()),
            ("X-Tresor-Conversation", self.conversation_id.map_or("-".into(), |c| c.to_string())),
        ] {
            m.push_str(&format!("{k}: {v}\r\n"));
        }
        m.push_str("\r\n");
        for chunk in body.as_bytes().chunks(76) {
            m.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            m.push_str("\r\n");
        }
        m
    }
}

/// An address for a header: only the characters of an address (no CR/LF can get in).
fn header_addr(a: &str) -> String {
    a.chars().filter(|c| !c.is_control() && !matches!(c, '<' | '>' | ',' | ';' | '"')).collect::<String>().trim().to_string()
}

/// RFC 2047 encoded words (UTF-8, base64), split so each stays within the line limit.
fn encode_word(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).collect();
    if clean.is_ascii() && clean.len() < 70 {
        return clean;
    }
    let mut parts = Vec::new();
    let mut cur = String::new();
    for c in clean.chars() {
        if cur.len() + c.len_utf8() > 40 {
            parts.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    parts.iter().map(|p| format!("=?UTF-8?B?{}?=", b64(p.as_bytes()))).collect::<Vec<_>>().join("\r\n ")
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
