//! Ingestion: walk the given paths (honouring .gitignore and
//! .tresorignore, never leaving the roots through a symlink), skip files
//! whose sha256 is unchanged, and for each new or changed file stream
//! parse → chunk → embed → store in one transaction. A file that fails is
//! reported with the reason and skipped; the rest goes on.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::chunk::{embedding_text, Chunk, ChunkConfig, Chunker};
use crate::embed::TextEmbedder;
use crate::error::{KbError, Result};
use crate::lang::{detect, Lang};
use crate::parse::{parse_file, Event, Format, Limits, ParseError};
use crate::store::{fts_terms, DocMeta, Kb, NewChunk};
use std::sync::OnceLock;
use tresor_guard::injection::{Detector, InjectionAction};

#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Delete documents under the given roots whose files are gone.
    pub prune: bool,
    pub chunk: ChunkConfig,
    pub limits: Limits,
    /// Chunks per embedder call.
    pub batch: usize,
    /// Save the vector index at least this often during long ingests.
    pub save_every_s: u64,
    /// The prompt-injection firewall (tresor-guard): what happens to a chunk
    /// with instruction-like content. `Quarantine` (default) and `Block` keep
    /// it aside (`kb list`/`kb stats`, never retrieved), `Drop` discards it,
    /// `Warn` stores it and counts it; None: no screening.
    pub injection: Option<InjectionAction>,
    /// PII redaction of chunk text before it is embedded and stored
    /// (tresor-guard). Some: store it as this KB's setting; None: use the
    /// KB's stored setting (`off` unless set).
    pub redact_pii: Option<tresor_guard::redact::Setting>,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            prune: false,
            chunk: ChunkConfig::default(),
            limits: Limits::default(),
            batch: 32,
            save_every_s: 120,
            injection: Some(InjectionAction::Quarantine),
            redact_pii: None,
        }
    }
}

/// Progress callbacks (the CLI draws a bar with them).
pub trait IngestProgress {
    fn start(&self, _files: usize, _bytes: u64) {}
    fn file(&self, _source: &str) {}
    fn advance(&self, _bytes: u64, _chunks: usize) {}
    fn finish(&self) {}
}

pub struct NoProgress;
impl IngestProgress for NoProgress {}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub source: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestReport {
    pub files: usize,
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub failed: Vec<Failure>,
    /// Not ingested on purpose (unsupported type, symlink out of the roots).
    pub skipped: Vec<Failure>,
    pub pruned: Vec<String>,
    pub chunks: usize,
    /// Chunks the injection firewall quarantined, dropped, or let through with a warning.
    pub quarantined: usize,
    pub dropped: usize,
    pub flagged: usize,
    pub bytes: u64,
    pub seconds: f64,
}

/// The shipped injection detector (its classifier runs on the chunk
/// embeddings when the knowledge base's embedder is the one it was trained on).
fn detector() -> Option<&'static Detector> {
    static D: OnceLock<Option<Detector>> = OnceLock::new();
    D.get_or_init(|| match Detector::shipped() {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!("injection detector unavailable: {e}");
            None
        }
    })
    .as_ref()
}

/// A file to ingest: where it is and the source path it is stored under.
#[derive(Debug, Clone)]
struct Candidate {
    path: PathBuf,
    source: String,
    explicit: bool,
}

fn walk(roots: &[PathBuf], report: &mut IngestReport) -> Vec<Candidate> {
    let canon_roots: Vec<PathBuf> = roots.iter().filter_map(|r| std::fs::canonicalize(r).ok()).collect();
    let inside = |p: &Path| canon_roots.iter().any(|r| p.starts_with(r));
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for root in roots {
        let meta = match std::fs::symlink_metadata(root) {
            Ok(m) => m,
            Err(e) => {
                report.failed.push(Failure { source: root.display().to_string(), reason: e.to_string() });
                continue;
            }
        };
        if !meta.is_dir() && !(meta.file_type().is_symlink() && root.is_dir()) {
            if seen.insert(root.clone()) {
                out.push(Candidate { path: root.clone(), source: root.display().to_string(), explicit: true });
            }
            continue;
        }
        let walker = ignore::WalkBuilder::new(root)
            .follow_links(false)
            .hidden(true)
            .git_ignore(true)
            .git_exclude(true)
            .git_global(false)
            .require_git(false)
            .ignore(true)
            .parents(true)
            .add_custom_ignore_filename(".tresorignore")
            .sort_by_file_name(|a, b| a.cmp(b))
            .build();
        for entry in walker {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    report.failed.push(Failure { source: root.display().to_string(), reason: e.to_string() });
                    continue;
                }
            };
            let Some(ft) = entry.file_type() else { continue };
            let path = entry.path().to_path_buf();
            if ft.is_symlink() {
                match std::fs::canonicalize(&path) {
                    Ok(t) if inside(&t) && t.is_file() => {}
                    Ok(t) if t.is_dir() => {
                        report.skipped.push(Failure {
                            source: path.display().to_string(),
                            reason: "symlink to a directory (not followed)".into(),
                        });
                        continue;
                    }
                    _ => {
                        report.skipped.push(Failure {
                            source: path.display().to_string(),
                            reason: "symlink points outside the ingested folders (not followed)".into(),
                        });
                        continue;
                    }
                }
            } else if !ft.is_file() {
                continue;
            }
            if Format::from_path(&path).is_none() {
                continue; // unsupported types inside folders are ignored quietly
            }
            if seen.insert(path.clone()) {
                out.push(Candidate { source: path.display().to_string(), path, explicit: false });
            }
        }
    }
    out
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

