//! The VNNI tiers: the x86 kernels of `avx2` (the [`x86_kernels`]
//! macro) expanded with VNNI's fused integer products instead of AVX2's
//! two-step ones.
//! - `avxvnni`: AVX-VNNI, the 256-bit VEX `vpdpbusd`/`vpdpwssd` of Intel's
//!   12th generation and later (no AVX-512 there);
//! - `avx512`: AVX512-VNNI with AVX-512 F/BW/VL, the same instructions in
//!   their EVEX 256-bit form (`_mm256_dpbusd_epi32`; LLVM may also use the
//!   32 vector registers), plus 512-bit K-quant kernels (`dot_q4_k_512`,
//!   `dot_q6_k_512`: one 512-bit `maddubs` + `vpdpwssd` per row and 64
//!   values, each equal to its 256-bit kernel bit for bit) and a 512-bit
//!   eight-row prefill kernel for Q8_0/Q5_0/Q4_0 (`dot_q8_0_x8_512`: two
//!   blocks per register for the integer work, then the 256-bit kernel's
//!   float steps in its order, so also bit for bit). Q4_1 and the
//!   32-value formats' decode stay 256-bit.
//!
//! Every kernel of a tier gives a row's dot products bit for bit the same
//! whichever kernel shape (decode, four or eight rows) computes them, so a
//! prompt's logits do not depend on how it is cut into chunks (test
//! `a_row_is_the_same_in_every_batch`).
//!
//! Per 32 values, the 32-value formats' integer dot becomes one `vpdpbusd`
//! (u8 × i8, four products summed into each i32 lane) instead of
//! `maddubs` + `madd`; the signed formats keep the sign trick (|w| as u8,
//! x with w's sign), Q4_1's nibbles are unsigned already. The K-quants'
//! scaled sub-block sums become `maddubs` + one `vpdpwssd` instead of
//! `maddubs` + `madd` + `add` (the 6-bit scales times 4-bit values do
//! not fit the u8 operand of `vpdpbusd`), except in the packed Q4_K
//! kernel (`gemm_q4_k_8x`), where `vpdpbusd` sums each sub-block's bare
//! nibbles and the scale multiplies the sum once per sub-block
//! (`vpmulld`): measured 87 → 133 GMAC/s prefill and 60 → 82 decode, one
//! thread, Llama-1B shapes. The arithmetic is integer and exact, so the
//! VNNI kernels equal the AVX2 ones bit for bit.
//! Owns the VNNI primitives; never detects the CPU or tiles the work.

use super::avx2::x86_kernels;

pub(crate) mod avxvnni {
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    unsafe fn dot_i32(u: __m256i, i: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), u, i)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_dpwssd_avx_epi32(acc, a, b)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    unsafe fn dp_acc(acc: __m256i, u: __m256i, i: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(acc, u, i)
    }

    const VNNI: bool = true;

    super::x86_kernels!($, "avx2,fma,f16c,avxvnni");
}

pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn dot_i32(u: __m256i, i: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, i)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_dpwssd_epi32(acc, a, b)
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn dp_acc(acc: __m256i, u: __m256i, i: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, u, i)
    }

    const VNNI: bool = true;

    super::x86_kernels!($, "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni");

    /// 512-bit `dot_q4_k`: each 64-value chunk's low and high nibbles
    /// (two sub-blocks) side by side in one register against the chunk's
    /// 64 contiguous activations — one `maddubs` and one `vpdpwssd` per
    /// row and 64 values where the 256-bit kernel needs two of each. The
    /// two halves' integer sums are added before the float steps, which
    /// are the 256-bit kernel's: the result is the same bit for bit.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(in crate::qmatmul) unsafe fn dot_q4_k_512<const T: usize, const Q5: bool>(w: &[u8], xs: &[&[BlockQ8K]; T]) -> [f32; T] {
        let bytes = if Q5 { Q5_K_BYTES } else { Q4_K_BYTES };
        let nb = w.len() / bytes;
        assert!(xs.iter().all(|x| x.len() >= nb));
        let m4 = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); T];
        let mut acc_m = [_mm256_setzero_ps(); T];
        let wp = w.as_ptr();
        for b in 0..nb {
            let blk = wp.add(b * bytes);
            if T == 1 {
                _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(3 * bytes) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(3 * bytes + 64) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(3 * bytes + 128) as *const i8);
            }
            let (d, neg_dmin) = (scale_splat(blk), _mm256_sub_ps(_mm256_setzero_ps(), scale_splat(blk.add(2))));
            let u = crate::qmatmul::scalar::q4_k_scales(std::slice::from_raw_parts(blk.add(4), 12));
            let packed = _mm_set_epi32(u[3] as i32, u[2] as i32, u[1] as i32, u[0] as i32);
            let mins_scales = _mm256_cvtepu8_epi16(packed);
            let mins2 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(packed, packed));
            let sc128 = _mm256_castsi256_si128(mins_scales);
            let scales = _mm256_set_m128i(sc128, sc128);
            let mut sumi = [_mm512_setzero_si512(); T];
            let qs = blk.add(if Q5 { 48 } else { 16 });
            let qh = if Q5 { _mm256_loadu_si256(blk.add(16) as *const __m256i) } else { _mm256_setzero_si256() };
            for j in 0..4 {
                let bits = _mm256_loadu_si256(qs.add(32 * j) as *const __m256i);
                let mut lo = _mm256_and_si256(bits, m4);
                let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
                if Q5 {
                    let one = _mm256_set1_epi8(1);
                    let h_lo = _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j as i32)), one));
                    let h_hi = _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j as i32 + 1)), one));
                    lo = _mm256_or_si256(lo, h_lo);
                    hi = _mm256_or_si256(hi, h_hi);
                }
                let s_lo = _mm256_shuffle_epi8(scales, broadcast_i16(2 * j));
                let s_hi = _mm256_shuffle_epi8(scales, broadcast_i16(2 * j + 1));
                let wq = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi);
                let sc = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(s_lo), s_hi);
                for t in 0..T {
                    let q8 = xs[t].get_unchecked(b).qs.as_ptr().add(64 * j);
                    let p = _mm512_maddubs_epi16(wq, _mm512_loadu_si512(q8 as *const _));
                    sumi[t] = _mm512_dpwssd_epi32(sumi[t], sc, p);
                }
            }
            for t in 0..T {
                let xb = xs[t].get_unchecked(b);
                let s = _mm256_add_epi32(_mm512_castsi512_si256(sumi[t]), _mm512_extracti64x4_epi64::<1>(sumi[t]));
                let dx = _mm256_broadcast_ss(&xb.d);
                acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, dx), _mm256_cvtepi32_ps(s), acc[t]);
                let bsums = _mm256_loadu_si256(xb.bsums.as_ptr() as *const __m256i);
                let prod = _mm256_madd_epi16(mins2, bsums);
                acc_m[t] = _mm256_fmadd_ps(_mm256_mul_ps(neg_dmin, dx), _mm256_cvtepi32_ps(prod), acc_m[t]);
            }
        }
        std::array::from_fn(|t| hsum(acc[t]) + hsum(acc_m[t]))
    }

    /// 512-bit `dot_q6_k`: two 32-value groups (four scales) per register
    /// against their 64 contiguous activations; integer sums folded to
    /// 256 bits before the 256-bit kernel's float steps (same result bit
    /// for bit).
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(in crate::qmatmul) unsafe fn dot_q6_k_512<const T: usize>(w: &[u8], xs: &[&[BlockQ8K]; T]) -> [f32; T] {
        let nb = w.len() / Q6_K_BYTES;
        assert!(xs.iter().all(|x| x.len() >= nb));
        let m4 = _mm256_set1_epi8(0x0F);
        let m2 = _mm256_set1_epi8(3);
        let mut acc = [_mm256_setzero_ps(); T];
        let wp = w.as_ptr();
        for b in 0..nb {
            let blk = wp.add(b * Q6_K_BYTES);
            if T == 1 {
                for line in 0..4 {
                    _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(3 * Q6_K_BYTES + 64 * line) as *const i8);
                }
            }
            let (ql, qh) = (blk, blk.add(128));
            let d = scale_splat(blk.add(208));
            let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(blk.add(192) as *const __m128i));
            let mut sumi = [_mm512_setzero_si512(); T];
            let sc = |g: usize| _mm_set1_epi16(*(blk.add(192 + g) as *const i8) as i16);
            for n in 0..2 {
                let bits1 = _mm256_loadu_si256(ql.add(64 * n) as *const __m256i);
                let bits2 = _mm256_loadu_si256(ql.add(64 * n + 32) as *const __m256i);
                let bits_h = _mm256_loadu_si256(qh.add(32 * n) as *const __m256i);
                macro_rules! high {
                    ($shift:literal) => {
                        _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<$shift>(bits_h), m2))
                    };
                }
                let q6 = [
                    _mm256_or_si256(_mm256_and_si256(bits1, m4), high!(0)),
                    _mm256_or_si256(_mm256_and_si256(bits2, m4), high!(2)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(bits1), m4), high!(4)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(bits2), m4), high!(6)),
                ];
                for pair in 0..2 {
                    let c = 4 * n + 2 * pair;
                    let wq = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(q6[2 * pair]), q6[2 * pair + 1]);
                    let s = _mm512_inserti64x4::<1>(
                        _mm512_castsi256_si512(_mm256_set_m128i(sc(2 * c + 1), sc(2 * c))),
                        _mm256_set_m128i(sc(2 * c + 3), sc(2 * c + 2)),
                    );
                    for t in 0..T {
                        let q8 = xs[t].get_unchecked(b).qs.as_ptr().add(32 * c);
                        let p = _mm512_maddubs_epi16(wq, _mm512_loadu_si512(q8 as *const _));
                        sumi[t] = _mm512_dpwssd_epi32(sumi[t], s, p);
                    }
                }
            }
            for t in 0..T {
                let xb = xs[t].get_unchecked(b);
                let s = _mm256_add_epi32(_mm512_castsi512_si256(sumi[t]), _mm512_extracti64x4_epi64::<1>(sumi[t]));
                let bsums = _mm256_loadu_si256(xb.bsums.as_ptr() as *const __m256i);
                let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(sc16, bsums));
                acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(&xb.d)), _mm256_cvtepi32_ps(_mm256_sub_epi32(s, offset)), acc[t]);
            }
        }
        std::array::from_fn(|t| hsum(acc[t]))
    }

    /// The high 256 bits of a 512-bit float vector with AVX-512 F only
    /// (`vextractf32x8` would need DQ).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn high_ps(v: __m512) -> __m256 {
        _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)))
    }

    /// 512-bit `dot_q8_0_x8` (Q8_0, Q5_0, Q4_0): two consecutive blocks per
    /// register for the integer work — per row and 64 values one masked
    /// negation (the sign trick without `vpsignb`, which has no 512-bit
    /// form), one `vpdpbusd` and one convert (exact: |Σ| < 2^24) — then
    /// the float steps of the 256-bit kernel, block after block: the two
    /// halves go into the row's 256-bit accumulator by two FMAs, the even
    /// block's first. Each lane of the accumulator thus sums the same
    /// products in the same order as in `dot_q8_0_x4` and `dot_q8_0_r4`,
    /// so a row's result is the same bit for bit whichever kernel (and so
    /// however many rows a call has) computes it. An odd last block goes
    /// through the 256-bit steps.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(in crate::qmatmul) unsafe fn dot_q8_0_x8_512<const F: u8>(w: &[u8], quads: &[Quad<BlockQ8>; 2]) -> [f32; 8] {
        let bytes = fmt_bytes(F);
        let nb = w.len() / bytes;
        assert!(quads.iter().all(|q| q.rows.iter().all(|x| x.len() >= nb) && q.d.len() >= nb));
        let mut acc = [_mm256_setzero_ps(); 8];
        let xp: [*const BlockQ8; 8] = std::array::from_fn(|i| quads[i / 4].rows[i % 4].as_ptr());
        let wp = w.as_ptr();
        let zero = _mm512_setzero_si512();
        let mut b = 0;
        while b + 2 <= nb {
            let (blk0, blk1) = (wp.add(b * bytes), wp.add((b + 1) * bytes));
            let wq = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(weights_8::<F>(blk0)), weights_8::<F>(blk1));
            let neg = _mm512_movepi8_mask(wq);
            let wabs = _mm512_abs_epi8(wq);
            let (dw0, dw1) = (scale_splat(blk0), scale_splat(blk1));
            let lo0 = scale_products(dw0, quads[0].d.get_unchecked(b));
            let lo1 = scale_products(dw1, quads[0].d.get_unchecked(b + 1));
            let hi0 = scale_products(dw0, quads[1].d.get_unchecked(b));
            let hi1 = scale_products(dw1, quads[1].d.get_unchecked(b + 1));
            macro_rules! row {
                ($i:literal, $s0:ident, $s1:ident, $l:literal) => {{
                    let x0 = _mm256_loadu_si256((*xp[$i].add(b)).qs.as_ptr() as *const __m256i);
                    let x1 = _mm256_loadu_si256((*xp[$i].add(b + 1)).qs.as_ptr() as *const __m256i);
                    let xq = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(x0), x1);
                    let xs = _mm512_mask_sub_epi8(xq, neg, zero, xq);
                    let dot = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(zero, wabs, xs));
                    acc[$i] = _mm256_fmadd_ps(lane!($s0, $l), _mm512_castps512_ps256(dot), acc[$i]);
                    acc[$i] = _mm256_fmadd_ps(lane!($s1, $l), high_ps(dot), acc[$i]);
                }};
            }
            row!(0, lo0, lo1, 0);
            row!(1, lo0, lo1, 1);
            row!(2, lo0, lo1, 2);
            row!(3, lo0, lo1, 3);
            row!(4, hi0, hi1, 0);
            row!(5, hi0, hi1, 1);
            row!(6, hi0, hi1, 2);
            row!(7, hi0, hi1, 3);
            b += 2;
        }
        if b < nb {
            let ones = _mm256_set1_epi16(1);
            let blk = wp.add(b * bytes);
            let wq = weights_8::<F>(blk);
            let wabs = _mm256_sign_epi8(wq, wq);
            let dw = scale_splat(blk);
            let lo = scale_products(dw, quads[0].d.get_unchecked(b));
            let hi = scale_products(dw, quads[1].d.get_unchecked(b));
            q8_0_step!(lane!(lo, 0), wq, wabs, &*xp[0].add(b), acc[0], ones);
            q8_0_step!(lane!(lo, 1), wq, wabs, &*xp[1].add(b), acc[1], ones);
            q8_0_step!(lane!(lo, 2), wq, wabs, &*xp[2].add(b), acc[2], ones);
            q8_0_step!(lane!(lo, 3), wq, wabs, &*xp[3].add(b), acc[3], ones);
            q8_0_step!(lane!(hi, 0), wq, wabs, &*xp[4].add(b), acc[4], ones);
            q8_0_step!(lane!(hi, 1), wq, wabs, &*xp[5].add(b), acc[5], ones);
            q8_0_step!(lane!(hi, 2), wq, wabs, &*xp[6].add(b), acc[6], ones);
            q8_0_step!(lane!(hi, 3), wq, wabs, &*xp[7].add(b), acc[7], ones);
        }
        std::array::from_fn(|i| hsum(acc[i]))
    }
}
