//! `tresor bench kb`: ingest throughput (sample knowledge base and a
//! generated corpus, real embedder), query latency per mode at growing
//! scales, and HNSW recall@10 against exact search. The scale runs use
//! synthetic text (Zipf-distributed words) and synthetic clustered vectors,
//! inserted through the same store and queried through the same `search`
//! as real knowledge bases; only the embedder is replaced, by a lookup of
//! the synthetic query vectors (said so in the report).
//!
//! Owns the generated corpora, the synthetic scale knowledge bases (in a
//! scratch or `--work-dir` folder) and the report; never touches a user's
//! knowledge bases and never asserts a speed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::distributions::{Distribution, WeightedIndex};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tresor_guard::crypto::WorkspaceKey;
use tresor_kb::chunk::Chunk;
use tresor_kb::embed::{dot, HashEmbedder, TextEmbedder};
use tresor_kb::error::IoCtx;
use tresor_kb::ingest::StageSeconds;
use tresor_kb::lang::Lang;
use tresor_kb::store::DocMeta;
use tresor_kb::{ingest, search, IngestOptions, Kb, KbError, Mode, NoProgress, RerankChoice, Result, SearchOptions};

use crate::percentile;

mod pg;
pub use pg::{PgIngestBench, PgScaleBench, PgTarget};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub sample_dir: Option<PathBuf>,
    /// Generated corpus size for the ingest benchmark (0 = skip): ingested
    /// with the real tokenizer but stand-in vectors (parse, chunk, screen,
    /// store, index: everything but the embedding model).
    pub corpus_mb: f64,
    /// A generated corpus of this size is ingested with the real embedder
    /// (0 = skip): the embedding-bound end-to-end throughput.
    pub embed_corpus_mb: f64,
    pub scales: Vec<usize>,
    pub queries: usize,
    /// Scratch folder (None: a temporary one, removed afterwards).
    pub work_dir: Option<PathBuf>,
    pub threads: Option<usize>,
    /// Keep the scale knowledge bases under `work_dir` and reuse one whose
    /// chunk count matches (the 1M build takes tens of minutes on 2 cores).
    pub keep_scales: bool,
    /// Scales measure BM25 only: no vector index is built (a kept
    /// knowledge base is reused without one), no vector or hybrid latency.
    pub bm25_only: bool,
    /// BM25 pruning budget for the latency runs (None: the search default).
    pub bm25_max_postings: Option<usize>,
    /// Also measure the PostgreSQL store on this server (`--store`): the same
    /// scales, and ingest with two concurrent clients.
    pub postgres: Option<PgTarget>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestBench {
    pub corpus: String,
    /// The embedder used: the real one, or `standin:<id>` (real tokenizer, hashed vectors).
    pub embedder: String,
    pub files: usize,
    pub mb: f64,
    pub chunks: usize,
    pub seconds: f64,
    pub mb_per_min: f64,
    pub chunks_per_s: f64,
    /// Where the time went (seconds per ingest stage).
    pub stages: StageSeconds,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub mode: String,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    /// The row of search mode `mode` from its timings in milliseconds.
    pub(crate) fn of(mode: &str, mut ms: Vec<f64>) -> Latency {
        let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
        ms.sort_by(|a, b| a.total_cmp(b));
        Latency { mode: mode.to_string(), p50_ms: percentile(&ms, 0.5), p95_ms: percentile(&ms, 0.95), mean_ms: mean }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ScaleBench {
    pub chunks: usize,
    pub synthetic: bool,
    pub insert_s: f64,
    pub index_build_s: f64,
    pub quantization: String,
    /// HNSW vs exact search over the f32 vectors (graph + quantization loss).
    pub index_recall_at_10: f64,
    /// HNSW vs usearch's exact search over the same quantized vectors (graph loss only).
    pub graph_recall_at_10: f64,
    pub db_mb: f64,
    pub index_mb: f64,
    pub latency: Vec<Latency>,
    /// The same BM25 scored through FTS5's bm25() (the index's reference), timed alternating with the modes.
    pub bm25_fts5: Latency,
    /// FTS5's BM25 latency over the BM25 index's (same queries, alternating).
    pub bm25_fts5_ratio_p50: f64,
    pub bm25_fts5_ratio_p95: f64,
    /// Share of FTS5's BM25 top 10 the index's top 10 holds (ties may order differently).
    pub bm25_fts5_agreement_at_10: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub machine: String,
    pub cpus: usize,
    pub embedder: String,
    pub ingest: Vec<IngestBench>,
    pub scales: Vec<ScaleBench>,
    /// The PostgreSQL store at the same scales (`--store`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub postgres_scales: Vec<PgScaleBench>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_ingest: Option<PgIngestBench>,
    pub notes: Vec<String>,
}

fn machine() -> String {
    let cpu = crate::cpu_model();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<f64>().ok()))
        .map(|kb| format!(", {:.0} GB RAM", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    format!("{cpu}{mem}")
}

const EN_WORDS: &[&str] = &[
    "employee", "vacation", "travel", "expense", "report", "policy", "security", "password", "device", "laptop",
    "customer", "product", "price", "license", "support", "update", "network", "access", "account", "manager",
    "team", "project", "meeting", "schedule", "budget", "invoice", "payment", "contract", "office", "remote",
    "training", "benefit", "insurance", "request", "approval", "deadline", "quarter", "review", "feedback", "goal",
    "server", "backup", "incident", "data", "privacy", "encryption", "software", "hardware", "warranty", "order",
];
const DE_WORDS: &[&str] = &[
    "Mitarbeiter", "Urlaub", "Reise", "Kosten", "Abrechnung", "Richtlinie", "Sicherheit", "Passwort", "Gerät",
    "Kunde", "Produkt", "Preis", "Lizenz", "Unterstützung", "Netzwerk", "Zugang", "Konto", "Vorgesetzte", "Projekt",
    "Besprechung", "Termin", "Rechnung", "Zahlung", "Vertrag", "Büro", "Schulung", "Versicherung", "Antrag",
    "Genehmigung", "Frist", "Quartal", "Daten", "Datenschutz", "Verschlüsselung", "Garantie", "Bestellung",
    "Arbeitszeit", "Homeoffice", "Spesen", "Beleg", "Fahrtkosten", "Übernachtung", "Pauschale", "Anspruch",
];
const FILLER: &[&str] = &[
    "the", "a", "and", "for", "with", "is", "are", "must", "can", "be", "to", "of", "in", "on", "der", "die", "das",
    "und", "für", "mit", "ist", "wird", "werden", "im", "am", "zu", "von", "bei",
];

/// Writes `mb` megabytes of Markdown (German and English company prose) into `dir`.
pub fn generate_corpus(dir: &Path, mb: f64, seed: u64) -> Result<usize> {
    std::fs::create_dir_all(dir).io(dir)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let target = (mb * 1e6) as usize;
    let mut written = 0;
    let mut files = 0;
    while written < target {
        let de = files % 2 == 1;
        let words = if de { DE_WORDS } else { EN_WORDS };
        let mut s = format!("# {} {}\n\n", words[rng.gen_range(0..words.len())], files);
        while s.len() < 200_000 {
            s.push_str(&format!("## {} {}\n\n", words[rng.gen_range(0..words.len())], words[rng.gen_range(0..words.len())]));
            for _ in 0..rng.gen_range(2..6) {
                for _ in 0..rng.gen_range(3..8) {
                    let n = rng.gen_range(8..20);
                    let mut sent = Vec::with_capacity(n);
                    for i in 0..n {
                        let w = if rng.gen_bool(0.4) { FILLER[rng.gen_range(0..FILLER.len())] } else { words[rng.gen_range(0..words.len())] };
                        sent.push(if i == 0 { capitalize(w) } else { w.to_string() });
                    }
                    s.push_str(&sent.join(" "));
                    s.push_str(". ");
                }
                s.push_str("\n\n");
            }
        }
        let p = dir.join(format!("doc-{files:04}.md"));
        std::fs::write(&p, &s).io(&p)?;
        written += s.len();
        files += 1;
    }
    Ok(files)
}

fn capitalize(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    walk_files(dir).iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// The real embedder's tokenizer and shape with hashed vectors instead of
/// the model: ingest throughput without the embedding model's cost.
struct StandIn<'a> {
    real: &'a dyn TextEmbedder,
    hash: HashEmbedder,
}

impl TextEmbedder for StandIn<'_> {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        self.hash.embed(texts)
    }
    fn dim(&self) -> usize {
        self.real.dim()
    }
    fn count_tokens(&self, text: &str) -> usize {
        self.real.count_tokens(text)
    }
    fn max_tokens(&self) -> usize {
        self.real.max_tokens()
    }
    fn model_id(&self) -> String {
        format!("standin:{}", self.real.model_id())
    }
}

