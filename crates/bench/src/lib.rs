//! Benchmarks of Tresor's model runtimes against their peers, measured in
//! one run with Tresor and peer alternating (A/B/A/B), because these
//! machines drift 20–35 % within minutes: only ratios within a run mean
//! anything.
//!
//! Every measurement runs in a child process (Tresor's own `bench
//! *-worker` subcommand, or the peer), so load time and peak RSS are those
//! of a process that did nothing else. Owns measuring and reporting; never
//! asserts a speed.

pub mod embed;
pub mod llm;
pub mod process;

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

/// The machine, for the report header.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub simd: Vec<&'static str>,
}

impl Machine {
    pub fn probe() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string()))
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
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
        simd.push("neon");
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
