//! Ingestion: walk the given paths (honouring .gitignore and
//! .tresorignore, never leaving the roots through a symlink), skip files
//! whose sha256 is unchanged, and for each new or changed file stream
//! parse → chunk → embed → store in one transaction. A file that fails is
//! reported with the reason and skipped; the rest goes on.

use std::cell::Cell;
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
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
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Failure {
    pub source: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
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
    /// Flagged chunks kept without their injected sentences (the cut sentences are quarantined on their own).
    pub neutralised: usize,
    pub bytes: u64,
    pub seconds: f64,
    /// Where the time of new and changed files went.
    pub stages: StageSeconds,
}

/// Seconds per ingest stage, summed over the files written (unchanged files
/// cost their sha256 only, in `parse_chunk`).
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct StageSeconds {
    /// Reading, hashing, parsing and chunking (token counting included): a
    /// file's time not spent in the stages below.
    pub parse_chunk: f64,
    /// PII redaction of chunk text.
    pub redact: f64,
    /// The embedding model.
    pub embed: f64,
    /// The prompt-injection screen.
    pub screen: f64,
    /// Language detection and FTS term analysis (stemming, decompounding).
    pub analyze: f64,
    /// SQLite writes (chunks, FTS5, index log) and the commit.
    pub store: f64,
    /// Bringing the vector (HNSW) and BM25 indexes up to date.
    pub index: f64,
}

/// Accumulates [`StageSeconds`] through shared references (the ingest
/// closures borrow it while the parser drives them).
#[derive(Default)]
struct StageClock {
    redact: Cell<f64>,
    embed: Cell<f64>,
    screen: Cell<f64>,
    analyze: Cell<f64>,
    store: Cell<f64>,
    index: Cell<f64>,
}

impl StageClock {
    /// Runs `f`, adding its time to `stage`.
    fn time<T>(stage: &Cell<f64>, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        stage.set(stage.get() + t.elapsed().as_secs_f64());
        out
    }