fn bench_ingest(embedder: &dyn TextEmbedder, corpus: &Path, label: &str, work: &Path) -> Result<IngestBench> {
    let kb_dir = work.join(format!("ingest-{label}"));
    let _ = std::fs::remove_dir_all(&kb_dir);
    let mut kb = Kb::open(&kb_dir, &WorkspaceKey::ephemeral())?;
    let t = Instant::now();
    let rep = ingest(&mut kb, embedder, &[corpus.to_path_buf()], &IngestOptions::default(), &NoProgress)?;
    let secs = t.elapsed().as_secs_f64();
    let mb = dir_bytes(corpus) as f64 / 1e6;
    Ok(IngestBench {
        corpus: label.to_string(),
        embedder: embedder.model_id(),
        files: rep.files,
        mb,
        chunks: rep.chunks,
        seconds: secs,
        mb_per_min: mb / (secs / 60.0),
        chunks_per_s: rep.chunks as f64 / secs,
        stages: rep.stages,
    })
}

/// Query vectors by query text; the knowledge base's "embedder" at scale.
struct SyntheticEmbedder {
    dim: usize,
    queries: HashMap<String, Vec<f32>>,
}

impl TextEmbedder for SyntheticEmbedder {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        texts
            .iter()
            .map(|t| self.queries.get(*t).cloned().ok_or_else(|| KbError::Embed(format!("no synthetic vector for `{t}`"))))
            .collect()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn count_tokens(&self, text: &str) -> usize {
        tresor_kb::analyze::words(text).count()
    }
    fn max_tokens(&self) -> usize {
        256
    }
    fn model_id(&self) -> String {
        format!("synthetic-{}", self.dim)
    }
}

