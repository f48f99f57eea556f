//! The CPU tier: which instruction set the quantized kernels (and the
//! int8 GEMM of [`crate::i8gemm`]) run on, detected once per process.
//!
//! Tiers, fastest first: on x86_64 `avx512vnni` (AVX-512 F/BW/VL + VNNI:
//! `vpdpbusd`/`vpdpwssd`, EVEX), `avxvnni` (the 256-bit VEX VNNI of Intel's
//! 12th generation and later), `avx2` (AVX2 + FMA + F16C), `scalar`; on
//! aarch64 `neondot` (the Armv8.2 dotprod extension: `sdot`, checked at run
//! time), `neon` (every aarch64 CPU), then `scalar`. `TRESOR_CPU_TIER=<name>` forces a tier
//! the CPU supports (so one machine measures every tier it has); a tier the
//! CPU lacks, or an unknown name, is refused with a warning and the detected
//! tier is used (a kernel the CPU lacks would crash the process with an
//! illegal instruction). Doors that can fail early (the bench's `--tiers`)
//! check [`CpuTier::from_name`] and [`CpuTier::supported`] themselves.
//! Owns the detection and the override; never multiplies anything.

use std::sync::OnceLock;

/// An instruction-set tier of the CPU kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CpuTier {
    /// Plain Rust, every CPU.
    Scalar,
    /// aarch64 NEON (every aarch64 CPU).
    Neon,
    /// aarch64 NEON with the dotprod extension (`sdot`; Armv8.2+: Apple
    /// M1 and later, Cortex-A55/A75 and later, Neoverse).
    NeonDot,
    /// x86_64 AVX2 + FMA + F16C.
    Avx2,
    /// x86_64 AVX-VNNI (256-bit VEX `vpdpbusd`/`vpdpwssd`) on top of AVX2.
    AvxVnni,
    /// x86_64 AVX-512 F/BW/VL + AVX512-VNNI on top of AVX2.
    Avx512Vnni,
}

/// The environment variable that forces a tier.
pub const TIER_ENV: &str = "TRESOR_CPU_TIER";

impl CpuTier {
    pub const ALL: [CpuTier; 6] = [CpuTier::Avx512Vnni, CpuTier::AvxVnni, CpuTier::Avx2, CpuTier::NeonDot, CpuTier::Neon, CpuTier::Scalar];

