//! Retrieval: BM25 (the BM25 index over FTS5's stemmed, decompounded terms,
//! see [`crate::lexical`]) and vector kNN
//! (usearch), fused; then reranking (a cross-encoder when one is installed,
//! or on request the embedder's sentence max-sim, see [`crate::rerank`]);
//! near-duplicate removal; and MMR for diversity.
//!
//! Fusion ([`Fusion`]): by default a convex combination of min-max
//! normalised scores, `w_bm25 · bm25' + w_vector · cos'`, over the union of
//! both candidate lists (a BM25 candidate the kNN did not return gets its
//! exact cosine from its stored embedding; a vector candidate without a
//! BM25 match gets 0). Unlike reciprocal rank fusion it keeps how sure each
//! retriever is: a BM25 winner by a wide margin stays first, a near-tie is
//! decided by the embedding. Weighted RRF (`Fusion::Rrf`) stays available.
//! This module never writes to the store.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use crate::analyze::{fts_match, query_terms};
use crate::chunk::embedding_text;
use crate::embed::{dot, TextEmbedder};
use crate::error::{KbError, Result};
use crate::rerank::TextReranker;
use crate::store::{Filter, Kb, StoredChunk};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Hybrid,
    Bm25,
    Vector,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Hybrid => "hybrid",
            Mode::Bm25 => "bm25",
            Mode::Vector => "vector",
        }
    }
}

/// How hybrid search fuses the BM25 and vector candidate lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fusion {
    /// `w_bm25 · minmax(bm25) + w_vector · minmax(cosine)` over the union of candidates.
    Convex,
    /// Weighted reciprocal rank fusion: `Σ w / (rrf_k + rank)`.
    Rrf,
}

impl Fusion {
    pub fn as_str(self) -> &'static str {
        match self {
            Fusion::Convex => "convex",
            Fusion::Rrf => "rrf",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RerankChoice {
    /// Rerank when a reranker is available.
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone)]
pub struct SearchOptions {
    pub k: usize,
    pub mode: Mode,
    pub rerank: RerankChoice,
    pub filter: Filter,
    pub fusion: Fusion,
    /// RRF: score = Σ w / (rrf_k + rank).
    pub rrf_k: f32,
    /// Weights of the two retrievers in either fusion.
    pub w_bm25: f32,
    pub w_vector: f32,
    /// Candidates taken from each retriever.
    pub candidates: usize,
    /// Candidates the cross-encoder scores.
    pub rerank_top: usize,
    /// MMR trade-off: 1.0 = relevance only.
    pub mmr_lambda: f32,
    /// Cosine at or above which a candidate may be a near-duplicate of a
    /// better one; it is one when [`NEAR_DUP_CONTAINMENT`] of the shorter
    /// one's word trigrams are in the other too (a static embedder gives
    /// distinct passages of one topic cosines above this, so the vectors
    /// alone cannot decide).
    pub dedup_threshold: f32,
    /// BM25 column weights (title+heading, passage).
    pub w_head: f64,
    pub w_body: f64,
    /// BM25 pruning: when the query terms occur in more chunks than this
    /// all together, the most frequent terms are left out of the match
    /// (rarest first, at least one kept). 0 = never prune, the default: the
    /// BM25 index scores a million chunks' postings in milliseconds, so
    /// pruning (which changes the ranking) is only a lever for much larger
    /// knowledge bases.
    pub bm25_max_postings: usize,
    /// Score BM25 through FTS5's bm25() instead of the BM25 index: the same
    /// ranking (tested), but every matching row is scored through SQLite —
    /// the reference `bench kb` compares the index with.
    pub bm25_fts5: bool,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            k: 5,
            mode: Mode::Hybrid,
            rerank: RerankChoice::Auto,
            filter: Filter::default(),
            fusion: Fusion::Convex,
            rrf_k: 60.0,
            w_bm25: 1.0,
            w_vector: 1.0,
            candidates: 50,
            rerank_top: 30,
            mmr_lambda: 0.9,
            dedup_threshold: 0.97,
            w_head: 0.5,
            w_body: 1.0,
            bm25_max_postings: 0,
            bm25_fts5: false,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub rank: usize,
    pub score: f32,
    pub source: String,
    pub title: String,
    pub heading: String,
    pub page: Option<u32>,
    pub chunk_id: i64,
    pub text: String,
    pub lang: String,
    pub char_start: usize,
    pub char_end: usize,
    pub bm25_rank: Option<usize>,
    pub vector_rank: Option<usize>,
    pub rerank_score: Option<f32>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Trace {
    pub mode: String,
    pub fusion: String,
    pub query_terms: Vec<String>,
    /// Frequent terms left out of the BM25 match (see `bm25_max_postings`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bm25_pruned_terms: Vec<String>,
    pub bm25_candidates: usize,
    pub vector_candidates: usize,
    pub fused: usize,
    pub reranked: bool,
    pub reranker: Option<String>,
    pub rerank_note: Option<String>,
    pub duplicates_removed: usize,
    pub mmr_lambda: f32,
    pub ms_bm25: f64,
    pub ms_vector: f64,
    pub ms_rerank: f64,
    pub ms_total: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    pub hits: Vec<Hit>,
    pub trace: Trace,
}

pub const NO_RERANKER_NOTE: &str =
    "no cross-encoder installed; results are not reranked (`--rerank` reranks by sentence max-sim with the embedder instead; install a cross-encoder with `tresor models pull` of ms-marco-MiniLM-L-6-v2 or a bge reranker)";

struct Cand {
    id: i64,
    fused: f32,
    bm25_rank: Option<usize>,
    vector_rank: Option<usize>,
    bm25: Option<f32>,
    cosine: Option<f32>,
}

impl Cand {
    fn new(id: i64) -> Cand {
        Cand { id, fused: 0.0, bm25_rank: None, vector_rank: None, bm25: None, cosine: None }
    }
}

/// (min, max) of some scores.
fn range(xs: impl Iterator<Item = f32>) -> (f32, f32) {
    xs.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)))
}

