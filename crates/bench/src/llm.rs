//! `tresor bench llm`: prompt processing (pp) and generation (tg) tokens/s,
//! model load time and peak RSS, Tresor's candle engine against llama.cpp's
//! `llama-bench` on the same GGUF with the same threads, alternating. With
//! several CPU tiers ([`CpuTier`]) each round runs one Tresor worker per
//! tier (forced through `TRESOR_CPU_TIER` in the worker's environment),
//! then the peer once, so every tier's row is compared with the same
//! interleaved peer runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tresor_llm::qmatmul::{CpuTier, TIER_ENV};
use tresor_llm::{Device, LlmModel, LoadOptions};

use crate::process;
use crate::{median, ratio, BenchError, Result};

#[derive(Debug, Clone)]
pub struct LlmBenchOptions {
    /// The `tresor` binary (the worker runs as `tresor bench llm-worker`).
    pub tresor_exe: PathBuf,
    pub model_id: String,
    pub model: PathBuf,
    pub threads: usize,
    pub pp: usize,
    pub tg: usize,
    /// Rounds of (Tresor, peer); medians are taken over rounds.
    pub rounds: usize,
    /// `llama-bench`, if found.
    pub peer: Option<PathBuf>,
    /// CPU tiers to run Tresor on, one row each (empty: the detected tier,
    /// or whatever `TRESOR_CPU_TIER` already says).
    pub tiers: Vec<CpuTier>,
    /// Another `llama-bench` for some tiers' rows: one built for that
    /// instruction set (scripts/peer/build-llama-bench-avx2.sh), so an
    /// `avx2` row on an AVX-512 machine is compared with llama.cpp's AVX2
    /// kernels rather than its native ones.
    pub tier_peers: Vec<(CpuTier, PathBuf)>,
}

/// What one worker process measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerResult {
    pub load_ms: f64,
    pub pp_tps: f64,
    pub tg_tps: f64,
    pub peak_rss_mb: Option<f64>,
    /// The CPU tier the worker's kernels ran on.
    #[serde(default)]
    pub tier: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LlmBenchReport {
    pub model: String,
    pub threads: usize,
    /// The CPU tier Tresor's kernels ran on (as the worker reported it).
    pub tier: Option<String>,
    pub pp_tokens: usize,
    pub tg_tokens: usize,
    pub rounds: usize,
    pub tresor_pp_tps: Option<f64>,
    pub tresor_tg_tps: Option<f64>,
    pub tresor_load_ms: Option<f64>,
    pub tresor_rss_mb: Option<f64>,
    /// The peer's name and version, or null when it is not installed.
    pub peer: Option<String>,
    pub peer_pp_tps: Option<f64>,
    pub peer_tg_tps: Option<f64>,
    pub peer_rss_mb: Option<f64>,
    pub pp_ratio: Option<f64>,
    pub tg_ratio: Option<f64>,
    /// The memory goal: Tresor's peak RSS at or below llama-bench's on the
    /// same model and sizes (null without the peer).
    pub rss_goal_met: Option<bool>,
    pub tresor_pp_runs: Vec<f64>,
    pub tresor_tg_runs: Vec<f64>,
    pub peer_pp_runs: Vec<f64>,
    pub peer_tg_runs: Vec<f64>,
    /// The `llama-bench` this row was compared with.
    pub peer_exe: Option<String>,
    /// Why the peer is missing, or what went wrong with it.
    pub note: Option<String>,
}

/// `$TRESOR_LLAMA_BENCH`, else the build of scripts/peer/build-llama-cpp.sh
/// under `$TRESOR_CACHE` (default `~/.cache/tresor`), else `llama-bench` on PATH.
pub fn find_llama_bench() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TRESOR_LLAMA_BENCH").map(PathBuf::from) {
        return p.is_file().then_some(p);
    }
    let cache = crate::cache_dir()?;
    let p = cache.join("llama.cpp/build/bin/llama-bench");
    if p.is_file() {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("llama-bench")).find(|p| p.is_file()))
}

/// One report: Tresor on `opts.tiers[0]` (or the default tier) against
/// the peer.
pub fn run(opts: &LlmBenchOptions) -> Result<LlmBenchReport> {
    let mut r = run_tiers(opts)?;
    Ok(r.swap_remove(0))
}

