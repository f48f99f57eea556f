//! Which kernel multiplies: per weight format, activation block type and
//! CPU tier ([`CpuTier`], detected or forced in `tier`), the kernel each
//! [`ActBlock`] method calls — the x86 kernels of `avx2` expanded for the
//! tier (AVX512-VNNI, AVX-VNNI or AVX2), the NEON kernels on aarch64 (every
//! format, one row at a time; with `sdot` on `neondot`), else the scalar
//! reference. The tier the driver passes down is read here and nowhere
//! else. Owns the choice of instruction set; never
//! computes a dot product itself (the kernels live in `scalar`, `avx2`,
//! `vnni` and `neon`).

use std::cell::RefCell;

#[cfg(target_arch = "aarch64")]
use super::neon;
use super::scalar::{dot_scalar, dot_scalar_k, quantize_row, quantize_row_q8k};
use super::{ActBlock, BlockQ8, BlockQ8K, CpuTier, Kind, Quad, Scales4, QK, QK_K, XQ, XQ_K, ZERO_BLOCK, ZERO_BLOCK_K};

/// `Some($body)` with `$k` naming the x86 kernel module of `$tier`, or
/// `None` where the tier has no x86 kernels (scalar, NEON, other CPUs).
/// The kernels are `unsafe`: they need the tier's instructions, which
/// [`CpuTier::active`] (or the tests, through [`CpuTier::supported`])
/// checked at run time.
macro_rules! x86_tier {
    ($tier:expr, |$k:ident| $body:expr) => {{
        #[cfg(target_arch = "x86_64")]
        let r = match $tier {
            CpuTier::Avx512Vnni => {
                use super::vnni::avx512 as $k;
                Some($body)
            }
            CpuTier::AvxVnni => {
                use super::vnni::avxvnni as $k;
                Some($body)
            }
            CpuTier::Avx2 => {
                use super::avx2 as $k;
                Some($body)
            }
            CpuTier::Scalar | CpuTier::Neon | CpuTier::NeonDot => None,
        };
        #[cfg(not(target_arch = "x86_64"))]
        let r = {
            let _ = $tier;
            None
        };
        r
    }};
}

pub(super) fn has_x86_kernels(tier: CpuTier) -> bool {
    cfg!(target_arch = "x86_64") && matches!(tier, CpuTier::Avx2 | CpuTier::AvxVnni | CpuTier::Avx512Vnni)
}

/// Dot products of one weight row with four activation rows (prefill).
pub(super) fn dot_x4(kind: Kind, w: &[u8], xs: &Quad<BlockQ8>, tier: CpuTier) -> [f32; 4] {
    // SAFETY: the tier's instructions were detected at run time.
    let fast = x86_tier!(tier, |k| unsafe {
        use super::avx2::{FMT_Q4_0, FMT_Q5_0, FMT_Q8_0};
        match kind {
            Kind::Q4_1 => k::dot_q4_1_x4(w, xs),
            Kind::Q5_0 => k::dot_q8_0_x4::<FMT_Q5_0>(w, xs),
            Kind::Q4_0 => k::dot_q8_0_x4::<FMT_Q4_0>(w, xs),
            _ => k::dot_q8_0_x4::<FMT_Q8_0>(w, xs), // Q8_0: the other 32-value format
        }
    });
    fast.unwrap_or_else(|| std::array::from_fn(|i| dot_portable(kind, w, xs.rows[i], tier)))
}

