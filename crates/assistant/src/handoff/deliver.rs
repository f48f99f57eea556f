//! Delivering a ticket to its target: a folder (`TICKET.json` + `TICKET.md`),
//! an .eml file, or an HTTP endpoint (POST JSON, timeout, retries). Files are
//! written atomically (a temporary file in the same folder, synced, renamed)
//! with mode 0600.
//!
//! Owns: the transport. Never: whether a target is allowed (config.rs) or
//! what happens on failure (the outbox, mod.rs).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::Target;
use super::ticket::Ticket;

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("writing {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("posting to {url}: {reason}")]
    Http { url: String, reason: String },
    #[error("no handoff target is set up (target = \"none\")")]
    NoTarget,
}

/// Delivers `t`; returns where it went (the file written, or the URL and its status).
pub fn deliver(t: &Ticket, target: &Target) -> Result<String, DeliveryError> {
    match target {
        Target::None => Err(DeliveryError::NoTarget),
        Target::Folder(dir) => {
            let json = serde_json::to_string_pretty(t).expect("a ticket serialises");
            write_atomic(&dir.join(format!("{}.json", t.ticket_id)), json.as_bytes())?;
            let md = dir.join(format!("{}.md", t.ticket_id));
            write_atomic(&md, t.to_markdown().as_bytes())?;
            Ok(dir.join(format!("{}.json", t.ticket_id)).display().to_string())
        }
        Target::Eml { dir, to, from } => {
            let path = dir.join(format!("{}.eml", t.ticket_id));
            write_atomic(&path, t.to_eml(from, to).as_bytes())?;
            Ok(path.display().to_string())
        }
        Target::Http { url, timeout_ms, retries } => post(t, url, *timeout_ms, *retries),
    }
}

fn post(t: &Ticket, url: &str, timeout_ms: u64, retries: u32) -> Result<String, DeliveryError> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_millis(timeout_ms)).redirects(0).build();
    let body = serde_json::to_string(t).expect("a ticket serialises");
    let mut last = String::new();
    for attempt in 0..=retries {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
        }
        match agent.post(url).set("Content-Type", "application/json; charset=utf-8").set("X-Tresor-Ticket", &t.ticket_id).send_string(&body) {
            Ok(r) => return Ok(format!("{url} (HTTP {})", r.status())),
            Err(ureq::Error::Status(code, r)) => {
                last = format!("HTTP {code} {}", r.status_text());
                // a client error will not change on retry
                if (400..500).contains(&code) && code != 408 && code != 429 {
                    break;
                }
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(DeliveryError::Http { url: url.to_string(), reason: format!("{last} (after {} attempt(s))", retries + 1) })
}

/// Writes `bytes` to `path` atomically with mode 0600 (the folder is created when missing).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DeliveryError> {
    let io = |source| DeliveryError::Io { path: path.to_path_buf(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    // tempfile creates the file 0600 on Unix; said again below in case a umask or platform differs
    let mut tmp = tempfile::Builder::new().prefix(".ticket-").tempfile_in(dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}