enum Outcome {
    Added(usize),
    Updated(usize),
    Unchanged,
}

/// Ingests `roots` into `kb`.
pub fn ingest(
    kb: &mut Kb,
    embedder: &dyn TextEmbedder,
    roots: &[PathBuf],
    opts: &IngestOptions,
    progress: &dyn IngestProgress,
) -> Result<IngestReport> {
    let t0 = Instant::now();
    kb.bind_embedder(&embedder.model_id(), embedder.dim())?;
    kb.ensure_index()?;
    let pii = crate::pii::Redactor::open(kb, opts.redact_pii)?;
    let mut report = IngestReport::default();
    let files = walk(roots, &mut report);
    let total: u64 = files.iter().filter_map(|c| std::fs::metadata(&c.path).ok()).map(|m| m.len()).sum();
    progress.start(files.len(), total);
    let mut last_save = Instant::now();
    for c in &files {
        report.files += 1;
        progress.file(&c.source);
        if c.explicit && Format::from_path(&c.path).is_none() {
            report.failed.push(Failure { source: c.source.clone(), reason: ParseError::Unsupported.to_string() });
            continue;
        }
        match ingest_file(kb, embedder, c, opts, progress, &mut report, &pii) {
            Ok((Outcome::Added(n), bytes)) => {
                report.added += 1;
                report.chunks += n;
                report.bytes += bytes;
            }
            Ok((Outcome::Updated(n), bytes)) => {
                report.updated += 1;
                report.chunks += n;
                report.bytes += bytes;
            }
            Ok((Outcome::Unchanged, _)) => report.unchanged += 1,
            // the database itself failing is not one bad file: stop
            Err(e @ KbError::Db { .. }) | Err(e @ KbError::Index { .. }) => return Err(e),
            Err(KbError::Parse { source, .. }) => report.failed.push(Failure { source: c.source.clone(), reason: source.to_string() }),
            Err(e) => report.failed.push(Failure { source: c.source.clone(), reason: e.to_string() }),
        }
        // pseudonyms of a stored document must be reversible even if a later file aborts the run
        pii.save(kb)?;
        if last_save.elapsed().as_secs() >= opts.save_every_s {
            kb.save_index()?;
            last_save = Instant::now();
        }
    }
    if opts.prune {
        let seen: HashSet<&str> = files.iter().map(|c| c.source.as_str()).collect();
        for src in kb.sources()? {
            let under = roots.iter().any(|r| {
                let r = r.display().to_string();
                let r = r.trim_end_matches('/');
                src == r || src.starts_with(&format!("{r}/"))
            });
            if under && !seen.contains(src.as_str()) && !Path::new(&src).exists() {
                kb.remove_source(&src)?;
                report.pruned.push(src);
            }
        }
    }
    pii.save(kb)?;
    kb.save_index()?;
    progress.finish();
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

fn ingest_file(
    kb: &mut Kb,
    embedder: &dyn TextEmbedder,
    c: &Candidate,
    opts: &IngestOptions,
    progress: &dyn IngestProgress,
    report: &mut IngestReport,
    pii: &crate::pii::Redactor,
) -> Result<(Outcome, u64)> {
    let io = |e: std::io::Error| KbError::Io { path: c.path.clone(), source: e };
    let meta = std::fs::metadata(&c.path).map_err(io)?;
    let format = Format::from_path(&c.path).ok_or_else(|| KbError::Parse { path: c.path.clone(), source: ParseError::Unsupported })?;
    let sha = sha256_file(&c.path).map_err(io)?;
    if kb.document_sha(&c.source)?.as_deref() == Some(sha.as_str()) {
        progress.advance(meta.len(), 0);
        return Ok((Outcome::Unchanged, 0));
    }
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let stem = c.path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    let doc = DocMeta {
        source: c.source.clone(),
        title: stem.clone(),
        format: format.as_str().into(),
        lang: "en".into(),
        sha256: sha,
        size: meta.len(),
        mtime,
    };
    let count = |t: &str| embedder.count_tokens(t);
    let mut chunker = Chunker::new(opts.chunk.clone(), &count, embedder.max_tokens(), &stem);
    let mut tx = kb.begin_document(&doc)?;
    let replaced = tx.replaced;
    let mut sample = String::new();
    let mut doc_lang: Option<Lang> = None;
    let mut vocab: HashSet<String> = HashSet::new();
    let mut lang_counts = [0usize; 2];
    let mut failure: Option<KbError> = None;
    let mut flagged = 0usize;
    let flush = |chunks: Vec<Chunk>,
                     title: &str,
                     doc_lang: Option<Lang>,
                     vocab: &mut HashSet<String>,
                     lang_counts: &mut [usize; 2],
                     flagged: &mut usize,
                     tx: &mut crate::store::DocTx<'_>|
     -> Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        let chunks = pii.chunks(chunks);
        let texts: Vec<String> = chunks.iter().map(|ch| embedding_text(title, &ch.heading, &ch.text)).collect();
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        let vecs = embedder.embed(&refs)?;
        if vecs.len() != chunks.len() || vecs.iter().any(|v| v.len() != embedder.dim()) {
            return Err(KbError::Embed("embedder returned vectors of the wrong shape".into()));
        }
        let mut rows = Vec::with_capacity(chunks.len());
        let screen = opts.injection.zip(detector());
        let use_clf = screen.is_some_and(|(_, d)| d.embed_model() == embedder.model_id());
        for (ch, v) in chunks.iter().zip(&vecs) {
            if let Some((action, det)) = screen {
                let verdict = if use_clf { det.detect_one(&ch.text, v).ok() } else { None }.unwrap_or_else(|| det.detect_rules_only(&ch.text));
                if verdict.injection {
                    let ord = tx.chunks() + tx.quarantined + tx.dropped;
                    match action {
                        InjectionAction::Drop => {
                            tx.dropped += 1;
                            continue;
                        }
                        InjectionAction::Quarantine | InjectionAction::Block => {
                            tx.quarantine(ch, ord, verdict.score, &verdict.reasons)?;
                            continue;
                        }
                        InjectionAction::Warn => *flagged += 1,
                    }
                }
            }
            let lang = detect(&ch.text).or(doc_lang).unwrap_or(Lang::En);
            lang_counts[(lang == Lang::De) as usize] += 1;
            if lang == Lang::De && vocab.len() < 200_000 {
                vocab.extend(crate::analyze::german_vocabulary(&ch.text));
            }
            let known = |s: &str| vocab.contains(s);
            let (fts_head, fts_body) = fts_terms(title, &ch.heading, &ch.text, lang, &known);
            rows.push(NewChunk { chunk: ch, lang, embedding: v, fts_head, fts_body });
        }
        tx.add(&rows)?;
        progress.advance(0, chunks.len());
        Ok(())
    };
    let mut consumed: u64 = 0;
    let res = parse_file(&c.path, format, &opts.limits, &mut |ev: Event| {
        if let Event::Block(b) = &ev {
            if doc_lang.is_none() {
                if sample.len() < 8192 {
                    sample.push_str(&b.text);
                    sample.push('\n');
                }
                if sample.len() >= 8192 {
                    doc_lang = detect(&sample);
                }
            }
            let n = b.text.len() as u64;
            consumed += n;
            progress.advance(n.min(meta.len().saturating_sub(consumed - n)), 0);
        }
        chunker.push(ev);
        if chunker.ready_len() >= opts.batch {
            let ready: Vec<Chunk> = chunker.take_ready().collect();
            let title = chunker.title.clone();
            let dl = doc_lang.or_else(|| detect(&sample));
            if let Err(e) = flush(ready, &title, dl, &mut vocab, &mut lang_counts, &mut flagged, &mut tx) {
                let msg = e.to_string();
                failure = Some(e);
                return Err(ParseError::Sink(msg));
            }
        }
        Ok(())
    });
    if let Some(e) = failure {
        return Err(e); // the transaction rolls back on drop
    }
    res.map_err(|source| KbError::Parse { path: c.path.clone(), source })?;
    chunker.finish();
    let ready: Vec<Chunk> = chunker.take_ready().collect();
    let title = chunker.title.clone();
    let dl = doc_lang.or_else(|| detect(&sample));
    flush(ready, &title, dl, &mut vocab, &mut lang_counts, &mut flagged, &mut tx)?;
    if tx.chunks() + tx.quarantined + tx.dropped == 0 {
        return Err(KbError::Parse { path: c.path.clone(), source: ParseError::NoText });
    }
    let lang = if lang_counts[1] > lang_counts[0] { Lang::De } else { Lang::En };
    let (quarantined, dropped) = (tx.quarantined, tx.dropped);
    let n = tx.commit(&title, lang.as_str())?;
    report.quarantined += quarantined;
    report.dropped += dropped;
    report.flagged += flagged;
    progress.advance(meta.len().saturating_sub(consumed), 0);
    kb.after_write()?;
    Ok((if replaced { Outcome::Updated(n) } else { Outcome::Added(n) }, meta.len()))
}
