//! Activation rows quantized with AVX2 — to 32-value Q8 blocks (the bits of
//! `scalar::quantize_row`) and to 256-value Q8_K blocks (those of
//! `scalar::quantize_row_q8k`), eight values per instruction. A
//! Gemma-3-270M prefill spent ~8 % of its time in the two scalar loops
//! (their `f32::max` folds and round-half-away-from-zero do not vectorize).
//!
//! Bit for bit the scalar result for finite inputs: the block's largest
//! |x| is a max (order-free), `x · (1/d)` the same single multiply, and
//! rounding half away from zero is done exactly — truncate, then add ±1
//! where the (exactly computed) fraction is at least one half; the
//! integer sum is exact. A block whose largest |x| is so small that the
//! inverse scale overflows (subnormals) goes to the scalar code, whose
//! casts of ±inf and NaN differ from the instructions'. (A NaN in a row may
//! pick another maximum than the scalar fold; such a row is garbage either
//! way.)
//!
//! Owns the instruction sequence; never chooses it (`dispatch` does).

use std::arch::x86_64::*;

use half::f16;

use super::{scalar, BlockQ8, BlockQ8K, QK, QK_K, ZERO_BLOCK_K};

/// `scalar::quantize_row` with AVX2.
///
/// # Safety
/// The CPU must have AVX2 (every x86 tier checks it).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quantize_row(x: &[f32], out: &mut [BlockQ8], with_sum: bool) {
    let sign = _mm256_set1_ps(-0.0);
    for (src, dst) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let p = src.as_ptr();
        let v: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(p.add(8 * i)));
        let abs = v.map(|x| _mm256_andnot_ps(sign, x));
        let m = _mm256_max_ps(_mm256_max_ps(abs[0], abs[1]), _mm256_max_ps(abs[2], abs[3]));
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, 1)));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        if !id.is_finite() {
            // a block of subnormals: 1/d overflows, and the scalar's casts of ±inf and NaN are its own
            scalar::quantize_row(src, std::slice::from_mut(dst), with_sum);
            continue;
        }
        let id = _mm256_set1_ps(id);
        let q: [__m256i; 4] = std::array::from_fn(|i| round_away(_mm256_mul_ps(v[i], id)));
        // |q| ≤ 127: the saturating packs keep every value
        store_i8(dst.qs.as_mut_ptr(), &q);
        dst.d = f16::from_f32(d).to_f32();
        dst.s = if with_sum {
            let s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
            let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
            f16::from_f32(d * _mm_cvtsi128_si32(s) as f32).to_f32()
        } else {
            0.0
        };
    }
}

/// `scalar::quantize_row_q8k` with AVX2: the scale from the first value of
/// largest |x| (its sign kept), `round(x · −127/max)` clamped to i8 (the
/// saturating packs), the 16-value sums of the result.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn quantize_row_q8k(x: &[f32], out: &mut [BlockQ8K]) {
    let sign = _mm256_set1_ps(-0.0);
    for (src, dst) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let p = src.as_ptr();
        let mut m = _mm256_setzero_ps();
        for i in 0..QK_K / 8 {
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * i))));
        }
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, 1)));
        if amax == 0.0 {
            *dst = ZERO_BLOCK_K;
            continue;
        }
        // the scalar keeps the first value whose |x| is the largest
        let max = *src.iter().find(|v| v.abs() == amax).unwrap_or(&amax);
        let iscale = -127.0 / max;
        if !iscale.is_finite() {
            // a block of subnormals, as in quantize_row
            scalar::quantize_row_q8k(src, std::slice::from_mut(dst));
            continue;
        }
        let is = _mm256_set1_ps(iscale);
        for c in 0..QK_K / 32 {
            let q: [__m256i; 4] = std::array::from_fn(|i| round_away(_mm256_mul_ps(is, _mm256_loadu_ps(p.add(32 * c + 8 * i)))));
            store_i8(dst.qs.as_mut_ptr().add(32 * c), &q);
        }
        for (g, sum) in dst.bsums.iter_mut().enumerate() {
            *sum = dst.qs[g * 16..(g + 1) * 16].iter().map(|&q| q as i16).sum();
        }
        dst.d = 1.0 / iscale;
    }
}

/// `y` rounded half away from zero (`f32::round`), as i32 lanes: truncate,
/// then step away from zero where |y − trunc(y)| (exact) is at least ½.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn round_away(y: __m256) -> __m256i {
    let sign = _mm256_set1_ps(-0.0);
    let t = _mm256_round_ps(y, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    let up = _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_sub_ps(y, t)), _mm256_set1_ps(0.5), _CMP_GE_OQ);
    let step = _mm256_or_ps(_mm256_and_ps(y, sign), _mm256_set1_ps(1.0));
    _mm256_cvtps_epi32(_mm256_add_ps(t, _mm256_and_ps(up, step)))
}

/// 32 i32 lanes (in order) to 32 i8 at `dst`, saturating.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn store_i8(dst: *mut i8, q: &[__m256i; 4]) {
    let w = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    // the packs interleave 128-bit lanes: put the four-byte groups back in order
    let w = _mm256_permutevar8x32_epi32(w, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(dst as *mut __m256i, w);
}