/// Dot products of four weight rows with one activation row (decode).
pub(super) fn dot_r4(kind: Kind, ws: &[&[u8]; 4], x: &[BlockQ8], tier: CpuTier) -> [f32; 4] {
    // SAFETY: the tier's instructions were detected at run time.
    let fast = x86_tier!(tier, |k| unsafe {
        use super::avx2::{FMT_Q4_0, FMT_Q5_0, FMT_Q8_0};
        match kind {
            Kind::Q4_1 => k::dot_q4_1_r4(ws, x),
            Kind::Q5_0 => k::dot_q8_0_r4::<FMT_Q5_0>(ws, x),
            Kind::Q4_0 => k::dot_q8_0_r4::<FMT_Q4_0>(ws, x),
            _ => k::dot_q8_0_r4::<FMT_Q8_0>(ws, x), // Q8_0
        }
    });
    fast.unwrap_or_else(|| std::array::from_fn(|i| dot_portable(kind, ws[i], x, tier)))
}

/// `T` activation rows against one packed group of eight Q4_K weight rows
/// ([`super::packed`]): `[token][row]`, or None on a tier without x86
/// kernels (the weights are packed only where there are).
pub(super) fn gemm_q4_k_8x<const T: usize>(tier: CpuTier, group: &[u8], xs: &[&[BlockQ8K]; T]) -> Option<[[f32; 8]; T]> {
    // SAFETY: the tier's instructions were detected at run time.
    x86_tier!(tier, |k| unsafe { k::gemm_q4_k_8x::<T>(group, xs) })
}

/// `T` activation rows (and their blocks' sums) against one packed group
/// of eight Q8_0/Q5_0/Q4_0 weight rows ([`super::packed32`]):
/// `[token][row]`, or None on a tier without x86 kernels.
pub(super) fn gemm_q32_8x<const T: usize>(tier: CpuTier, kind: Kind, group: &[u8], xs: &[&[BlockQ8]; T], sums: &[&[i32]; T]) -> Option<[[f32; 8]; T]> {
    // SAFETY: the tier's instructions were detected at run time.
    x86_tier!(tier, |k| unsafe {
        use super::avx2::{FMT_Q4_0, FMT_Q5_0, FMT_Q8_0};
        match kind {
            Kind::Q5_0 => k::gemm_q32_8x::<FMT_Q5_0, T>(group, xs, sums),
            Kind::Q4_0 => k::gemm_q32_8x::<FMT_Q4_0, T>(group, xs, sums),
            _ => k::gemm_q32_8x::<FMT_Q8_0, T>(group, xs, sums),
        }
    })
}

/// One 32-value weight row against one activation row without x86
/// kernels: NEON on the aarch64 tiers (`sdot` on `neondot`), else the
/// scalar reference (the `scalar` tier everywhere).
pub(super) fn dot_portable(kind: Kind, w: &[u8], x: &[BlockQ8], tier: CpuTier) -> f32 {
    #[cfg(target_arch = "aarch64")]
    match tier {
        // SAFETY: dotprod was detected at run time (CpuTier::supported).
        CpuTier::NeonDot => return unsafe { neon::dot_sdot(kind, w, x) },
        // SAFETY: NEON is part of every aarch64 CPU.
        CpuTier::Neon => return unsafe { neon::dot(kind, w, x) },
        _ => {}
    }
    let _ = tier;
    dot_scalar(kind, w, x)
}

/// One K-quant weight row against one Q8_K activation row without x86
/// kernels: as [`dot_portable`], with the K-quant kernels.
pub(super) fn dot_portable_k(kind: Kind, w: &[u8], x: &[BlockQ8K], tier: CpuTier) -> f32 {
    #[cfg(target_arch = "aarch64")]
    match tier {
        // SAFETY: dotprod was detected at run time (CpuTier::supported).
        CpuTier::NeonDot => return unsafe { neon::dot_k_sdot(kind, w, x) },
        // SAFETY: NEON is part of every aarch64 CPU.
        CpuTier::Neon => return unsafe { neon::dot_k(kind, w, x) },
        _ => {}
    }
    let _ = tier;
    dot_scalar_k(kind, w, x)
}