/// `x` scaled to [0, 1] over (lo, hi); 1 when all scores are equal.
fn minmax(x: f32, (lo, hi): (f32, f32)) -> f32 {
    if hi > lo {
        (x - lo) / (hi - lo)
    } else {
        1.0
    }
}

/// The terms to match: all of them when they occur in at most `budget`
/// chunks together; else the rarest ones that fit (at least one), and the
/// left-out frequent ones. Terms that occur nowhere are dropped silently.
fn prune_terms(kb: &Kb, terms: Vec<String>, budget: usize) -> (Vec<String>, Vec<String>) {
    if budget == 0 || terms.len() < 2 {
        return (terms, Vec::new());
    }
    let mut df: Vec<(usize, String)> = terms.into_iter().map(|t| (kb.term_docs(&t), t)).filter(|(d, _)| *d > 0).collect();
    if df.iter().map(|(d, _)| d).sum::<usize>() <= budget {
        return (df.into_iter().map(|(_, t)| t).collect(), Vec::new());
    }
    df.sort();
    let (mut kept, mut pruned, mut sum) = (Vec::new(), Vec::new(), 0);
    for (d, t) in df {
        if kept.is_empty() || sum + d <= budget {
            sum += d;
            kept.push(t);
        } else {
            pruned.push(t);
        }
    }
    (kept, pruned)
}

/// Convex fusion over the candidates (see the module comment). Candidates
/// the kNN did not return get their exact cosine from the stored embedding.
fn fuse_convex(kb: &Kb, cands: &mut HashMap<i64, Cand>, qv: Option<&[f32]>, opts: &SearchOptions) -> Result<()> {
    if let Some(qv) = qv {
        let missing: Vec<i64> = cands.values().filter(|c| c.cosine.is_none()).map(|c| c.id).collect();
        for (id, e) in kb.embeddings_by_id(&missing)? {
            if e.len() == qv.len() {
                if let Some(c) = cands.get_mut(&id) {
                    c.cosine = Some(dot(qv, &e));
                }
            }
        }
    }
    let rb = range(cands.values().filter_map(|c| c.bm25));
    let rv = range(cands.values().filter_map(|c| c.cosine));
    for c in cands.values_mut() {
        c.fused = opts.w_bm25 * c.bm25.map_or(0.0, |s| minmax(s, rb)) + opts.w_vector * c.cosine.map_or(0.0, |s| minmax(s, rv));
    }
    Ok(())
}

