//! `tresor bench kb --store postgres://…`: the PostgreSQL store measured
//! beside the embedded one. At each scale the same synthetic corpus and
//! queries as the embedded scale run (same generator and seeds) go into a
//! fresh database of that server (`tresor_bench_<n>`, dropped afterwards unless
//! `--keep-scales`, which queries a finished one again in a later run),
//! through the same `bulk_insert` and the same `search`; then two clients
//! (threads, one connection each) ingest the halves of a generated corpus
//! at once, with hashed vectors (the embedding model's cost is the same for
//! both stores and is measured by the embedded rows).
//!
//! Owns the scratch databases and the PostgreSQL rows of the report; never
//! touches a database it did not create.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use rand::SeedableRng;
use serde::Serialize;
use tresor_guard::crypto::WorkspaceKey;
use tresor_kb::embed::{dot, HashEmbedder, TextEmbedder};
use tresor_kb::store::pg;
use tresor_kb::{ingest, search, IngestOptions, Kb, KbError, Mode, NoProgress, RerankChoice, Result, SearchOptions};

use super::{dir_bytes, generate_corpus, scale_key, Latency, Synth, SyntheticEmbedder};

/// The server the PostgreSQL rows are measured on.
#[derive(Debug, Clone)]
pub struct PgTarget {
    /// `postgres://USER@HOST:PORT/DB` of a database the user may connect to and `CREATE DATABASE` from.
    pub url: String,
    pub password: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PgScaleBench {
    pub chunks: usize,
    pub synthetic: bool,
    pub insert_s: f64,
    pub index_build_s: f64,
    /// pgvector HNSW (m=16, ef_construction=128, ef_search=128) vs exact f32 search, 100 queries.
    pub index_recall_at_10: f64,
    pub db_mb: f64,
    pub index_mb: f64,
    /// `bm25` ran with this pruning budget in postings (`--bm25-max-postings`; 0 = none, the default).
    pub bm25_budget: usize,
    pub latency: Vec<Latency>,
    /// With a budget: the same BM25 unpruned (every row matching any query term ranked on the server), timed alternating with the modes.
    pub bm25_unpruned: Option<Latency>,
    /// With a budget: the share of the unpruned BM25 top 10 that the pruned `bm25` top 10 holds.
    pub bm25_pruned_agreement_at_10: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PgIngestBench {
    pub clients: usize,
    pub embedder: String,
    pub files: usize,
    pub mb: f64,
    pub chunks: usize,
    pub seconds: f64,
    pub mb_per_min: f64,
}

/// The scale `n` of `super::bench_scale`, in PostgreSQL.
#[allow(clippy::too_many_arguments)]
pub fn bench_scale(t: &PgTarget, n: usize, queries: usize, work: &Path, keep: bool, budget: Option<usize>, log: &dyn Fn(&str)) -> Result<PgScaleBench> {
    let dim = 384;
    let db = format!("tresor_bench_{n}");
    let dir = work.join(format!("pg-scale-{n}"));
    // --keep-scales: a database built by an earlier run (its build times recorded beside its
    // store.json) is queried again, so the slow HNSW build can run on a busy machine and the
    // latencies on a quiet one
    let reused = if keep { reusable_scale(t, &dir, n, &db)? } else { None };
    let reuse = reused.is_some();
    let (mut kb, built) = match reused {
        Some((kb, built)) => {
            log(&format!("  postgres scale {n}: reusing the kept database {db}"));
            (kb, Some(built))
        }
        None => {
            let url = pg::create_database(&t.url, t.password.as_deref(), &db)?;
            let _ = std::fs::remove_dir_all(&dir);
            let key = if keep { scale_key() } else { WorkspaceKey::ephemeral() };
            (Kb::create_postgres(&dir, &key, &url, t.password.as_deref())?, None)
        }
    };
    let result = (|| {
        // the embedded scale's generator, seeds and query stream
        let mut synth = Synth::new(dim, n, n as u64);
        let corpus_rng = std::mem::replace(&mut synth.rng, rand::rngs::StdRng::seed_from_u64(n as u64 ^ 0x51ED_270B_4F1E_AC53));
        let mut qmap = HashMap::new();
        let mut qlist = Vec::new();
        while qlist.len() < queries.max(10) {
            let q = synth.query();
            if qmap.contains_key(&q) {
                continue;
            }
            qmap.insert(q.clone(), synth.vector());
            qlist.push(q);
        }
        synth.rng = corpus_rng;
        let emb = SyntheticEmbedder { dim, queries: qmap };
        if !reuse {
            kb.bind_embedder(&emb.model_id(), dim)?;
            kb.begin_bulk_load()?;
        }
        let t0 = Instant::now();
        let mut all: Vec<f32> = Vec::with_capacity(n * dim);
        let (mut done, mut doc_no) = (0usize, 0usize);
        while done < n {
            let mut batch = Vec::new();
            let mut in_batch = 0;
            while in_batch < 5_000 && done < n {
                let m = 50.min(n - done);
                batch.push(synth.document(doc_no, m, &mut all));
                doc_no += 1;
                done += m;
                in_batch += m;
            }
            // a kept database: the same generator replayed gives the vectors for the exact search
            if !reuse {
                kb.bulk_insert(&batch)?;
                if done % 50_000 < 5_000 || done == n {
                    log(&format!("  postgres scale {n}: inserted {done} chunks"));
                }
            }
        }
        let (insert_s, index_build_s) = match built {
            Some(b) => b,
            None => {
                let insert_s = t0.elapsed().as_secs_f64();
                let t0 = Instant::now();
                kb.rebuild_vectors()?;
                let index_build_s = t0.elapsed().as_secs_f64();
                if keep {
                    let times = serde_json::json!({ "chunks": n, "insert_s": insert_s, "index_build_s": index_build_s });
                    std::fs::write(dir.join(BUILT), times.to_string()).map_err(|e| KbError::Io { path: dir.join(BUILT), source: e })?;
                }
                (insert_s, index_build_s)
            }
        };
        log(&format!("  postgres scale {n}: insert {insert_s:.1}s, HNSW build {index_build_s:.1}s"));

        // HNSW recall@10 against exact search (chunk ids are 1..=n in insertion order in a fresh database)
        let vec_only = SearchOptions { k: 10, mode: Mode::Vector, rerank: RerankChoice::Off, mmr_lambda: 1.0, dedup_threshold: 2.0, ..SearchOptions::default() };
        let (mut found, mut asked) = (0usize, 0usize);
        for q in qlist.iter().take(100) {
            let qv = &emb.queries[q];
            let mut best: Vec<(f32, i64)> = all.chunks_exact(dim).enumerate().map(|(i, v)| (dot(qv, v), i as i64 + 1)).collect();
            let nth = 9.min(best.len() - 1);
            best.select_nth_unstable_by(nth, |a, b| b.0.total_cmp(&a.0));
            let exact: Vec<i64> = best.iter().take(10).map(|b| b.1).collect();
            let got = search(&mut kb, q, Some(&emb), None, &vec_only)?;
            found += got.hits.iter().filter(|h| exact.contains(&h.chunk_id)).count();
            asked += 10;
        }
        drop(all);
        let bm25_budget = budget.unwrap_or(0);
        let d = SearchOptions { k: 10, rerank: RerankChoice::Off, bm25_max_postings: bm25_budget, ..SearchOptions::default() };
        // every mode on each query in turn (alternating); with a budget, "bm25-unpruned" is the
        // reference the pruned bm25 is compared with
        let mut runs = vec![("bm25", SearchOptions { mode: Mode::Bm25, ..d.clone() })];
        if bm25_budget > 0 {
            runs.push(("bm25-unpruned", SearchOptions { mode: Mode::Bm25, bm25_max_postings: 0, ..d.clone() }));
        }
        runs.push(("vector", SearchOptions { mode: Mode::Vector, ..d.clone() }));
        runs.push(("hybrid", SearchOptions { mode: Mode::Hybrid, ..d.clone() }));
        let pruned = bm25_budget > 0;
        for q in qlist.iter().take(10) {
            for (_, o) in &runs {
                search(&mut kb, q, Some(&emb), None, o)?;
            }
        }
        let mut ms: Vec<Vec<f64>> = vec![Vec::new(); runs.len()];
        let (mut agree, mut compared) = (0usize, 0usize);
        for q in &qlist {
            let mut tops: Vec<Vec<i64>> = Vec::new();
            for (i, (_, o)) in runs.iter().enumerate() {
                let t = Instant::now();
                let r = search(&mut kb, q, Some(&emb), None, o)?;
                ms[i].push(t.elapsed().as_secs_f64() * 1e3);
                if pruned && i < 2 {
                    tops.push(r.hits.iter().map(|h| h.chunk_id).collect());
                }
            }
            if pruned {
                agree += tops[1].iter().filter(|id| tops[0].contains(id)).count();
                compared += tops[1].len();
            }
        }
        let mut latency: Vec<Latency> = runs.iter().zip(ms).map(|((name, _), m)| Latency::of(name, m)).collect();
        let bm25_unpruned = pruned.then(|| latency.remove(1));
        let stats = kb.stats("bench")?;
        Ok(PgScaleBench {
            chunks: n,
            synthetic: true,
            insert_s,
            index_build_s,
            index_recall_at_10: found as f64 / asked.max(1) as f64,
            db_mb: stats.db_bytes as f64 / 1e6,
            index_mb: stats.index_bytes as f64 / 1e6,
            bm25_budget,
            latency,
            bm25_unpruned,
            bm25_pruned_agreement_at_10: pruned.then(|| if compared == 0 { 1.0 } else { agree as f64 / compared as f64 }),
        })
    })();
    if !keep || result.is_err() {
        drop(kb);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = pg::drop_database(&t.url, t.password.as_deref(), &db);
    }
    result
}

/// Beside a kept scale's store.json: the chunk count and build times of the run that built it,
/// written only once the HNSW index is built (its absence means the build did not finish).
const BUILT: &str = "bench-built.json";

/// A kept scale built by an earlier run, pointed at this run's server (a restarted server has a
/// new port). None when there is none for `n`; an error when there is one that cannot be
/// opened — never a silent rebuild (the 1M one takes well over an hour).
fn reusable_scale(t: &PgTarget, dir: &Path, n: usize, db: &str) -> Result<Option<(Kb, (f64, f64))>> {
    let Ok(raw) = std::fs::read(dir.join(BUILT)) else { return Ok(None) };
    let built: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
    let (Some(chunks), Some(insert_s), Some(index_build_s)) = (built["chunks"].as_u64(), built["insert_s"].as_f64(), built["index_build_s"].as_f64()) else {
        return Ok(None);
    };
    if chunks != n as u64 {
        return Ok(None);
    }
    let kept = |e: KbError| KbError::Invalid(format!("the kept scale {} ({db}) cannot be used: {e}; delete that folder to build it again", dir.display()));
    pg::local::repoint(dir, &pg::database_url(&t.url, db)?).map_err(kept)?;
    let kb = Kb::open_existing(dir, &scale_key()).map_err(kept)?;
    let count = kb.chunk_count().map_err(kept)?;
    if count != n {
        return Err(kept(KbError::Invalid(format!("it holds {count} chunks, not {n}"))));
    }
    Ok(Some((kb, (insert_s, index_build_s))))
}

/// Two clients ingesting the two halves of a generated `mb` corpus into one database at once.
pub fn bench_concurrent_ingest(t: &PgTarget, mb: f64, dim: usize, work: &Path, log: &dyn Fn(&str)) -> Result<PgIngestBench> {
    let corpus = work.join("pg-corpus");
    let _ = std::fs::remove_dir_all(&corpus);
    generate_corpus(&corpus, mb, 7)?;
    let halves = [work.join("pg-corpus-a"), work.join("pg-corpus-b")];
    let mut files: Vec<_> = std::fs::read_dir(&corpus).map_err(|e| KbError::Io { path: corpus.clone(), source: e })?.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    for (i, h) in halves.iter().enumerate() {
        let _ = std::fs::remove_dir_all(h);
        std::fs::create_dir_all(h).map_err(|e| KbError::Io { path: h.clone(), source: e })?;
        for f in files.iter().skip(i).step_by(2) {
            std::fs::rename(f, h.join(f.file_name().expect("file"))).map_err(|e| KbError::Io { path: f.clone(), source: e })?;
        }
    }
    let total_mb = halves.iter().map(|h| dir_bytes(h)).sum::<u64>() as f64 / 1e6;
    let db = "tresor_bench_ingest";
    let url = pg::create_database(&t.url, t.password.as_deref(), db)?;
    log(&format!("postgres ingest: two clients, {total_mb:.1} MB"));
    let result = (|| {
        let embedder = HashEmbedder::new(dim);
        // one workspace key for both clients' handles: the password sealed in each store.json at
        // create must open again in the ingest thread (a fresh ephemeral key per call could not)
        let key = WorkspaceKey::ephemeral();
        // both clients' stores exist (schema created) before the clock starts
        for i in 0..2 {
            Kb::create_postgres(&work.join(format!("pg-ingest-{i}")), &key, &url, t.password.as_deref())?;
        }
        let t0 = Instant::now();
        let reports: Vec<Result<tresor_kb::IngestReport>> = std::thread::scope(|s| {
            let hs: Vec<_> = halves
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let (embedder, work, key) = (&embedder, work, &key);
                    s.spawn(move || {
                        let mut kb = Kb::open_existing(&work.join(format!("pg-ingest-{i}")), key)?;
                        ingest(&mut kb, embedder, &[h.clone()], &IngestOptions::default(), &NoProgress)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(KbError::Invalid("an ingest thread panicked".into())))).collect()
        });
        let seconds = t0.elapsed().as_secs_f64();
        let (mut files, mut chunks) = (0, 0);
        for r in reports {
            let r = r?;
            files += r.files;
            chunks += r.chunks;
        }
        Ok(PgIngestBench { clients: 2, embedder: embedder.model_id(), files, mb: total_mb, chunks, seconds, mb_per_min: total_mb / (seconds / 60.0) })
    })();
    for i in 0..2 {
        let _ = std::fs::remove_dir_all(work.join(format!("pg-ingest-{i}")));
    }
    for h in &halves {
        let _ = std::fs::remove_dir_all(h);
    }
    let _ = std::fs::remove_dir_all(&corpus);
    let _ = pg::drop_database(&t.url, t.password.as_deref(), db);
    result
}

/// The PostgreSQL rows of the report's table.
pub fn table(scales: &[PgScaleBench], ingest: Option<&PgIngestBench>) -> String {
    let mut s = String::new();
    if !scales.is_empty() {
        s.push_str("\nPostgreSQL + pgvector store (same synthetic corpora and queries):\n\n| chunks | mode | p50 ms | p95 ms | mean ms | HNSW recall@10 (vs f32) | build s (insert + hnsw) | db MB | index MB |\n|---|---|---|---|---|---|---|---|---|\n");
        for sc in scales {
            for l in sc.latency.iter().take(1).chain(sc.bm25_unpruned.iter()).chain(sc.latency.iter().skip(1)) {
                let mode = match (l.mode.as_str(), sc.bm25_pruned_agreement_at_10) {
                    ("bm25", Some(a)) => format!("bm25 (budget {} postings; {a:.3} of the unpruned top 10)", sc.bm25_budget),
                    (m, _) => m.to_string(),
                };
                s.push_str(&format!(
                    "| {} | {} | {:.2} | {:.2} | {:.2} | {:.3} | {:.0} + {:.0} | {:.0} | {:.0} |\n",
                    sc.chunks, mode, l.p50_ms, l.p95_ms, l.mean_ms, sc.index_recall_at_10, sc.insert_s, sc.index_build_s, sc.db_mb, sc.index_mb
                ));
            }
        }
    }
    if let Some(i) = ingest {
        s.push_str(&format!(
            "\nPostgreSQL ingest, {} concurrent clients ({}): {} files, {:.1} MB, {} chunks in {:.1}s = {:.2} MB/min\n",
            i.clients, i.embedder, i.files, i.mb, i.chunks, i.seconds, i.mb_per_min
        ));
    }
    s
}
