//! "Hand off to a human": a conversation exported as a Markdown ticket file
//! under `DATA_DIR/tickets/`, for the user to attach to a mail or a helpdesk
//! form. Personal data in the text is masked with tresor-guard's PII
//! detection ([`REDACTION`]). Never sends anything anywhere.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tresor_assistant::store::{StoredMessage, ThreadInfo};

/// How personal data is masked, and whether it is.
pub struct Redaction {
    pub redact: fn(&str) -> String,
    /// Said in the ticket, so nobody mistakes an unmasked export for a masked one.
    pub applied: bool,
}

/// tresor-guard's PII detection, every span masked (`[EMAIL]`, `[PHONE]`, ...).
pub const REDACTION: &Redaction = &Redaction { redact: tresor_guard::redact::for_log, applied: true };

/// The ticket text: title, thread metadata, every turn with its cited sources.
pub fn render(thread: &ThreadInfo, messages: &[StoredMessage], note: &str, r: &Redaction) -> String {
    let redact = r.redact;
    let mut out = format!("# Tresor hand-off: {}\n\n", redact(&thread.title));
    out.push_str(if r.applied {
        "- personal data: masked\n"
    } else {
        "- personal data: NOT masked (check before sending)\n"
    });
    out.push_str(&format!("- thread: {}\n", thread.id));
    if let Some(kb) = &thread.kb {
        out.push_str(&format!("- knowledge base: {kb}\n"));
    }
    out.push_str(&format!("- messages: {}\n\n", messages.len()));
    if !note.trim().is_empty() {
        out.push_str(&format!("## Note from the user\n\n{}\n\n", redact(note.trim())));
    }
    out.push_str("## Conversation\n\n");
    for m in messages {
        let who = if m.role == "user" { "User" } else { "Tresor" };
        out.push_str(&format!("**{who}:** {}\n", redact(&m.content)));
        if let Some(sources) = m.meta.as_ref().and_then(|v| v.get("sources")).and_then(|s| s.as_array()) {
            for s in sources {
                let n = s.get("n").and_then(|v| v.as_u64()).unwrap_or(0);
                let src = s.get("source").and_then(|v| v.as_str()).unwrap_or("");
                out.push_str(&format!("  - [{n}] {}\n", redact(src)));
            }
        }
        out.push('\n');
    }
    out
}

/// Writes the ticket to `DATA_DIR/tickets/ticket-THREAD-UNIXTIME.md`; returns its path.
pub fn write(data_dir: &Path, thread_id: i64, text: &str) -> Result<PathBuf> {
    let dir = data_dir.join("tickets");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let path = dir.join(format!("ticket-{thread_id}-{secs}.md"));
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_has_every_turn_its_sources_and_is_redacted() {
        let t = ThreadInfo { id: 3, title: "Urlaub von max@example.com".into(), kb: Some("default".into()), created: 0, updated: 0, messages: 2 };
        let msgs = vec![
            StoredMessage { id: 1, thread_id: 3, role: "user".into(), content: "Ich bin max@example.com, wie viele Urlaubstage?".into(), meta: None, created: 0 },
            StoredMessage {
                id: 2,
                thread_id: 3,
                role: "assistant".into(),
                content: "30 Tage [1].".into(),
                meta: Some(serde_json::json!({"sources": [{"n": 1, "source": "/kb/urlaub.md"}]})),
                created: 0,
            },
        ];
        let r = Redaction { redact: |s| s.replace("max@example.com", "[EMAIL]"), applied: true };
        let text = render(&t, &msgs, "bitte Rückruf", &r);
        assert!(text.contains("personal data: masked"));
        let guarded = render(&t, &msgs, "", REDACTION);
        assert!(!guarded.contains("max@example.com") && guarded.contains("personal data: masked"), "{guarded}");
        assert!(!text.contains("max@example.com"), "{text}");
        assert!(text.contains("[EMAIL]"));
        assert!(text.contains("**User:**") && text.contains("**Tresor:** 30 Tage [1]."));
        assert!(text.contains("  - [1] /kb/urlaub.md"));
        assert!(text.contains("bitte Rückruf"));
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), 3, &text).unwrap();
        assert_eq!(std::fs::read_to_string(p).unwrap(), text);
    }
}