fn empty_report(opts: &LlmBenchOptions, tier: Option<CpuTier>) -> LlmBenchReport {
    LlmBenchReport {
        model: opts.model_id.clone(),
        threads: opts.threads,
        tier: tier.map(|t| t.name().to_string()),
        pp_tokens: opts.pp,
        tg_tokens: opts.tg,
        rounds: opts.rounds,
        tresor_pp_tps: None,
        tresor_tg_tps: None,
        tresor_load_ms: None,
        tresor_rss_mb: None,
        peer: None,
        peer_pp_tps: None,
        peer_tg_tps: None,
        peer_rss_mb: None,
        pp_ratio: None,
        tg_ratio: None,
        rss_goal_met: None,
        tresor_pp_runs: vec![],
        tresor_tg_runs: vec![],
        peer_pp_runs: vec![],
        peer_tg_runs: vec![],
        peer_exe: None,
        note: None,
    }
}

/// One peer binary's runs over the rounds.
#[derive(Default)]
struct PeerRuns {
    pp: Vec<f64>,
    tg: Vec<f64>,
    rss: Vec<f64>,
    version: Option<String>,
    failed: Option<String>,
}

/// One report per tier of `opts.tiers` (one for the default tier when
/// empty), alternating: each round runs Tresor once per tier, then each
/// peer once (the default one, and any of `opts.tier_peers`); a tier's row
/// is compared with its own peer's runs.
pub fn run_tiers(opts: &LlmBenchOptions) -> Result<Vec<LlmBenchReport>> {
    let tiers: Vec<Option<CpuTier>> = if opts.tiers.is_empty() { vec![None] } else { opts.tiers.iter().copied().map(Some).collect() };
    let mut reports: Vec<LlmBenchReport> = tiers.iter().map(|t| empty_report(opts, *t)).collect();
    // each tier's peer: its own build where one is given, else the default
    let tier_peer: Vec<Option<PathBuf>> = tiers
        .iter()
        .map(|t| t.and_then(|t| opts.tier_peers.iter().find(|(pt, _)| *pt == t).map(|(_, p)| p.clone())).or_else(|| opts.peer.clone()))
        .collect();
    let mut peers: Vec<PathBuf> = Vec::new();
    for p in tier_peer.iter().flatten() {
        if !peers.contains(p) {
            peers.push(p.clone());
        }
    }
    let mut runs: Vec<PeerRuns> = peers.iter().map(|_| PeerRuns::default()).collect();
    let mut loads: Vec<Vec<f64>> = vec![Vec::new(); tiers.len()];
    let mut rss: Vec<Vec<f64>> = vec![Vec::new(); tiers.len()];
    for round in 0..opts.rounds.max(1) {
        for (i, tier) in tiers.iter().enumerate() {
            tracing::info!(round, model = %opts.model_id, threads = opts.threads, tier = ?tier, "bench round");
            let w = run_worker(opts, *tier)?;
            let r = &mut reports[i];
            r.tresor_pp_runs.push(w.pp_tps);
            r.tresor_tg_runs.push(w.tg_tps);
            if r.tier.is_none() {
                r.tier = w.tier.clone();
            }
            loads[i].push(w.load_ms);
            rss[i].extend(w.peak_rss_mb);
        }
        for (peer, pr) in peers.iter().zip(runs.iter_mut()).filter(|(_, pr)| pr.failed.is_none()) {
            match run_llama_bench(peer, opts) {
                Ok((pp, tg, mem, version)) => {
                    pr.pp.push(pp);
                    pr.tg.push(tg);
                    pr.rss.extend(mem);
                    pr.version = Some(version);
                }
                Err(e) => pr.failed = Some(format!("peer {} failed, reporting Tresor only: {e}", peer.display())),
            }
        }
    }
    for (i, r) in reports.iter_mut().enumerate() {
        let pr = tier_peer[i].as_ref().and_then(|p| peers.iter().position(|q| q == p)).map(|k| &runs[k]);
        r.note = match pr {
            None => Some("llama-bench not found: run scripts/peer/build-llama-cpp.sh (or set TRESOR_LLAMA_BENCH); reporting Tresor only".to_string()),
            Some(pr) => pr.failed.clone(),
        };
        r.peer_exe = tier_peer[i].as_ref().map(|p| p.display().to_string());
        if let Some(pr) = pr.filter(|pr| pr.failed.is_none()) {
            r.peer = pr.version.clone();
            r.peer_pp_runs = pr.pp.clone();
            r.peer_tg_runs = pr.tg.clone();
            r.peer_rss_mb = pr.rss.iter().copied().reduce(f64::max);
        }
        r.tresor_pp_tps = median(&r.tresor_pp_runs);
        r.tresor_tg_tps = median(&r.tresor_tg_runs);
        r.tresor_load_ms = median(&loads[i]);
        r.tresor_rss_mb = rss[i].iter().copied().reduce(f64::max);
        r.peer_pp_tps = median(&r.peer_pp_runs);
        r.peer_tg_tps = median(&r.peer_tg_runs);
        r.pp_ratio = ratio(r.tresor_pp_tps, r.peer_pp_tps);
        r.tg_ratio = ratio(r.tresor_tg_tps, r.peer_tg_tps);
        r.rss_goal_met = rss_goal(r.tresor_rss_mb, r.peer_rss_mb);
    }
    Ok(reports)
}