    pub fn name(self) -> &'static str {
        match self {
            CpuTier::Scalar => "scalar",
            CpuTier::Neon => "neon",
            CpuTier::NeonDot => "neondot",
            CpuTier::Avx2 => "avx2",
            CpuTier::AvxVnni => "avxvnni",
            CpuTier::Avx512Vnni => "avx512vnni",
        }
    }

    /// The tier of a name (as [`CpuTier::name`] spells it; case and `-`/`_`
    /// ignored), or a message listing the known names.
    pub fn from_name(s: &str) -> Result<CpuTier, String> {
        let norm: String = s.trim().chars().filter(|c| *c != '-' && *c != '_').collect::<String>().to_ascii_lowercase();
        CpuTier::ALL.into_iter().find(|t| t.name() == norm).ok_or_else(|| {
            format!("unknown CPU tier `{s}` (known: {})", CpuTier::ALL.map(|t| t.name()).join(", "))
        })
    }

    /// Whether this CPU runs this tier's kernels.
    pub fn supported(self) -> bool {
        match self {
            CpuTier::Scalar => true,
            CpuTier::Neon => cfg!(target_arch = "aarch64"),
            CpuTier::NeonDot => arm::dotprod(),
            CpuTier::Avx2 => x86::avx2(),
            CpuTier::AvxVnni => x86::avx2() && x86::avxvnni(),
            CpuTier::Avx512Vnni => x86::avx2() && x86::avx512vnni(),
        }
    }

    /// Every tier this CPU supports, fastest first.
    pub fn all_supported() -> Vec<CpuTier> {
        CpuTier::ALL.into_iter().filter(|t| t.supported()).collect()
    }

    /// The tier the quantized matmul runs on: [`CpuTier::active`], the same tier as the
    /// embedder's int8 GEMM (`avx512vnni` included since its 512-bit prefill kernels sum in
    /// the order of the tier's other kernels: a one- and a two-chunk Gemma-3-270M prefill
    /// had differed by 0.56 of a logit scale of 27.6 on it). The name the bench reports.
    pub fn for_qmatmul() -> CpuTier {
        Self::active()
    }

    /// The fastest tier this CPU supports.
    pub fn detected() -> CpuTier {
        CpuTier::ALL.into_iter().find(|t| t.supported()).unwrap_or(CpuTier::Scalar)
    }

    /// The tier the kernels use: `TRESOR_CPU_TIER` if set and supported,
    /// else [`CpuTier::detected`]. Read once per process.
    pub fn active() -> CpuTier {
        static ACTIVE: OnceLock<CpuTier> = OnceLock::new();
        *ACTIVE.get_or_init(|| match std::env::var(TIER_ENV) {
            Ok(v) if !v.trim().is_empty() => match Self::forced(&v) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!("{e}; using the detected tier `{}`", Self::detected().name());
                    eprintln!("warning: {e}; using the detected tier `{}`", Self::detected().name());
                    Self::detected()
                }
            },
            _ => Self::detected(),
        })
    }

    /// A list of tier names (as `--tiers a,b,c` gives them) as tiers this
    /// CPU supports, in the given order without repeats; `all` is every
    /// supported tier. An unknown name or a tier the CPU lacks is an error
    /// (a forced tier the CPU lacks would fall back, mislabelling a
    /// measurement).
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<CpuTier>, String> {
        let mut out: Vec<CpuTier> = Vec::new();
        for name in names.iter().map(|n| n.as_ref().trim()).filter(|n| !n.is_empty()) {
            let add = if name.eq_ignore_ascii_case("all") {
                Self::all_supported()
            } else {
                let t = Self::from_name(name)?;
                if !t.supported() {
                    let have: Vec<&str> = Self::all_supported().iter().map(|t| t.name()).collect();
                    return Err(format!("this CPU lacks the `{}` tier (it has: {})", t.name(), have.join(", ")));
                }
                vec![t]
            };
            for t in add {
                if !out.contains(&t) {
                    out.push(t);
                }
            }
        }
        Ok(out)
    }

    /// The tier a `TRESOR_CPU_TIER` value asks for, or why it is refused.
    pub fn forced(value: &str) -> Result<CpuTier, String> {
        let t = Self::from_name(value)?;
        if t.supported() {
            Ok(t)
        } else {
            Err(format!(
                "{TIER_ENV}={value}: this CPU lacks the `{}` tier (supported: {})",
                t.name(),
                Self::all_supported().iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
            ))
        }
    }
}

impl std::fmt::Display for CpuTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The CPU's model name and the instruction-set flags the tiers care
/// about, for bench tables (`/proc/cpuinfo` on Linux; `std` detection
/// elsewhere).
pub fn cpu_description() -> (String, Vec<&'static str>) {
    let name = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model") || l.starts_with("CPU part"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    (name, x86::flags())
}

#[cfg(target_arch = "aarch64")]
mod arm {
    pub fn dotprod() -> bool {
        std::arch::is_aarch64_feature_detected!("dotprod")
    }
}