pub fn search(
    kb: &mut Kb,
    query: &str,
    embedder: Option<&dyn TextEmbedder>,
    reranker: Option<&dyn TextReranker>,
    opts: &SearchOptions,
) -> Result<SearchResult> {
    let t0 = Instant::now();
    let mut trace = Trace { mode: opts.mode.as_str().into(), mmr_lambda: opts.mmr_lambda, ..Default::default() };
    if opts.mode == Mode::Hybrid {
        trace.fusion = opts.fusion.as_str().into();
    }
    let mut qvec: Option<Vec<f32>> = None;
    let k = opts.k.max(1);
    let n = opts.candidates.max(k);
    let mut cands: HashMap<i64, Cand> = HashMap::new();

    if opts.mode != Mode::Vector {
        let t = Instant::now();
        kb.ensure_lexical()?;
        let terms = query_terms(query, &|s| kb.has_term(s));
        trace.query_terms = terms.clone();
        let (terms, pruned) = prune_terms(kb, terms, opts.bm25_max_postings);
        trace.bm25_pruned_terms = pruned;
        if !terms.is_empty() {
            let hits = match fts_match(&terms) {
                Some(m) if opts.bm25_fts5 => kb.bm25_fts(&m, n, &opts.filter, opts.w_head, opts.w_body)?,
                _ => kb.bm25(&terms, n, &opts.filter, opts.w_head, opts.w_body)?,
            };
            trace.bm25_candidates = hits.len();
            for (rank, (id, score)) in hits.into_iter().enumerate() {
                let c = cands.entry(id).or_insert_with(|| Cand::new(id));
                c.bm25_rank = Some(rank + 1);
                c.bm25 = Some(score);
                c.fused += match opts.mode {
                    Mode::Bm25 => score,
                    _ => opts.w_bm25 / (opts.rrf_k + (rank + 1) as f32),
                };
            }
        }
        trace.ms_bm25 = t.elapsed().as_secs_f64() * 1e3;
    }
    if opts.mode != Mode::Bm25 {
        let t = Instant::now();
        let Some(e) = embedder else {
            return Err(KbError::Invalid(format!("{} search needs the embedder", opts.mode.as_str())));
        };
        let info = kb.info()?;
        if let Some(built) = info.embedder.as_deref() {
            if built != e.model_id() || info.dim != Some(e.dim()) {
                return Err(KbError::EmbedderMismatch {
                    path: kb.dir().to_path_buf(),
                    built: built.to_string(),
                    built_dim: info.dim.unwrap_or(0),
                    requested: e.model_id(),
                    requested_dim: e.dim(),
                });
            }
        }
        let qv = e.embed(&[query])?.pop().ok_or_else(|| KbError::Embed("no vector for the query".into()))?;
        let hits = if info.dim.is_some() { kb.knn(&qv, n, &opts.filter)? } else { Vec::new() };
        trace.vector_candidates = hits.len();
        for (rank, (id, sim)) in hits.into_iter().enumerate() {
            let c = cands.entry(id).or_insert_with(|| Cand::new(id));
            c.vector_rank = Some(rank + 1);
            c.cosine = Some(sim);
            c.fused += match opts.mode {
                Mode::Vector => sim,
                _ => opts.w_vector / (opts.rrf_k + (rank + 1) as f32),
            };
        }
        if info.dim.is_some() {
            qvec = Some(qv);
        }
        trace.ms_vector = t.elapsed().as_secs_f64() * 1e3;
    }
    if opts.mode == Mode::Hybrid && opts.fusion == Fusion::Convex {
        fuse_convex(kb, &mut cands, qvec.as_deref(), opts)?;
    }
    let mut ordered: Vec<Cand> = cands.into_values().collect();
    ordered.sort_by(|a, b| b.fused.total_cmp(&a.fused).then(a.id.cmp(&b.id)));
    trace.fused = ordered.len();
    let pool_n = (k * 4).max(opts.rerank_top).max(20);
    ordered.truncate(pool_n);
    let ids: Vec<i64> = ordered.iter().map(|c| c.id).collect();
    let rows = kb.chunks_by_id(&ids)?;
    let by_id: HashMap<i64, &Cand> = ordered.iter().map(|c| (c.id, c)).collect();
    let mut pool: Vec<(StoredChunk, f32, Option<f32>)> =
        rows.into_iter().map(|r| { let s = by_id[&r.id].fused; (r, s, None) }).collect();

    // rerank
    let want = opts.rerank != RerankChoice::Off;
    match (want, reranker) {
        (true, Some(rr)) if !pool.is_empty() && !rr.covers(query) => {
            trace.rerank_note = Some(format!("{} does not cover the query's language; results are not reranked", rr.model_id()));
        }
        (true, Some(rr)) if !pool.is_empty() => {
            let t = Instant::now();
            let m = opts.rerank_top.min(rr.max_passages()).min(pool.len());
            let texts: Vec<String> = pool[..m]
                .iter()
                .map(|(c, _, _)| if rr.with_heading() { embedding_text(&c.title, &c.heading, &c.text) } else { c.text.clone() })
                .collect();
            let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
            let scores = rr.score(query, &refs)?;
            if scores.len() != m {
                return Err(KbError::Rerank(format!("{} scores for {m} passages", scores.len())));
            }
            // the reranker's order alone (weight 1), or blended with the retrieval score
            let w = rr.weight().clamp(0.0, 1.0);
            let rf = range(pool[..m].iter().map(|p| p.1));
            let rs = range(scores.iter().copied());
            for (p, s) in pool[..m].iter_mut().zip(scores) {
                p.1 = if w >= 1.0 { s } else { (1.0 - w) * minmax(p.1, rf) + w * minmax(s, rs) };
                p.2 = Some(s);
            }
            // what the cross-encoder did not score stays below what it did
            let floor = pool[..m].iter().map(|p| p.1).fold(f32::INFINITY, f32::min);
            for (i, p) in pool[m..].iter_mut().enumerate() {
                p.1 = floor - 1.0 - i as f32;
            }
            pool.sort_by(|a, b| b.1.total_cmp(&a.1));
            trace.reranked = true;
            trace.reranker = Some(rr.model_id());
            trace.ms_rerank = t.elapsed().as_secs_f64() * 1e3;
        }
        (true, None) => trace.rerank_note = Some(NO_RERANKER_NOTE.into()),
        _ => {}
    }

    // near-duplicate removal
    let mut kept: Vec<(StoredChunk, f32, Option<f32>)> = Vec::with_capacity(pool.len());
    let mut kept_text: Vec<(String, Vec<u64>)> = Vec::with_capacity(pool.len());
    for p in pool {
        let norm = squash_lower(&p.0.text);
        let mut shingles: Option<Vec<u64>> = None;
        let dup = kept.iter().zip(&kept_text).any(|(q, (q_norm, q_shingles))| {
            let close = !p.0.embedding.is_empty()
                && p.0.embedding.len() == q.0.embedding.len()
                && dot(&p.0.embedding, &q.0.embedding) >= opts.dedup_threshold;
            *q_norm == norm || close && containment(shingles.get_or_insert_with(|| word_trigrams(&norm)), q_shingles) >= NEAR_DUP_CONTAINMENT
        });
        if dup {
            trace.duplicates_removed += 1;
        } else {
            let shingles = shingles.unwrap_or_else(|| word_trigrams(&norm));
            kept_text.push((norm, shingles));
            kept.push(p);
        }
    }

    // MMR
    let selected = mmr(&kept, k, opts.mmr_lambda);
    let hits = selected
        .into_iter()
        .enumerate()
        .map(|(i, j)| {
            let (c, score, rr) = &kept[j];
            let cand = by_id.get(&c.id);
            Hit {
                rank: i + 1,
                score: *score,
                source: c.source.clone(),
                title: c.title.clone(),
                heading: c.heading.clone(),
                page: c.page,
                chunk_id: c.id,
                text: c.text.clone(),
                lang: c.lang.clone(),
                char_start: c.start,
                char_end: c.end,
                bm25_rank: cand.and_then(|c| c.bm25_rank),
                vector_rank: cand.and_then(|c| c.vector_rank),
                rerank_score: *rr,
            }
        })
        .collect();
    trace.ms_total = t0.elapsed().as_secs_f64() * 1e3;
    Ok(SearchResult { hits, trace })
}