fn run_worker(opts: &LlmBenchOptions, tier: Option<CpuTier>) -> Result<WorkerResult> {
    let mut cmd = Command::new(&opts.tresor_exe);
    if let Some(t) = tier {
        cmd.env(TIER_ENV, t.name());
    }
    cmd.args(["--threads", &opts.threads.to_string(), "bench", "llm-worker", "--pp", &opts.pp.to_string(), "--tg", &opts.tg.to_string()])
        .arg(&opts.model);
    let out = process::run("tresor bench worker", &mut cmd)?;
    let mut w: WorkerResult = serde_json::from_str(out.stdout.trim())
        .map_err(|e| BenchError::Output { what: "tresor bench worker".into(), reason: format!("{e}: {}", out.stdout) })?;
    w.peak_rss_mb = out.peak_rss_mb.or(w.peak_rss_mb);
    if let (Some(asked), Some(got)) = (tier, &w.tier) {
        if asked.name() != got {
            return Err(BenchError::Output { what: "tresor bench worker".into(), reason: format!("asked for CPU tier {asked}, the worker ran on {got}") });
        }
    }
    Ok(w)
}

#[derive(Deserialize)]
struct LlamaBenchRow {
    n_prompt: u64,
    n_gen: u64,
    avg_ts: f64,
    #[serde(default)]
    build_commit: Option<String>,
}

fn run_llama_bench(exe: &Path, opts: &LlmBenchOptions) -> Result<(f64, f64, Option<f64>, String)> {
    let mut cmd = Command::new(exe);
    cmd.arg("-m")
        .arg(&opts.model)
        .args(["-t", &opts.threads.to_string(), "-p", &opts.pp.to_string(), "-n", &opts.tg.to_string(), "-r", "1", "-o", "json"]);
    let out = process::run("llama-bench", &mut cmd)?;
    let rows: Vec<LlamaBenchRow> = serde_json::from_str(out.stdout.trim())
        .map_err(|e| BenchError::Output { what: "llama-bench".into(), reason: e.to_string() })?;
    let pp = rows.iter().find(|x| x.n_prompt > 0 && x.n_gen == 0).map(|x| x.avg_ts);
    let tg = rows.iter().find(|x| x.n_gen > 0 && x.n_prompt == 0).map(|x| x.avg_ts);
    let version = rows.iter().find_map(|x| x.build_commit.clone()).map(|c| format!("llama.cpp llama-bench {c}")).unwrap_or_else(|| "llama.cpp llama-bench".into());
    match (pp, tg) {
        (Some(pp), Some(tg)) => Ok((pp, tg, out.peak_rss_mb, version)),
        _ => Err(BenchError::Output { what: "llama-bench".into(), reason: "no pp/tg rows in its JSON".into() }),
    }
}

