//! Device selection (`cpu`, `cuda:N`, `metal`), the CPU thread count and
//! whether this CPU runs what the binary was compiled for. Owns nothing
//! else; never loads a model.

use crate::error::{LlmError, Result};
pub use candle_core::Device;

/// Parses `cpu`, `cuda`, `cuda:N` or `metal`. CUDA and Metal need the
/// matching cargo feature; without it the error says so.
pub fn device_from_str(spec: &str) -> Result<Device> {
    let spec_l = spec.trim().to_ascii_lowercase();
    let err = |reason: String| LlmError::Device { spec: spec.to_string(), reason };
    if spec_l == "cpu" {
        return Ok(Device::Cpu);
    }
    if let Some(rest) = spec_l.strip_prefix("cuda") {
        let ordinal = match rest.strip_prefix(':') {
            None if rest.is_empty() => 0,
            Some(n) => n.parse::<usize>().map_err(|_| err(format!("`{n}` is not a GPU index")))?,
            None => return Err(err("expected cuda or cuda:N".into())),
        };
        if !cfg!(feature = "cuda") {
            return Err(err("this build has no CUDA support (build with `--features cuda`)".into()));
        }
        return Device::new_cuda(ordinal).map_err(|e| err(e.to_string()));
    }
    if spec_l == "metal" {
        if !cfg!(feature = "metal") {
            return Err(err("this build has no Metal support (build with `--features metal`)".into()));
        }
        return Device::new_metal(0).map_err(|e| err(e.to_string()));
    }
    Err(err("expected cpu, cuda:N or metal".into()))
}

/// Sets the number of CPU threads candle's kernels use. Call once, before the
/// first model runs; later calls keep the first setting.
pub fn set_cpu_threads(threads: usize) {
    let threads = threads.max(1);
    // candle reads RAYON_NUM_THREADS for its own kernels; rayon's global pool
    // serves its parallel iterators.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
}

/// The x86 features this binary was compiled to assume that this CPU
/// lacks (empty: it runs here). `scripts/env.sh` compiles with the build
/// machine's AVX2/FMA/F16C/BMI2, which LLVM may use anywhere, not only in
/// the kernels that dispatch at run time; on an older CPU such a binary
/// would die of an illegal instruction. The front doors check this first
/// and name what is missing instead.
pub fn missing_cpu_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut missing = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! check {
            ($($f:tt),*) => {$(
                if cfg!(target_feature = $f) && !std::arch::is_x86_feature_detected!($f) {
                    missing.push($f);
                }
            )*};
        }
        check!("sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "avx", "avx2", "fma", "f16c", "bmi2");
    }
    missing
}

/// The error for [`missing_cpu_features`], or `None` when the CPU runs this
/// binary.
pub fn cpu_mismatch_message() -> Option<String> {
    let missing = missing_cpu_features();
    (!missing.is_empty()).then(|| {
        format!(
            "this build of Tresor needs CPU features this processor lacks: {}. Build it on this machine \
             (scripts/env.sh picks the flags from /proc/cpuinfo) or with RUSTFLAGS=\"\" for a baseline x86-64 binary \
             (the LLM kernels still choose AVX2 at run time where the CPU has it).",
            missing.join(", ")
        )
    })
}

/// Threads candle will use on the CPU.
pub fn cpu_threads() -> usize {
    candle_core::utils::get_num_threads()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary runs on the machine that built it (scripts/env.sh reads
    /// this CPU's flags): nothing is missing here.
    #[test]
    fn the_build_machine_has_every_compiled_in_feature() {
        assert_eq!(missing_cpu_features(), Vec::<&str>::new());
        assert!(cpu_mismatch_message().is_none());
    }

    #[test]
    fn parses_cpu_and_rejects_garbage() {
        assert!(matches!(device_from_str("cpu").unwrap(), Device::Cpu));
        assert!(matches!(device_from_str("CPU").unwrap(), Device::Cpu));
        assert!(device_from_str("tpu").is_err());
        assert!(device_from_str("cuda:x").is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_says_how_to_get_it() {
        let e = device_from_str("cuda:0").unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
}
