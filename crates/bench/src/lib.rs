//! Tresor's measurements, in one crate above the engine (beside the front
//! doors; no engine crate depends on it):
//!
//! - runtimes against their peers ([`llm`], [`embed`], [`process`]),
//!   measured in one run with Tresor and peer alternating (A/B/A/B), because
//!   these machines drift 20–35 % within minutes: only ratios within a run
//!   mean anything. Every such measurement runs in a child process (Tresor's
//!   own `bench *-worker` subcommand, or the peer), so load time and peak RSS
//!   are those of a process that did nothing else;
//! - the knowledge base's speed ([`kb`], `tresor bench kb`) and retrieval
//!   quality ([`retrieval_eval`], `tresor eval retrieval`);
//! - the answer engine's quality ([`answer_eval`], `tresor eval answers`),
//!   speed ([`answers`], `tresor bench answers`) and the end-to-end prompt
//!   injection run ([`attack`], `tresor eval injection`);
//! - a load test of a running server ([`loadtest`], `tresor bench serve`);
//! - PII detection scores ([`pii_eval`], `tresor eval pii`);
//! - the KPIs against a scripted replay through the real binary ([`traffic`], `tresor bench traffic`);
//! - the regression gate over all of them ([`eval_suite`] on [`suite_runs`],
//!   `tresor eval suite`), the admins' gold sets ([`goldset`]) and the
//!   LLM-as-judge with heuristics beside it ([`judge`], its labelled set from
//!   a RAG gold set: [`judge_set`]);
//! - the red team against the full pipeline ([`redteam`], `tresor redteam`) and the simulated
//!   A/B test and canary rollback on scripted traffic ([`ab`], `tresor bench ab`);
//! - the web widget in headless Chromium against the API ([`widget`],
//!   `tresor bench widget`; its WebDriver client also drives the widget e2e test);
//! - hostile documents at full size ([`hostile`], `tresor bench hostile`).
//!
//! Owns measuring and reporting; never asserts a speed or a score, and never
//! touches a user's knowledge bases (runs use scratch folders).

pub mod ab;
pub mod answer_choice;
pub mod answer_eval;
pub mod answers;
pub mod attack;
pub mod embed;
pub mod eval_suite;
pub mod goldset;
pub mod judge;
pub mod judge_set;
pub mod hostile;
pub mod indirect;
pub mod kb;
pub mod llm;
pub mod loadtest;
pub mod pii_eval;
pub mod process;
pub mod redteam;
pub mod remote;
pub mod retrieval_eval;
pub mod suite_runs;
pub mod tools_eval;
pub mod traffic;
pub mod widget;

use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed ({status}): {stderr}")]
    Failed { what: String, status: String, stderr: String },
    #[error("cannot read {what}'s output: {reason}")]
    Output { what: String, reason: String },
    #[error(transparent)]
    Llm(#[from] tresor_llm::LlmError),
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// Where the peers and synthetic models live: `$TRESOR_CACHE`, else
/// `~/.cache/tresor` (the scripts in scripts/peer use the same place).
pub fn cache_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("TRESOR_CACHE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/tresor")))
}

/// Median of the finite values (None when there are none).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 })
}

/// The value at quantile `q` (0..=1) of `sorted` (ascending): the nearest
/// rank, `(len - 1) * q` rounded; 0 when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Nearest-rank percentile (docs/kpi.md): the value at rank ⌈p·n⌉ of `v` (`p` in 0..=1; 0 when empty).
pub fn nearest_rank(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Median and 95th percentile of a set of timings (nearest rank, [`percentile`]).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
}

impl Percentiles {
    /// Of the values in any order (zeros when there are none).
    pub fn of(mut v: Vec<f64>) -> Percentiles {
        v.sort_by(|a, b| a.total_cmp(b));
        Percentiles { p50: percentile(&v, 0.5), p95: percentile(&v, 0.95) }
    }
}

/// Ratio Tresor / peer, when both were measured.
pub fn ratio(tresor: Option<f64>, peer: Option<f64>) -> Option<f64> {
    match (tresor, peer) {
        (Some(t), Some(p)) if p > 0.0 => Some(t / p),
        _ => None,
    }
}

/// Peak resident memory of this process in MB (Linux: VmHWM).
pub fn self_peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The CPU's model name (Linux: /proc/cpuinfo), else the architecture.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// The machine, for the report header.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub simd: Vec<&'static str>,
}

impl Machine {
    pub fn probe() -> Self {
        let cpu = cpu_model();
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        #[allow(unused_mut)]
        let mut simd = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            for (name, on) in [
                ("avx2", cfg!(target_feature = "avx2")),
                ("fma", cfg!(target_feature = "fma")),
                ("f16c", cfg!(target_feature = "f16c")),
                ("avx512f", cfg!(target_feature = "avx512f")),
            ] {
                if on {
                    simd.push(name);
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            simd.push("neon");
            // the `neondot` tier's extension (checked at run time, as the tier does)
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                simd.push("dotprod");
            }
        }
        Machine { cpu, cores, simd }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_ratio() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN]), None);
        assert_eq!(ratio(Some(50.0), Some(100.0)), Some(0.5));
        assert_eq!(ratio(Some(50.0), None), None);
    }
}