fn squash_lower(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Share of the shorter passage's word trigrams that the other has too, at
/// or above which two close passages are near-duplicates.
pub const NEAR_DUP_CONTAINMENT: f32 = 0.8;

/// Hashes of the word trigrams of whitespace-normalised text, sorted and
/// deduplicated (texts under three words: the whole text as one).
fn word_trigrams(norm: &str) -> Vec<u64> {
    use std::hash::{Hash, Hasher};
    let words: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
    let hash = |ws: &[&str]| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        ws.hash(&mut h);
        h.finish()
    };
    let mut v: Vec<u64> = if words.len() < 3 { vec![hash(&words)] } else { words.windows(3).map(hash).collect() };
    v.sort_unstable();
    v.dedup();
    v
}

/// |a ∩ b| / min(|a|, |b|) of two sorted sets.
fn containment(a: &[u64], b: &[u64]) -> f32 {
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    common as f32 / a.len().min(b.len()).max(1) as f32
}

/// Maximal marginal relevance over candidates sorted by relevance:
/// indices of the k picked, in pick order.
fn mmr(c: &[(StoredChunk, f32, Option<f32>)], k: usize, lambda: f32) -> Vec<usize> {
    if c.is_empty() {
        return Vec::new();
    }
    if lambda >= 1.0 {
        return (0..c.len().min(k)).collect();
    }
    let (lo, hi) = c.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), x| (lo.min(x.1), hi.max(x.1)));
    let rel = |i: usize| if hi > lo { (c[i].1 - lo) / (hi - lo) } else { 1.0 };
    let mut picked: Vec<usize> = Vec::new();
    let mut left: Vec<usize> = (0..c.len()).collect();
    while picked.len() < k && !left.is_empty() {
        let (best_pos, _) = left
            .iter()
            .enumerate()
            .map(|(pos, &i)| {
                let sim = picked
                    .iter()
                    .map(|&j| if c[i].0.embedding.len() == c[j].0.embedding.len() { dot(&c[i].0.embedding, &c[j].0.embedding) } else { 0.0 })
                    .fold(0.0f32, f32::max);
                (pos, lambda * rel(i) - (1.0 - lambda) * sim)
            })
            .fold((0, f32::NEG_INFINITY), |best, x| if x.1 > best.1 { x } else { best });
        picked.push(left.remove(best_pos));
    }
    picked
}