impl ActBlock for BlockQ8 {
    const LEN: usize = QK;
    const ZERO: Self = ZERO_BLOCK;
    fn buffer() -> &'static std::thread::LocalKey<RefCell<Vec<Self>>> {
        &XQ
    }
    fn quantize(kind: Kind, x: &[f32], out: &mut [Self]) {
        #[cfg(target_arch = "x86_64")]
        if has_x86_kernels(CpuTier::for_qmatmul()) {
            // SAFETY: every x86 tier has AVX2 (checked when the tier was chosen).
            return unsafe { super::quantize_x86::quantize_row(x, out, kind == Kind::Q4_1) };
        }
        quantize_row(x, out, kind == Kind::Q4_1)
    }
    const SCALES4: bool = true;
    fn fill_scales4(rows: &[&[Self]; 4], out: &mut [Scales4]) {
        for (b, sc) in out.iter_mut().enumerate() {
            sc.d = std::array::from_fn(|i| rows[i][b].d);
            sc.s = std::array::from_fn(|i| rows[i][b].s);
        }
    }
    fn dot_x4(kind: Kind, w: &[u8], xs: &Quad<Self>, tier: CpuTier) -> [f32; 4] {
        dot_x4(kind, w, xs, tier)
    }
    fn has_x8(kind: Kind, tier: CpuTier) -> bool {
        has_x86_kernels(tier) && matches!(kind, Kind::Q4_0 | Kind::Q5_0 | Kind::Q8_0)
    }
    fn dot_x8(kind: Kind, w: &[u8], quads: &[Quad<Self>; 2], tier: CpuTier) -> [f32; 8] {
        assert!(Self::has_x8(kind, tier));
        // SAFETY: the tier's instructions were detected at run time (has_x8).
        let fast = x86_tier!(tier, |k| unsafe {
            use super::avx2::{FMT_Q4_0, FMT_Q5_0, FMT_Q8_0};
            match (kind, tier == CpuTier::Avx512Vnni) {
                #[cfg(target_arch = "x86_64")]
                (Kind::Q5_0, true) => super::vnni::avx512::dot_q8_0_x8_512::<FMT_Q5_0>(w, quads),
                #[cfg(target_arch = "x86_64")]
                (Kind::Q4_0, true) => super::vnni::avx512::dot_q8_0_x8_512::<FMT_Q4_0>(w, quads),
                #[cfg(target_arch = "x86_64")]
                (_, true) => super::vnni::avx512::dot_q8_0_x8_512::<FMT_Q8_0>(w, quads),
                (Kind::Q5_0, _) => k::dot_q8_0_x8::<FMT_Q5_0>(w, quads),
                (Kind::Q4_0, _) => k::dot_q8_0_x8::<FMT_Q4_0>(w, quads),
                _ => k::dot_q8_0_x8::<FMT_Q8_0>(w, quads),
            }
        });
        fast.expect("has_x8 checked the tier")
    }
    fn dot_r4(kind: Kind, ws: &[&[u8]; 4], x: &[Self], tier: CpuTier) -> [f32; 4] {
        dot_r4(kind, ws, x, tier)
    }
}

