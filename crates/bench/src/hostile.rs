//! `tresor bench hostile`: writes the hostile documents of issue 19 §1 at
//! full size (`tresor_kb::hostile`) and ingests each into a scratch
//! knowledge base, timing it and recording whether it was read or refused
//! (and why). Run it under an address-space limit (`ulimit -v 4000000`) to
//! show that nothing needs more than 4 GB; README *Reliability* has the table.
//!
//! Owns: the run and its report. Never: asserts a time (the tests assert the
//! behaviour), or touches a user's knowledge base (a scratch folder).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use tresor_guard::crypto::WorkspaceKey;
use tresor_kb::hostile::{write_all, Scale};
use tresor_kb::{ingest, HashEmbedder, IngestOptions, Kb, NoProgress};

#[derive(Debug, Clone, Serialize)]
pub struct HostileRow {
    pub file: String,
    pub what: String,
    pub bytes: u64,
    pub seconds: f64,
    /// "ingested" or "refused"
    pub outcome: String,
    pub chunks: usize,
    /// The per-file error when refused.
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostileReport {
    pub rows: Vec<HostileRow>,
    /// The whole folder in one ingest (the hostile files and one normal file).
    pub folder_seconds: f64,
    pub folder_ingested: usize,
    pub folder_failed: usize,
    pub kb_check_ok: bool,
    /// Peak resident memory of this process (VmHWM), MB.
    pub peak_rss_mb: u64,
    /// The address-space limit the run was under (`ulimit -v`), KB; None when unlimited.
    pub address_space_limit_kb: Option<u64>,
    pub embedder: String,
}

fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()))
        .unwrap_or(0)
        / 1024
}

fn address_space_limit_kb() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = s.lines().find(|l| l.starts_with("Max address space"))?;
    line.split_whitespace().nth(3)?.parse::<u64>().ok().map(|b| b / 1024)
}

/// Writes the files into `dir` (kept, for inspection) and ingests them.
pub fn run(dir: &Path, scale: Scale) -> std::io::Result<HostileReport> {
    let docs = dir.join("docs");
    let files = write_all(&docs, scale)?;
    std::fs::write(docs.join("normal.md"), "# Urlaub\n\nJeder Mitarbeiter hat 30 Tage Urlaub im Jahr.\n")?;
    let key = WorkspaceKey::from_bytes([1; 32]);
    let emb = HashEmbedder::new(384);
    let io = |e: tresor_kb::KbError| std::io::Error::other(e.to_string());
    let mut rows = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let kb_dir: PathBuf = dir.join(format!("kb-{i}"));
        let _ = std::fs::remove_dir_all(&kb_dir);
        let mut kb = Kb::open(&kb_dir, &key).map_err(io)?;
        let t0 = Instant::now();
        let rep = ingest(&mut kb, &emb, &[f.path.clone()], &IngestOptions::default(), &NoProgress).map_err(io)?;
        let seconds = t0.elapsed().as_secs_f64();
        let refused = rep.failed.first();
        rows.push(HostileRow {
            file: f.name.to_string(),
            what: f.what.to_string(),
            bytes: std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0),
            seconds,
            outcome: if refused.is_some() { "refused" } else { "ingested" }.into(),
            chunks: rep.chunks,
            reason: refused.map(|r| r.reason.clone()).unwrap_or_default(),
        });
        drop(kb);
        let _ = std::fs::remove_dir_all(&kb_dir);
    }
    let kb_dir = dir.join("kb-folder");
    let _ = std::fs::remove_dir_all(&kb_dir);
    let mut kb = Kb::open(&kb_dir, &key).map_err(io)?;
    let t0 = Instant::now();
    let rep = ingest(&mut kb, &emb, &[docs.clone()], &IngestOptions::default(), &NoProgress).map_err(io)?;
    let folder_seconds = t0.elapsed().as_secs_f64();
    let kb_check_ok = kb.check().map(|c| c.ok).unwrap_or(false);
    Ok(HostileReport {
        rows,
        folder_seconds,
        folder_ingested: rep.added + rep.updated,
        folder_failed: rep.failed.len(),
        kb_check_ok,
        peak_rss_mb: peak_rss_mb(),
        address_space_limit_kb: address_space_limit_kb(),
        embedder: "hash (tresor_kb::HashEmbedder, 384 dims): parse, chunk, screen and store are measured, not a model".into(),
    })
}

/// The report as a Markdown table (README *Reliability*).
pub fn table(r: &HostileReport) -> String {
    let mut s = String::from("| file | attack | size | time | result |\n|---|---|---:|---:|---|\n");
    for row in &r.rows {
        let result = if row.outcome == "refused" { format!("refused: {}", row.reason) } else { format!("ingested, {} chunks", row.chunks) };
        s.push_str(&format!(
            "| {} | {} | {:.1} MB | {:.1} s | {} |\n",
            row.file,
            row.what,
            row.bytes as f64 / 1e6,
            row.seconds,
            result.replace('|', "/")
        ));
    }
    s.push_str(&format!(
        "\nWhole folder in one ingest: {:.1} s, {} files ingested, {} refused, `kb check` {}; peak RSS {} MB; address-space limit {}.\n",
        r.folder_seconds,
        r.folder_ingested,
        r.folder_failed,
        if r.kb_check_ok { "ok" } else { "FAILED" },
        r.peak_rss_mb,
        r.address_space_limit_kb.map(|k| format!("{} MB", k / 1024)).unwrap_or_else(|| "none".into())
    ));
    s
}
