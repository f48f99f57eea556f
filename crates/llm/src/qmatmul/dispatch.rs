//! Which kernel multiplies: the run-time CPU check ([`has_avx2_fma`]) and,
//! per weight format and activation block type, the kernel each
//! [`ActBlock`] method calls — AVX2 where the check passed, else NEON on
//! aarch64 (32-value formats), else the scalar reference. The `avx2` flag
//! the driver passes down is read here and nowhere else. Owns the choice
//! of instruction set; never computes a dot product itself (the kernels
//! live in `scalar`, `avx2` and `neon`).

use std::cell::RefCell;

#[cfg(target_arch = "x86_64")]
use super::avx2;
#[cfg(target_arch = "aarch64")]
use super::neon;
#[cfg(not(target_arch = "aarch64"))]
use super::scalar::dot_scalar;
use super::scalar::{dot_scalar_k, quantize_row, quantize_row_q8k};
use super::{ActBlock, BlockQ8, BlockQ8K, Kind, Quad, Scales4, QK, QK_K, XQ, XQ_K, ZERO_BLOCK, ZERO_BLOCK_K};

/// Whether this CPU runs the AVX2 kernels (AVX2, FMA and F16C), checked once.
pub(super) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Dot products of one weight row with four activation rows (prefill).
pub(super) fn dot_x4(kind: Kind, w: &[u8], xs: &Quad<BlockQ8>, avx2: bool) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2, FMA and F16C were detected at run time.
        return unsafe {
            match kind {
                Kind::Q4_1 => avx2::dot_q4_1_x4(w, xs),
                Kind::Q5_0 => avx2::dot_q8_0_x4::<true>(w, xs),
                _ => avx2::dot_q8_0_x4::<false>(w, xs), // Q8_0: the other 32-value format
            }
        };
    }
    let _ = avx2;
    std::array::from_fn(|i| dot_portable(kind, w, xs.rows[i]))
}

/// Dot products of four weight rows with one activation row (decode).
pub(super) fn dot_r4(kind: Kind, ws: &[&[u8]; 4], x: &[BlockQ8], avx2: bool) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2, FMA and F16C were detected at run time.
        return unsafe {
            match kind {
                Kind::Q4_1 => avx2::dot_q4_1_r4(ws, x),
                Kind::Q5_0 => avx2::dot_q8_0_r4::<true>(ws, x),
                _ => avx2::dot_q8_0_r4::<false>(ws, x), // Q8_0
            }
        };
    }
    let _ = avx2;
    std::array::from_fn(|i| dot_portable(kind, ws[i], x))
}

/// One weight row against one activation row without AVX2: NEON on
/// aarch64, else the scalar reference.
#[cfg(target_arch = "aarch64")]
pub(super) fn dot_portable(kind: Kind, w: &[u8], x: &[BlockQ8]) -> f32 {
    // SAFETY: NEON is part of every aarch64 CPU.
    unsafe { neon::dot(kind, w, x) }
}

#[cfg(not(target_arch = "aarch64"))]
pub(super) fn dot_portable(kind: Kind, w: &[u8], x: &[BlockQ8]) -> f32 {
    dot_scalar(kind, w, x)
}

impl ActBlock for BlockQ8 {
    const LEN: usize = QK;
    const ZERO: Self = ZERO_BLOCK;
    fn buffer() -> &'static std::thread::LocalKey<RefCell<Vec<Self>>> {
        &XQ
    }
    fn quantize(kind: Kind, x: &[f32], out: &mut [Self]) {
        quantize_row(x, out, kind == Kind::Q4_1)
    }
    const SCALES4: bool = true;
    fn fill_scales4(rows: &[&[Self]; 4], out: &mut [Scales4]) {
        for (b, sc) in out.iter_mut().enumerate() {
            sc.d = std::array::from_fn(|i| rows[i][b].d);
            sc.s = std::array::from_fn(|i| rows[i][b].s);
        }
    }
    fn dot_x4(kind: Kind, w: &[u8], xs: &Quad<Self>, avx2: bool) -> [f32; 4] {
        dot_x4(kind, w, xs, avx2)
    }
    fn has_x8(kind: Kind, avx2: bool) -> bool {
        cfg!(target_arch = "x86_64") && avx2 && matches!(kind, Kind::Q5_0 | Kind::Q8_0)
    }
    #[cfg(target_arch = "x86_64")]
    fn dot_x8(kind: Kind, w: &[u8], quads: &[Quad<Self>; 2], avx2: bool) -> [f32; 8] {
        assert!(Self::has_x8(kind, avx2));
        // SAFETY: AVX2, FMA and F16C were detected at run time (has_x8).
        unsafe {
            match kind {
                Kind::Q5_0 => avx2::dot_q8_0_x8::<true>(w, quads),
                _ => avx2::dot_q8_0_x8::<false>(w, quads),
            }
        }
    }
    fn dot_r4(kind: Kind, ws: &[&[u8]; 4], x: &[Self], avx2: bool) -> [f32; 4] {
        dot_r4(kind, ws, x, avx2)
    }
}

impl ActBlock for BlockQ8K {
    const LEN: usize = QK_K;
    const ZERO: Self = ZERO_BLOCK_K;
    fn buffer() -> &'static std::thread::LocalKey<RefCell<Vec<Self>>> {
        &XQ_K
    }
    fn quantize(_: Kind, x: &[f32], out: &mut [Self]) {
        quantize_row_q8k(x, out)
    }
    const SCALES4: bool = false;
    fn fill_scales4(_: &[&[Self]; 4], _: &mut [Scales4]) {}
    fn dot_x4(kind: Kind, w: &[u8], quad: &Quad<Self>, avx2: bool) -> [f32; 4] {
        let xs = &quad.rows;
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: AVX2, FMA and F16C were detected at run time.
            return unsafe {
                match kind {
                    Kind::Q6K => avx2::dot_q6_k::<4>(w, xs),
                    _ => avx2::dot_q4_k::<4>(w, xs),
                }
            };
        }
        let _ = avx2;
        std::array::from_fn(|i| dot_scalar_k(kind, w, xs[i]))
    }
    fn has_x8(_kind: Kind, avx2: bool) -> bool {
        cfg!(target_arch = "x86_64") && avx2
    }
    #[cfg(target_arch = "x86_64")]
    fn dot_x8(kind: Kind, w: &[u8], quads: &[Quad<Self>; 2], avx2: bool) -> [f32; 8] {
        assert!(Self::has_x8(kind, avx2));
        let xs: [&[Self]; 8] = std::array::from_fn(|i| quads[i / 4].rows[i % 4]);
        // SAFETY: AVX2, FMA and F16C were detected at run time (has_x8).
        unsafe {
            match kind {
                Kind::Q6K => avx2::dot_q6_k::<8>(w, &xs),
                _ => avx2::dot_q4_k::<8>(w, &xs),
            }
        }
    }
    fn dot_r4(kind: Kind, ws: &[&[u8]; 4], x: &[Self], avx2: bool) -> [f32; 4] {
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: AVX2, FMA and F16C were detected at run time.
            return std::array::from_fn(|i| unsafe {
                match kind {
                    Kind::Q6K => avx2::dot_q6_k::<1>(ws[i], &[x])[0],
                    _ => avx2::dot_q4_k::<1>(ws[i], &[x])[0],
                }
            });
        }
        let _ = avx2;
        std::array::from_fn(|i| dot_scalar_k(kind, ws[i], x))
    }
}