impl ActBlock for BlockQ8K {
    const LEN: usize = QK_K;
    const ZERO: Self = ZERO_BLOCK_K;
    fn buffer() -> &'static std::thread::LocalKey<RefCell<Vec<Self>>> {
        &XQ_K
    }
    fn quantize(_: Kind, x: &[f32], out: &mut [Self]) {
        #[cfg(target_arch = "x86_64")]
        if has_x86_kernels(CpuTier::for_qmatmul()) {
            // SAFETY: every x86 tier has AVX2 (checked when the tier was chosen).
            return unsafe { super::quantize_x86::quantize_row_q8k(x, out) };
        }
        quantize_row_q8k(x, out)
    }
    const SCALES4: bool = false;
    fn fill_scales4(_: &[&[Self]; 4], _: &mut [Scales4]) {}
    fn dot_x4(kind: Kind, w: &[u8], quad: &Quad<Self>, tier: CpuTier) -> [f32; 4] {
        let xs = &quad.rows;
        // SAFETY: the tier's instructions were detected at run time.
        let fast = x86_tier!(tier, |k| unsafe {
            match (kind, tier == CpuTier::Avx512Vnni) {
                #[cfg(target_arch = "x86_64")]
                (Kind::Q6K, true) => super::vnni::avx512::dot_q6_k_512::<4>(w, xs),
                #[cfg(target_arch = "x86_64")]
                (Kind::Q5K, true) => super::vnni::avx512::dot_q4_k_512::<4, true>(w, xs),
                #[cfg(target_arch = "x86_64")]
                (_, true) => super::vnni::avx512::dot_q4_k_512::<4, false>(w, xs),
                (Kind::Q6K, _) => k::dot_q6_k::<4>(w, xs),
                (Kind::Q5K, _) => k::dot_q4_k::<4, true>(w, xs),
                _ => k::dot_q4_k::<4, false>(w, xs),
            }
        });
        fast.unwrap_or_else(|| std::array::from_fn(|i| dot_portable_k(kind, w, xs[i], tier)))
    }
    fn has_x8(_kind: Kind, tier: CpuTier) -> bool {
        has_x86_kernels(tier)
    }
    fn dot_x8(kind: Kind, w: &[u8], quads: &[Quad<Self>; 2], tier: CpuTier) -> [f32; 8] {
        assert!(Self::has_x8(kind, tier));
        let xs: [&[Self]; 8] = std::array::from_fn(|i| quads[i / 4].rows[i % 4]);
        // SAFETY: the tier's instructions were detected at run time (has_x8).
        let fast = x86_tier!(tier, |k| unsafe {
            match (kind, tier == CpuTier::Avx512Vnni) {
                #[cfg(target_arch = "x86_64")]
                (Kind::Q6K, true) => super::vnni::avx512::dot_q6_k_512::<8>(w, &xs),
                #[cfg(target_arch = "x86_64")]
                (Kind::Q5K, true) => super::vnni::avx512::dot_q4_k_512::<8, true>(w, &xs),
                #[cfg(target_arch = "x86_64")]
                (_, true) => super::vnni::avx512::dot_q4_k_512::<8, false>(w, &xs),
                (Kind::Q6K, _) => k::dot_q6_k::<8>(w, &xs),
                (Kind::Q5K, _) => k::dot_q4_k::<8, true>(w, &xs),
                _ => k::dot_q4_k::<8, false>(w, &xs),
            }
        });
        fast.expect("has_x8 checked the tier")
    }
    fn dot_r4(kind: Kind, ws: &[&[u8]; 4], x: &[Self], tier: CpuTier) -> [f32; 4] {
        // SAFETY: the tier's instructions were detected at run time.
        let fast = x86_tier!(tier, |k| std::array::from_fn(|i| unsafe {
            match (kind, tier == CpuTier::Avx512Vnni) {
                #[cfg(target_arch = "x86_64")]
                (Kind::Q6K, true) => super::vnni::avx512::dot_q6_k_512::<1>(ws[i], &[x])[0],
                #[cfg(target_arch = "x86_64")]
                (Kind::Q5K, true) => super::vnni::avx512::dot_q4_k_512::<1, true>(ws[i], &[x])[0],
                #[cfg(target_arch = "x86_64")]
                (_, true) => super::vnni::avx512::dot_q4_k_512::<1, false>(ws[i], &[x])[0],
                (Kind::Q6K, _) => k::dot_q6_k::<1>(ws[i], &[x])[0],
                (Kind::Q5K, _) => k::dot_q4_k::<1, true>(ws[i], &[x])[0],
                _ => k::dot_q4_k::<1, false>(ws[i], &[x])[0],
            }
        }));
        fast.unwrap_or_else(|| std::array::from_fn(|i| dot_portable_k(kind, ws[i], x, tier)))
    }
}