    /// Adds this file's stages to `total`; the rest of `file_seconds` is parsing and chunking.
    fn add_to(&self, total: &mut StageSeconds, file_seconds: f64) {
        let parts = [
            (&mut total.redact, self.redact.get()),
            (&mut total.embed, self.embed.get()),
            (&mut total.screen, self.screen.get()),
            (&mut total.analyze, self.analyze.get()),
            (&mut total.store, self.store.get()),
            (&mut total.index, self.index.get()),
        ];
        let mut staged = 0.0;
        for (t, v) in parts {
            *t += v;
            staged += v;
        }
        total.parse_chunk += (file_seconds - staged).max(0.0);
    }
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

/// The lock file that serialises ingests into one knowledge base (held exclusively while an
/// ingest runs; waited for, never broken; the kernel releases it when a process dies).
pub const INGEST_LOCK: &str = "ingest.lock";

fn ingest_lock(dir: &Path) -> Result<std::fs::File> {
    use crate::error::IoCtx;
    let p = dir.join(INGEST_LOCK);
    let mut o = std::fs::OpenOptions::new();
    o.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let f = o.open(&p).io(&p)?;
    f.lock().io(&p)?;
    Ok(f)
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
    // One ingest per knowledge base at a time: a document's transaction spans its embedding, so a
    // second ingest's write would wait minutes on a big file and fail on SQLite's busy timeout.
    // The second one waits here for the first to finish instead (both finish; files the first
    // stored are then unchanged), and catches up with its writes through the index log.
    let _one_at_a_time = ingest_lock(kb.dir())?;
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
        let clock = StageClock::default();
        let t_file = Instant::now();
        let outcome = ingest_file(kb, embedder, c, opts, progress, &mut report, &pii, &clock);
        clock.add_to(&mut report.stages, t_file.elapsed().as_secs_f64());
        match outcome {
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
            Err(e @ KbError::Db { .. }) | Err(e @ KbError::Index { .. }) | Err(e @ KbError::Store { .. }) => return Err(e),
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

#[allow(clippy::too_many_arguments)] // the per-run state one file's write reads and adds to
fn ingest_file(
    kb: &mut Kb,
    embedder: &dyn TextEmbedder,
    c: &Candidate,
    opts: &IngestOptions,
    progress: &dyn IngestProgress,
    report: &mut IngestReport,
    pii: &crate::pii::Redactor,
    clock: &StageClock,
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
        // redacted like the title the commit sets: a store may see the row before that
        title: pii.text(&stem),
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
    // detection runs once on the full sample: a document without a language
    // (millions of JSON numbers) re-ran it on 8 KB for every block (minutes)
    let mut sampled = false;
    let mut vocab: HashSet<String> = HashSet::new();
    let mut lang_counts = [0usize; 2];
    let mut failure: Option<KbError> = None;
    let mut flagged = 0usize;
    let mut neutralised = 0usize;
    let flush = |chunks: Vec<Chunk>,
                     title: &str,
                     doc_lang: Option<Lang>,
                     vocab: &mut HashSet<String>,
                     lang_counts: &mut [usize; 2],
                     flagged: &mut usize,
                     neutralised: &mut usize,
                     tx: &mut crate::store::DocTx<'_>|
     -> Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        let chunks = StageClock::time(&clock.redact, || pii.chunks(chunks));
        let texts: Vec<String> = chunks.iter().map(|ch| embedding_text(title, &ch.heading, &ch.text)).collect();
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        let vecs = StageClock::time(&clock.embed, || embedder.embed(&refs))?;
        if vecs.len() != chunks.len() || vecs.iter().any(|v| v.len() != embedder.dim()) {
            return Err(KbError::Embed("embedder returned vectors of the wrong shape".into()));
        }
        // The per-chunk work that needs no order (screen verdicts, language,
        // FTS terms) runs over the pool; what is shared (the document's
        // German vocabulary, the transaction) is done in order between.
        let screen = opts.injection.zip(detector());
        let use_clf = screen.is_some_and(|(_, d)| d.embed_model() == embedder.model_id());
        let verdicts: Vec<Option<tresor_guard::injection::Verdict>> = StageClock::time(&clock.screen, || {
            chunks
                .par_iter()
                .zip(&vecs)
                .map(|(ch, v)| {
                    screen.map(|(_, det)| {
                        if use_clf { det.detect_one(&ch.text, v).ok() } else { None }.unwrap_or_else(|| det.detect_rules_only(&ch.text))
                    })
                })
                .collect()
        });
        // flagged chunks lose their injected sentences and keep their facts (issue #18)
        let repairs = match screen {
            Some((action, det)) if action != InjectionAction::Warn => {
                StageClock::time(&clock.screen, || crate::neutralise::repair_flagged(&chunks, &verdicts, title, embedder, det, use_clf))?
            }
            _ => (0..chunks.len()).map(|_| None).collect(),
        };
        let langs: Vec<Lang> =
            StageClock::time(&clock.analyze, || chunks.par_iter().map(|ch| detect(&ch.text).or(doc_lang).unwrap_or(Lang::En)).collect());
        let mut keep: Vec<(&Chunk, Lang, &[f32])> = Vec::with_capacity(chunks.len());
        for ((((ch, v), verdict), lang), repair) in chunks.iter().zip(&vecs).zip(verdicts).zip(langs).zip(&repairs) {
            let (mut ch, mut v) = (ch, v.as_slice());
            if let (Some((action, _)), Some(verdict)) = (screen, verdict) {
                if let (true, Some(r)) = (verdict.injection, repair) {
                    if action == InjectionAction::Drop {
                        tx.dropped += 1;
                    } else {
                        let ord = tx.chunks() + tx.quarantined + tx.dropped;
                        tx.quarantine(&r.cut, ord, verdict.score, &r.reasons)?;
                    }
                    *neutralised += 1;
                    (ch, v) = (&r.kept, r.embedding.as_slice());
                } else if verdict.injection {
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
            lang_counts[(lang == Lang::De) as usize] += 1;
            if lang == Lang::De && vocab.len() < 200_000 {
                StageClock::time(&clock.analyze, || vocab.extend(crate::analyze::german_vocabulary(&ch.text)));
            }
            keep.push((ch, lang, v));
        }
        // every German word of the batch is known to each of its chunks' decompounding
        let known = |s: &str| vocab.contains(s);
        let terms: Vec<(String, String)> = StageClock::time(&clock.analyze, || {
            keep.par_iter().map(|(ch, lang, _)| fts_terms(title, &ch.heading, &ch.text, *lang, &known)).collect()
        });
        let rows: Vec<NewChunk> = keep
            .into_iter()
            .zip(terms)
            .map(|((chunk, lang, embedding), (fts_head, fts_body))| NewChunk { chunk, lang, embedding, fts_head, fts_body })
            .collect();
        StageClock::time(&clock.store, || tx.add(&rows))?;
        progress.advance(0, chunks.len());
        Ok(())
    };
    let mut consumed: u64 = 0;
    let res = parse_file(&c.path, format, &opts.limits, &mut |ev: Event| {
        if let Event::Block(b) = &ev {
            if doc_lang.is_none() && !sampled {
                if sample.len() < 8192 {
                    sample.push_str(&b.text);
                    sample.push('\n');
                }
                if sample.len() >= 8192 {
                    doc_lang = detect(&sample);
                    sampled = true;
                }
            }
            let n = b.text.len() as u64;
            consumed += n;
            progress.advance(n.min(meta.len().saturating_sub(consumed - n)), 0);
        }
        chunker.push(ev);
        if chunker.ready_len() >= opts.batch {
            let ready: Vec<Chunk> = chunker.take_ready().collect();
            // the title is stored, embedded and indexed like the text: redacted like it
            let title = pii.text(&chunker.title);
            let dl = doc_lang.or_else(|| detect(&sample));
            if let Err(e) = flush(ready, &title, dl, &mut vocab, &mut lang_counts, &mut flagged, &mut neutralised, &mut tx) {
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
    let title = pii.text(&chunker.title);
    let dl = doc_lang.or_else(|| detect(&sample));
    flush(ready, &title, dl, &mut vocab, &mut lang_counts, &mut flagged, &mut neutralised, &mut tx)?;
    if tx.chunks() + tx.quarantined + tx.dropped == 0 {
        return Err(KbError::Parse { path: c.path.clone(), source: ParseError::NoText });
    }
    let lang = if lang_counts[1] > lang_counts[0] { Lang::De } else { Lang::En };
    let (quarantined, dropped) = (tx.quarantined, tx.dropped);
    let n = StageClock::time(&clock.store, || tx.commit(&title, lang.as_str()))?;
    report.quarantined += quarantined;
    report.dropped += dropped;
    report.flagged += flagged;
    report.neutralised += neutralised;
    progress.advance(meta.len().saturating_sub(consumed), 0);
    StageClock::time(&clock.index, || kb.after_write())?;
    Ok((if replaced { Outcome::Updated(n) } else { Outcome::Added(n) }, meta.len()))
}