/// The measurement itself, run inside `tresor bench llm-worker`: load, warm
/// up, then pp tokens in one batch from an empty cache, then tg tokens one
/// at a time from an empty cache (what llama-bench's pp/tg measure).
pub fn worker(model_path: &Path, device: &Device, pp: usize, tg: usize) -> Result<WorkerResult> {
    let t = Instant::now();
    let opts = LoadOptions { context_length: Some(pp.max(tg) + 16), ..Default::default() };
    let mut model = LlmModel::load(model_path, device, &opts)?;
    let load_ms = t.elapsed().as_secs_f64() * 1000.0;
    let vocab = model.tokenizer().vocab_size().max(2) as u64;
    let mut rng = tresor_llm::synthetic::XorShift::new(0x2545F4914F6CDD1D);
    let tokens: Vec<u32> = (0..pp.max(tg).max(16)).map(|_| (rng.next_u64() % vocab) as u32).collect();
    // Warm-up: a short batch and a few decode steps.
    model.forward(&tokens[..16.min(tokens.len())], 0)?;
    model.forward(&tokens[..1], 0)?;
    model.forward(&tokens[1..2], 1)?;

    let t = Instant::now();
    model.forward(&tokens[..pp], 0)?;
    let pp_tps = pp as f64 / t.elapsed().as_secs_f64();

    model.reset();
    let t = Instant::now();
    for (i, tok) in tokens[..tg].iter().enumerate() {
        model.forward(std::slice::from_ref(tok), i)?;
    }
    let tg_tps = tg as f64 / t.elapsed().as_secs_f64();
    Ok(WorkerResult { load_ms, pp_tps, tg_tps, peak_rss_mb: crate::self_peak_rss_mb(), tier: Some(CpuTier::for_qmatmul().name().to_string()) })
}

/// The CPU line printed above a table: model name and the instruction-set
/// flags the tiers care about, and the tiers this CPU supports.
pub fn cpu_line() -> String {
    let (name, flags) = tresor_llm::qmatmul::cpu_description();
    let tiers: Vec<&str> = CpuTier::all_supported().iter().map(|t| t.name()).collect();
    format!("CPU: {name}; flags: {}; tiers: {}", flags.join(" "), tiers.join(", "))
}

/// Tresor's peak RSS at or below the peer's (None unless both were measured).
pub fn rss_goal(tresor_mb: Option<f64>, peer_mb: Option<f64>) -> Option<bool> {
    Some(tresor_mb? <= peer_mb?)
}

/// A plain-text table of reports.
pub fn table(reports: &[LlmBenchReport]) -> String {
    let f = |x: Option<f64>| x.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into());
    let r = |x: Option<f64>| x.map(|v| format!("{v:.2}×")).unwrap_or_else(|| "–".into());
    let mut s = String::from("| model | threads | tier | tresor pp t/s | peer pp t/s | pp ratio | tresor tg t/s | peer tg t/s | tg ratio | load ms | tresor RSS MB | peer RSS MB | RSS ≤ peer |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for x in reports {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            x.model,
            x.threads,
            x.tier.as_deref().unwrap_or("–"),
            f(x.tresor_pp_tps),
            f(x.peer_pp_tps),
            r(x.pp_ratio),
            f(x.tresor_tg_tps),
            f(x.peer_tg_tps),
            r(x.tg_ratio),
            f(x.tresor_load_ms),
            f(x.tresor_rss_mb),
            f(x.peer_rss_mb),
            match x.rss_goal_met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "–",
            }
        ));
    }
    s
}

/// Synthetic models the bench can write itself: `llama-3.2-1b-q4_k`,
/// `llama-3.2-1b-q8_0` (Llama-3.2-1B shape) and `llama-3.1-8b-q4_k`
/// (Llama-3.1-8B shape, untied output; a 4.6 GB file, several minutes to
/// write), random weights: speed does not depend on their values. Written
/// once into `cache_dir`.
pub const SYNTHETIC_MODELS: &[&str] = &["llama-3.2-1b-q4_k", "llama-3.2-1b-q8_0", "llama-3.1-8b-q4_k"];