fn gaussian(rng: &mut impl Rng) -> f32 {
    // Box-Muller
    let u1: f32 = rng.gen_range(1e-7f32..1.0);
    let u2: f32 = rng.gen_range(0.0f32..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

struct Synth {
    rng: rand::rngs::StdRng,
    dim: usize,
    centroids: Vec<Vec<f32>>,
    vocab: Vec<String>,
    zipf: WeightedIndex<f64>,
}

impl Synth {
    /// `n` chunks in about n/100 topics (at least 16, at most 4096): the
    /// number of topics grows with the corpus, as in real collections.
    fn new(dim: usize, n: usize, seed: u64) -> Synth {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let centroids = (0..(n / 100).clamp(16, 4096))
            .map(|_| {
                let mut v: Vec<f32> = (0..dim).map(|_| gaussian(&mut rng)).collect();
                normalize(&mut v);
                v
            })
            .collect();
        const SYL: &[&str] = &["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ber", "gen", "lin", "dor", "fal", "mun", "tra", "pel"];
        let mut vocab = Vec::with_capacity(30_000);
        let mut seen = std::collections::HashSet::new();
        while vocab.len() < 30_000 {
            let n = rng.gen_range(2..5);
            let w: String = (0..n).map(|_| SYL[rng.gen_range(0..SYL.len())]).collect();
            if seen.insert(w.clone()) {
                vocab.push(w);
            }
        }
        let zipf = WeightedIndex::new((0..vocab.len()).map(|r| 1.0 / (r as f64 + 2.0))).expect("weights");
        Synth { rng, dim, centroids, vocab, zipf }
    }
    fn vector(&mut self) -> Vec<f32> {
        let c = &self.centroids[self.rng.gen_range(0..self.centroids.len())];
        let sigma = 0.8 / (self.dim as f32).sqrt();
        let mut v: Vec<f32> = c.iter().map(|x| x + sigma * gaussian(&mut self.rng)).collect();
        normalize(&mut v);
        v
    }
    /// Synthetic document `doc_no` of `m` chunks (40–80 words, a random vector each); the
    /// vectors are appended to `all` for the exact search. One generator for both stores' scales.
    fn document(&mut self, doc_no: usize, m: usize, all: &mut Vec<f32>) -> (DocMeta, Vec<(Chunk, Vec<f32>, Lang)>) {
        let mut chunks = Vec::with_capacity(m);
        for i in 0..m {
            let words = self.rng.gen_range(40..80);
            let text = self.text(words);
            let v = self.vector();
            all.extend_from_slice(&v);
            let ch = Chunk { ord: i, heading: format!("Section {}", i / 10), page: None, start: 0, end: text.len(), tokens: 60, text };
            chunks.push((ch, v, Lang::En));
        }
        let meta = DocMeta {
            source: format!("synthetic/doc-{doc_no:07}.md"),
            title: format!("Synthetic document {doc_no}"),
            format: "markdown".into(),
            lang: "en".into(),
            sha256: format!("{doc_no:064x}"),
            size: 0,
            mtime: 0,
        };
        (meta, chunks)
    }

    fn text(&mut self, words: usize) -> String {
        (0..words).map(|_| self.vocab[self.zipf.sample(&mut self.rng)].as_str()).collect::<Vec<_>>().join(" ")
    }
    fn query(&mut self) -> String {
        (0..3).map(|_| self.vocab[self.rng.gen_range(50..5000)].as_str()).collect::<Vec<_>>().join(" ")
    }
}

/// The key of kept scale knowledge bases: they hold synthetic data only and
/// must reopen in a later run, so the key is fixed, not secret.
fn scale_key() -> WorkspaceKey {
    WorkspaceKey::from_bytes([0x5c; 32])
}

/// A kept scale knowledge base with exactly `n` chunks and (unless
/// `bm25_only`) its vector index, if any.
fn reusable_scale(dir: &Path, n: usize, bm25_only: bool) -> Option<Kb> {
    if !dir.is_dir() {
        return None;
    }
    let mut kb = Kb::open_existing(dir, &scale_key()).ok()?;
    (kb.chunk_count().ok()? == n && (bm25_only || kb.index().map(|i| i.len() == n).unwrap_or(false))).then_some(kb)
}

fn bench_scale(n: usize, queries: usize, work: &Path, keep: bool, bm25_only: bool, budget: Option<usize>, log: &dyn Fn(&str)) -> Result<ScaleBench> {
    let dim = 384;
    // v2: queries drawn from their own stream (a kept v1 corpus would not replay)
    let dir = work.join(format!("scale-{n}-v2"));
    let reused = if keep { reusable_scale(&dir, n, bm25_only) } else { None };
    let reuse = reused.is_some();
    let mut kb = match reused {
        Some(kb) => {
            log(&format!("  scale {n}: reusing the kept knowledge base in {}", dir.display()));
            kb
        }
        None => {
            let _ = std::fs::remove_dir_all(&dir);
            Kb::open(&dir, &if keep { scale_key() } else { WorkspaceKey::ephemeral() })?
        }
    };
    let mut synth = Synth::new(dim, n, n as u64);
    // queries from a stream of their own: the corpus (replayed for the exact
    // search over a kept knowledge base) must not depend on --queries
    let corpus_rng = std::mem::replace(&mut synth.rng, rand::rngs::StdRng::seed_from_u64(n as u64 ^ 0x51ED_270B_4F1E_AC53));
    let qn = queries.max(10);
    let mut qmap = HashMap::new();
    let mut qlist = Vec::new();
    while qlist.len() < qn {
        let t = synth.query();
        if qmap.contains_key(&t) {
            continue;
        }
        qmap.insert(t.clone(), synth.vector());
        qlist.push(t);
    }
    synth.rng = corpus_rng;
    let emb = SyntheticEmbedder { dim, queries: qmap };
    if !reuse {
        kb.bind_embedder(&emb.model_id(), dim)?;
    }
    let t = Instant::now();
    let mut all: Vec<f32> = Vec::with_capacity(n * dim);
    let per_doc = 50;
    let mut done = 0;
    let mut doc_no = 0;
    while done < n && !(reuse && bm25_only) {
        let mut batch = Vec::new();
        let mut in_batch = 0;
        while in_batch < 20_000 && done < n {
            let m = per_doc.min(n - done);
            batch.push(synth.document(doc_no, m, &mut all));
            doc_no += 1;
            done += m;
            in_batch += m;
        }
        // a kept knowledge base: the same generator replayed gives the vectors for the exact search
        if !reuse {
            kb.bulk_insert(&batch)?;
            log(&format!("  scale {n}: inserted {done} chunks"));
        }
    }
    let insert_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    if !reuse && !bm25_only {
        kb.rebuild_vectors()?;
        kb.save_index()?;
    }
    let index_build_s = t.elapsed().as_secs_f64();
    log(&format!("  scale {n}: SQLite {insert_s:.1}s, HNSW build+save {index_build_s:.1}s"));

    // index recall@10 against exact search over the f32 vectors
    let rq: Vec<Vec<f32>> = if bm25_only { Vec::new() } else { qlist.iter().take(100).map(|q| emb.queries[q].clone()).collect() };
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let exact: Vec<Vec<u64>> = std::thread::scope(|s| {
        let hs: Vec<_> = rq
            .chunks(rq.len().div_ceil(threads).max(1))
            .map(|part| {
                let all = &all;
                s.spawn(move || {
                    part.iter()
                        .map(|q| {
                            let mut best: Vec<(f32, u64)> = Vec::with_capacity(11);
                            for (i, v) in all.chunks_exact(dim).enumerate() {
                                let d = dot(q, v);
                                if best.len() < 10 || d > best[best.len() - 1].0 {
                                    let pos = best.partition_point(|b| b.0 >= d);
                                    best.insert(pos, (d, i as u64 + 1));
                                    best.truncate(10);
                                }
                            }
                            best.into_iter().map(|b| b.1).collect()
                        })
                        .collect::<Vec<Vec<u64>>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    // chunk ids are 1..=n in insertion order (fresh AUTOINCREMENT table)
    let mut found = 0usize;
    let mut found_q = 0usize;
    for (q, ex) in rq.iter().zip(&exact) {
        let idx = kb.index()?;
        let ann = idx.search(q, 10, None).map_err(|e| KbError::Index { path: dir.clone(), reason: e })?;
        found += ann.iter().filter(|(k, _)| ex.contains(k)).count();
        let exq = idx.exact_search(q, 10).map_err(|e| KbError::Index { path: dir.clone(), reason: e })?;
        found_q += ann.iter().filter(|(k, _)| exq.iter().any(|(e, _)| e == k)).count();
    }
    // NaN (null in --json) when not measured
    let recall = found as f64 / (rq.len() * 10) as f64;
    let graph_recall = found_q as f64 / (rq.len() * 10) as f64;
    drop(all);

    // every mode on each query in turn (alternating, so drift hits all alike);
    // "bm25-fts5" is the same BM25 scored by FTS5, the index's reference
    let d = SearchOptions { k: 10, rerank: RerankChoice::Off, bm25_max_postings: budget.unwrap_or(0), ..SearchOptions::default() };
    let mut runs: Vec<(&str, SearchOptions)> = vec![
        ("bm25", SearchOptions { mode: Mode::Bm25, ..d.clone() }),
        ("bm25-fts5", SearchOptions { mode: Mode::Bm25, bm25_fts5: true, ..d.clone() }),
    ];
    if !bm25_only {
        runs.push(("vector", SearchOptions { mode: Mode::Vector, ..d.clone() }));
        runs.push(("hybrid", SearchOptions { mode: Mode::Hybrid, ..d.clone() }));
    }
    for q in qlist.iter().take(10) {
        for (_, o) in &runs {
            search(&mut kb, q, Some(&emb), None, o)?;
        }
    }
    let mut ms: Vec<Vec<f64>> = vec![Vec::with_capacity(qlist.len()); runs.len()];
    let (mut agree, mut compared) = (0usize, 0usize);
    for q in &qlist {
        let mut tops: Vec<Vec<i64>> = Vec::new();
        for (i, (_, o)) in runs.iter().enumerate() {
            let t = Instant::now();
            let r = search(&mut kb, q, Some(&emb), None, o)?;
            ms[i].push(t.elapsed().as_secs_f64() * 1e3);
            if i < 2 {
                tops.push(r.hits.iter().map(|h| h.chunk_id).collect());
            }
        }
        agree += tops[0].iter().filter(|id| tops[1].contains(id)).count();
        compared += tops[1].len();
    }
    let mut latency: Vec<Latency> = runs.iter().zip(ms).map(|((name, _), m)| Latency::of(name, m)).collect();
    let (fts_p50, fts_p95) = (latency[1].p50_ms / latency[0].p50_ms.max(1e-9), latency[1].p95_ms / latency[0].p95_ms.max(1e-9));
    // `latency` keeps one row per search mode; FTS5's BM25 is reported beside it
    let bm25_fts5 = latency.remove(1);
    let stats = kb.stats("bench")?;
    let out = ScaleBench {
        chunks: n,
        synthetic: true,
        insert_s,
        index_build_s,
        quantization: stats.quantization.clone(),
        index_recall_at_10: recall,
        graph_recall_at_10: graph_recall,
        db_mb: stats.db_bytes as f64 / 1e6,
        index_mb: stats.index_bytes as f64 / 1e6,
        latency,
        bm25_fts5,
        bm25_fts5_ratio_p50: fts_p50,
        bm25_fts5_ratio_p95: fts_p95,
        bm25_fts5_agreement_at_10: agree as f64 / compared.max(1) as f64,
    };
    drop(kb);
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(out)
}

/// `static_tier`: a static embedder distilled from `embedder` (`tresor
/// models distill`); when given, the generated corpus is ingested with it
/// too (it is fast enough for the full size).
pub fn run(embedder: &dyn TextEmbedder, static_tier: Option<&dyn TextEmbedder>, opts: &BenchOptions, log: &dyn Fn(&str)) -> Result<BenchReport> {
    let tmp;
    let work = match &opts.work_dir {
        Some(w) => w.clone(),
        None => {
            tmp = tempfile::Builder::new().prefix("tresor-bench-").tempdir().io(&std::env::temp_dir())?;
            tmp.path().to_path_buf()
        }
    };
    let mut report = BenchReport {
        machine: machine(),
        cpus: opts.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
        embedder: embedder.model_id(),
        ingest: Vec::new(),
        scales: Vec::new(),
        postgres_scales: Vec::new(),
        postgres_ingest: None,
        notes: vec![
            "query latency: synthetic corpora (Zipf-distributed words; 384-d unit vectors in n/100 Gaussian topic clusters), real store and search path, k=10, no rerank".into(),
            "index recall@10: usearch HNSW vs exact f32 search over the same vectors, 100 queries".into(),
            "bm25 = the BM25 index (crates/kb/src/lexical.rs); bm25-fts5 = the same ranking scored by FTS5's bm25(); every mode runs on each query in turn; agreement@10 = share of FTS5's top 10 in the index's top 10".into(),
        ],
    };
    if let Some(sample) = &opts.sample_dir {
        log("ingest: sample knowledge base");
        report.ingest.push(bench_ingest(embedder, sample, "sample-kb", &work)?);
    }
    if opts.embed_corpus_mb > 0.0 {
        let corpus = work.join("corpus-embed");
        log(&format!("ingest: generating a {} MB corpus for the real embedder", opts.embed_corpus_mb));
        generate_corpus(&corpus, opts.embed_corpus_mb, 11)?;
        report.ingest.push(bench_ingest(embedder, &corpus, &format!("generated-{}mb", opts.embed_corpus_mb), &work)?);
        let _ = std::fs::remove_dir_all(&corpus);
    }
    if opts.corpus_mb > 0.0 {
        let corpus = work.join("corpus");
        log(&format!("ingest: generating a {:.0} MB corpus (stand-in vectors)", opts.corpus_mb));
        generate_corpus(&corpus, opts.corpus_mb, 7)?;
        let standin = StandIn { real: embedder, hash: HashEmbedder::new(embedder.dim()) };
        report.ingest.push(bench_ingest(&standin, &corpus, &format!("generated-{:.0}mb", opts.corpus_mb), &work)?);
        if let Some(fast) = static_tier {
            log(&format!("ingest: the same corpus with the static embedder {}", fast.model_id()));
            report.ingest.push(bench_ingest(fast, &corpus, &format!("generated-{:.0}mb", opts.corpus_mb), &work)?);
        }
        let _ = std::fs::remove_dir_all(&corpus);
        report.notes.push(format!(
            "ingest of generated-{:.0}mb: the real tokenizer, injection screen, SQLite/FTS5 and HNSW, with hashed stand-in vectors instead of the embedding model; the rows with the real embedder show the model-bound rate",
            opts.corpus_mb
        ));
    }
    for &n in &opts.scales {
        log(&format!("scale {n}: building"));
        report.scales.push(bench_scale(n, opts.queries, &work, opts.keep_scales && opts.work_dir.is_some(), opts.bm25_only, opts.bm25_max_postings, log)?);
    }
    if let Some(t) = &opts.postgres {
        for &n in &opts.scales {
            log(&format!("postgres scale {n}: building"));
            report.postgres_scales.push(pg::bench_scale(t, n, opts.queries, &work, opts.keep_scales && opts.work_dir.is_some(), opts.bm25_max_postings, log)?);
        }
        if opts.corpus_mb > 0.0 {
            report.postgres_ingest = Some(pg::bench_concurrent_ingest(t, opts.corpus_mb, embedder.dim(), &work, log)?);
        }
        report.notes.push(format!(
            "postgres: {} (server-side full-text: idf x ts_rank_cd over the same analysed terms; pgvector HNSW m=16, ef_construction=128, ef_search=128); latency includes the loopback/network round trips; ingest with 2 concurrent clients uses hashed vectors (no embedding model) on the generated corpus",
            t.url
        ));
    }
    Ok(report)
}

pub fn table(r: &BenchReport) -> String {
    let mut s = format!("machine: {} ({} threads), embedder {}\n\n", r.machine, r.cpus, r.embedder);
    if !r.ingest.is_empty() {
        s.push_str("| corpus | embedder | files | MB | chunks | seconds | MB/min | chunks/s |\n|---|---|---|---|---|---|---|---|\n");
        for i in &r.ingest {
            s.push_str(&format!(
                "| {} | {} | {} | {:.2} | {} | {:.1} | {:.2} | {:.1} |\n",
                i.corpus, i.embedder, i.files, i.mb, i.chunks, i.seconds, i.mb_per_min, i.chunks_per_s
            ));
        }
        s.push_str("\n| corpus | parse+chunk s | redact s | embed s | screen s | analyze s | store s | index s |\n|---|---|---|---|---|---|---|---|\n");
        for i in &r.ingest {
            let st = &i.stages;
            s.push_str(&format!(
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
                i.corpus, st.parse_chunk, st.redact, st.embed, st.screen, st.analyze, st.store, st.index
            ));
        }
        s.push('\n');
    }
    if !r.scales.is_empty() {
        s.push_str("| chunks | mode | p50 ms | p95 ms | mean ms | index recall@10 (vs f32 / vs same quantization) | FTS5 / index p50, p95 (agreement@10) | build s (sqlite + hnsw) |\n|---|---|---|---|---|---|---|---|\n");
        for sc in &r.scales {
            for l in sc.latency.iter().take(1).chain(std::iter::once(&sc.bm25_fts5)).chain(sc.latency.iter().skip(1)) {
                s.push_str(&format!(
                    "| {} | {} | {:.2} | {:.2} | {:.2} | {:.3} / {:.3} | {:.1}× / {:.1}× ({:.3}) | {:.0} + {:.0} |\n",
                    sc.chunks,
                    l.mode,
                    l.p50_ms,
                    l.p95_ms,
                    l.mean_ms,
                    sc.index_recall_at_10,
                    sc.graph_recall_at_10,
                    sc.bm25_fts5_ratio_p50,
                    sc.bm25_fts5_ratio_p95,
                    sc.bm25_fts5_agreement_at_10,
                    sc.insert_s,
                    sc.index_build_s
                ));
            }
        }
    }
    s.push_str(&pg::table(&r.postgres_scales, r.postgres_ingest.as_ref()));
    for n in &r.notes {
        s.push_str(&format!("\nnote: {n}"));
    }
    s.push('\n');
    s
}