#[cfg(not(target_arch = "aarch64"))]
mod arm {
    pub fn dotprod() -> bool {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::is_x86_feature_detected as has;

    pub fn avx2() -> bool {
        has!("avx2") && has!("fma") && has!("f16c")
    }
    pub fn avxvnni() -> bool {
        has!("avxvnni")
    }
    pub fn avx512vnni() -> bool {
        has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512vnni")
    }
    pub fn flags() -> Vec<&'static str> {
        let mut f = Vec::new();
        macro_rules! flag {
            ($($name:tt),*) => {$( if has!($name) { f.push($name); } )*};
        }
        flag!("avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512vnni", "avxvnni");
        f
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    pub fn avx2() -> bool {
        false
    }
    pub fn avxvnni() -> bool {
        false
    }
    pub fn avx512vnni() -> bool {
        false
    }
    pub fn flags() -> Vec<&'static str> {
        let mut f = Vec::new();
        #[cfg(target_arch = "aarch64")]
        {
            f.push("neon");
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                f.push("dotprod");
            }
            if std::arch::is_aarch64_feature_detected!("i8mm") {
                f.push("i8mm");
            }
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for t in CpuTier::ALL {
            assert_eq!(CpuTier::from_name(t.name()), Ok(t));
        }
        assert_eq!(CpuTier::from_name("AVX512-VNNI"), Ok(CpuTier::Avx512Vnni));
        assert_eq!(CpuTier::from_name("avx_vnni"), Ok(CpuTier::AvxVnni));
        assert_eq!(CpuTier::from_name("NEON-DOT"), Ok(CpuTier::NeonDot));
        let e = CpuTier::from_name("sse2").unwrap_err();
        assert!(e.contains("sse2") && e.contains("avx512vnni"), "{e}");
    }

    #[test]
    fn scalar_is_always_supported_and_detection_picks_a_supported_tier() {
        assert!(CpuTier::Scalar.supported());
        assert!(CpuTier::detected().supported());
        assert_eq!(CpuTier::all_supported()[0], CpuTier::detected());
        assert_eq!(CpuTier::forced("scalar"), Ok(CpuTier::Scalar));
        // the other architecture's tier is refused with a reason
        let foreign = if cfg!(target_arch = "aarch64") { "avx2" } else { "neon" };
        let e = CpuTier::forced(foreign).unwrap_err();
        assert!(e.contains("lacks") && e.contains(foreign), "{e}");
    }

    #[test]
    fn tier_lists_parse_dedupe_and_refuse() {
        assert_eq!(CpuTier::parse_list(&["scalar", " Scalar ", ""]), Ok(vec![CpuTier::Scalar]));
        assert_eq!(CpuTier::parse_list(&["all"]), Ok(CpuTier::all_supported()));
        assert_eq!(CpuTier::parse_list::<&str>(&[]), Ok(vec![]));
        assert!(CpuTier::parse_list(&["scalar", "mmx"]).unwrap_err().contains("unknown CPU tier `mmx`"));
        let foreign = if cfg!(target_arch = "aarch64") { "avx512vnni" } else { "neon" };
        assert!(CpuTier::parse_list(&[foreign]).unwrap_err().contains("lacks"));
    }

    /// On aarch64 `neon` is always there and `neondot` exactly where the
    /// CPU reports dotprod (qemu: `-cpu max` has it, `-cpu cortex-a53` not);
    /// elsewhere neither. `TRESOR_TEST_DETECTED_TIER` (set by
    /// `scripts/check-aarch64` per emulated CPU) names the tier detection
    /// must find, so a run meant for one tier cannot test another.
    #[test]
    fn neon_tiers_follow_the_cpu() {
        if let Ok(want) = std::env::var("TRESOR_TEST_DETECTED_TIER") {
            assert_eq!(CpuTier::detected().name(), want);
        }
        let arm = cfg!(target_arch = "aarch64");
        assert_eq!(CpuTier::Neon.supported(), arm);
        #[cfg(target_arch = "aarch64")]
        assert_eq!(CpuTier::NeonDot.supported(), std::arch::is_aarch64_feature_detected!("dotprod"));
        #[cfg(not(target_arch = "aarch64"))]
        assert!(!CpuTier::NeonDot.supported());
        if arm {
            let want = if CpuTier::NeonDot.supported() { CpuTier::NeonDot } else { CpuTier::Neon };
            assert_eq!(CpuTier::detected(), want);
            eprintln!("aarch64 tiers here: {:?}", CpuTier::all_supported());
        }
    }
}