pub fn synthetic_model(name: &str, cache_dir: &Path) -> Result<PathBuf> {
    use tresor_llm::synthetic::{write_llama_gguf, LlamaShape};
    let (shape, dtype) = match name {
        "llama-3.2-1b-q4_k" => (LlamaShape::LLAMA_3_2_1B, candle_core::quantized::GgmlDType::Q4K),
        "llama-3.2-1b-q8_0" => (LlamaShape::LLAMA_3_2_1B, candle_core::quantized::GgmlDType::Q8_0),
        "llama-3.1-8b-q4_k" => (LlamaShape::LLAMA_3_1_8B, candle_core::quantized::GgmlDType::Q4K),
        other => {
            return Err(BenchError::Output {
                what: "synthetic model".into(),
                reason: format!("unknown synthetic model `{other}` (known: {})", SYNTHETIC_MODELS.join(", ")),
            })
        }
    };
    let path = cache_dir.join(format!("synthetic-{name}.gguf"));
    if !path.is_file() {
        std::fs::create_dir_all(cache_dir).map_err(|e| BenchError::Output { what: "synthetic model".into(), reason: e.to_string() })?;
        tracing::info!(path = %path.display(), "writing synthetic model");
        write_llama_gguf(&path, shape, dtype, 1)?;
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A script at `dir/name` that prints `body`'s output.
    #[cfg(unix)]
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// Each tier's row is compared with its own peer's runs: the `avx2` row
    /// with the AVX2 build, the other with the native one; each peer runs
    /// once per round, whatever the number of tiers using it.
    #[test]
    #[cfg(unix)]
    fn a_tier_peer_serves_only_its_tier() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        // the worker reports the tier it was asked for; pp 100 on avx2, 200 otherwise
        let worker = script(
            dir.path(),
            "tresor",
            r#"t="$TRESOR_CPU_TIER"; pp=200; [ "$t" = avx2 ] && pp=100
printf '{"load_ms":1,"pp_tps":%s,"tg_tps":10,"peak_rss_mb":5,"tier":"%s"}' "$pp" "$t""#,
        );
        let peer = |name: &str, pp: u32| {
            script(
                dir.path(),
                name,
                &format!(
                    r#"echo {name} >> "{}"
echo '[{{"n_prompt":8,"n_gen":0,"avg_ts":{pp},"build_commit":"abc"}},{{"n_prompt":0,"n_gen":4,"avg_ts":20,"build_commit":"abc"}}]'"#,
                    log.display()
                ),
            )
        };
        let (native, avx2) = (peer("native", 400), peer("avx2build", 50));
        let opts = LlmBenchOptions {
            tresor_exe: worker,
            model_id: "m".into(),
            model: dir.path().join("m.gguf"),
            threads: 1,
            pp: 8,
            tg: 4,
            rounds: 2,
            peer: Some(native.clone()),
            tiers: vec![CpuTier::Avx512Vnni, CpuTier::Avx2],
            tier_peers: vec![(CpuTier::Avx2, avx2.clone())],
        };
        let rs = run_tiers(&opts).unwrap();
        assert_eq!(rs.len(), 2);
        let (v, a) = (&rs[0], &rs[1]);
        assert_eq!((v.tier.as_deref(), a.tier.as_deref()), (Some("avx512vnni"), Some("avx2")));
        assert_eq!((v.peer_pp_tps, v.pp_ratio), (Some(400.0), Some(0.5)));
        assert_eq!((a.peer_pp_tps, a.pp_ratio), (Some(50.0), Some(2.0)));
        assert_eq!(a.peer_exe.as_deref(), Some(avx2.to_str().unwrap()));
        assert_eq!(v.peer_exe.as_deref(), Some(native.to_str().unwrap()));
        assert!(v.note.is_none() && a.note.is_none(), "{:?} {:?}", v.note, a.note);
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(calls.lines().collect::<Vec<_>>(), ["native", "avx2build", "native", "avx2build"]);
    }

    #[test]
    fn rss_goal_compares_peaks_and_prints_in_the_table() {
        assert_eq!(rss_goal(Some(300.0), Some(332.0)), Some(true));
        assert_eq!(rss_goal(Some(332.0), Some(332.0)), Some(true));
        assert_eq!(rss_goal(Some(508.0), Some(332.0)), Some(false));
        assert_eq!(rss_goal(Some(508.0), None), None);
        let mut r = LlmBenchReport {
            model: "m".into(),
            threads: 2,
            tier: Some("avx2".into()),
            pp_tokens: 8,
            tg_tokens: 4,
            rounds: 1,
            tresor_pp_tps: Some(10.0),
            tresor_tg_tps: Some(5.0),
            tresor_load_ms: Some(1.0),
            tresor_rss_mb: Some(508.0),
            peer: None,
            peer_pp_tps: None,
            peer_tg_tps: None,
            peer_rss_mb: Some(332.0),
            pp_ratio: None,
            tg_ratio: None,
            rss_goal_met: Some(false),
            tresor_pp_runs: vec![],
            tresor_tg_runs: vec![],
            peer_pp_runs: vec![],
            peer_tg_runs: vec![],
            peer_exe: None,
            note: None,
        };
        let t = table(std::slice::from_ref(&r));
        let row = t.lines().nth(2).unwrap();
        assert!(t.lines().next().unwrap().ends_with("| RSS ≤ peer |"), "{t}");
        assert!(row.ends_with("| 508.0 | 332.0 | NO |"), "{row}");
        r.rss_goal_met = None;
        assert!(table(&[r]).lines().nth(2).unwrap().ends_with("| 332.0 | – |"));
    }
}
