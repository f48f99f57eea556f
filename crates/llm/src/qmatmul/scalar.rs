//! The portable references of the quantized matmul: ggml's activation
//! quantizers (`quantize_row_q8_0`/`_q8_1`, `quantize_row_q8_K`) and its dot
//! products of every weight format with them, in plain Rust. They are the
//! fallback where no SIMD kernel applies and the ground truth the AVX2 and
//! NEON kernels are tested against. Owns the formats' arithmetic as ggml
//! defines it; never picks a kernel or knows about threads.

use half::f16;

use super::{BlockQ8, BlockQ8K, Kind, QK, QK_K, ZERO_BLOCK_K};

/// ggml's `quantize_row_q8_1` (`with_sum`) / `quantize_row_q8_0`: per block,
/// `d = max|x| / 127`, round to nearest.
pub(super) fn quantize_row(x: &[f32], out: &mut [BlockQ8], with_sum: bool) {
    for (src, dst) in x.chunks_exact(QK).zip(out.iter_mut()) {
        let amax = src.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut sum = 0i32;
        for (q, v) in dst.qs.iter_mut().zip(src) {
            let r = (v * id).round() as i32;
            *q = r as i8;
            sum += r;
        }
        // Scales rounded through f16 as ggml stores them, so results match
        // llama.cpp's (and candle's) to the last bit of the dot product.
        dst.d = f16::from_f32(d).to_f32();
        dst.s = if with_sum { f16::from_f32(d * sum as f32).to_f32() } else { 0.0 };
    }
}

/// The references: ggml's `vec_dot_q4_0_q8_0`, `vec_dot_q4_1_q8_1`,
/// `vec_dot_q5_0_q8_0` and `vec_dot_q8_0_q8_0` in plain Rust.
pub(super) fn dot_scalar(kind: Kind, w: &[u8], x: &[BlockQ8]) -> f32 {
    let mut sum = 0f32;
    for (blk, xb) in w.chunks_exact(kind.block_bytes()).zip(x) {
        let d = f16::from_le_bytes([blk[0], blk[1]]).to_f32();
        match kind {
            Kind::Q4_1 => {
                let m = f16::from_le_bytes([blk[2], blk[3]]).to_f32();
                let mut sumi = 0i32;
                for j in 0..QK / 2 {
                    let q = blk[4 + j];
                    sumi += (q & 0x0F) as i32 * xb.qs[j] as i32 + (q >> 4) as i32 * xb.qs[j + QK / 2] as i32;
                }
                sum += d * xb.d * sumi as f32 + m * xb.s;
            }
            Kind::Q4_0 => {
                let mut sumi = 0i32;
                for j in 0..QK / 2 {
                    let q = blk[2 + j];
                    sumi += ((q & 0x0F) as i32 - 8) * xb.qs[j] as i32 + ((q >> 4) as i32 - 8) * xb.qs[j + QK / 2] as i32;
                }
                sum += d * xb.d * sumi as f32;
            }
            Kind::Q4K | Kind::Q5K | Kind::Q6K => unreachable!("K-quants multiply Q8_K blocks (dot_scalar_k)"),
            Kind::Q5_0 => {
                let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
                let mut sumi = 0i32;
                for j in 0..QK / 2 {
                    let q = blk[6 + j];
                    let lo = ((q & 0x0F) as i32 | (((qh >> j) & 1) << 4) as i32) - 16;
                    let hi = ((q >> 4) as i32 | (((qh >> (j + 16)) & 1) << 4) as i32) - 16;
                    sumi += lo * xb.qs[j] as i32 + hi * xb.qs[j + QK / 2] as i32;
                }
                sum += d * xb.d * sumi as f32;
            }
            Kind::Q8_0 => {
                let sumi: i32 = blk[2..].iter().zip(&xb.qs).map(|(&w, &x)| w as i8 as i32 * x as i32).sum();
                sum += d * xb.d * sumi as f32;
            }
        }
    }
    sum
}

/// ggml's `quantize_row_q8_K` (as candle does it): per 256 values,
/// `d = max / -127` with `max` the value of largest magnitude, round to
/// nearest, and the sums of every 16 quantized values.
pub(super) fn quantize_row_q8k(x: &[f32], out: &mut [BlockQ8K]) {
    for (src, dst) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let (mut max, mut amax) = (0f32, 0f32);
        for &v in src {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *dst = ZERO_BLOCK_K;
            continue;
        }
        let iscale = -127.0 / max;
        for (q, v) in dst.qs.iter_mut().zip(src) {
            *q = (iscale * v).round().clamp(-128.0, 127.0) as i8;
        }
        for (g, sum) in dst.bsums.iter_mut().enumerate() {
            *sum = dst.qs[g * 16..(g + 1) * 16].iter().map(|&q| q as i16).sum();
        }
        dst.d = 1.0 / iscale;
    }
}

/// The 6-bit scales and minimums of a Q4_K block's 8 sub-blocks, unpacked
/// from their 12 bytes (ggml's `get_scale_min_k4`): bytes 0..8 of the result
/// are the scales, 8..16 the minimums.
#[inline(always)]
pub(super) fn q4_k_scales(packed: &[u8]) -> [u32; 4] {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let word = |i: usize| u32::from_le_bytes([packed[4 * i], packed[4 * i + 1], packed[4 * i + 2], packed[4 * i + 3]]);
    let (u0, u1, u2) = (word(0), word(1), word(2));
    [
        u0 & KMASK1,
        (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4),
        u1 & KMASK1,
        ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4),
    ]
}

/// The references for the K-quants: ggml's `vec_dot_q4_K_q8_K`,
/// `vec_dot_q5_K_q8_K` and `vec_dot_q6_K_q8_K` in plain Rust, from the
/// blocks' dequantization formulas (Q4_K: `d·sc·q − dmin·m` per sub-block
/// of 32, q a nibble; Q5_K the same with a fifth bit from `qh`; Q6_K:
/// `d·sc·(q − 32)` per sub-block of 16, q from 4 low and 2 high bits).
pub(super) fn dot_scalar_k(kind: Kind, w: &[u8], x: &[BlockQ8K]) -> f32 {
    let mut sum = 0f32;
    for (blk, xb) in w.chunks_exact(kind.block_bytes()).zip(x) {
        match kind {
            Kind::Q4K | Kind::Q5K => {
                let d = f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                let dmin = f16::from_le_bytes([blk[2], blk[3]]).to_f32();
                // SAFETY: [u32; 4] and [u8; 16] have the same size and every bit
                // pattern is a valid value of both; the bytes come out in
                // memory order (little-endian, as the packing assumes).
                let sm: [u8; 16] = unsafe { std::mem::transmute(q4_k_scales(&blk[4..16])) };
                let q5 = kind == Kind::Q5K;
                let (qh, qs) = if q5 { (&blk[16..48], &blk[48..]) } else { (&blk[16..16], &blk[16..]) };
                let (mut sumi, mut summ) = (0i32, 0i32);
                for j in 0..QK_K / 64 {
                    for half in 0..2 {
                        let sub = 2 * j + half;
                        let mut dot = 0i32;
                        for l in 0..32 {
                            let mut q = if half == 0 { qs[32 * j + l] & 0x0F } else { qs[32 * j + l] >> 4 };
                            if q5 {
                                q |= ((qh[l] >> sub) & 1) << 4;
                            }
                            dot += q as i32 * xb.qs[32 * sub + l] as i32;
                        }
                        sumi += dot * sm[sub] as i32;
                        summ += sm[8 + sub] as i32 * (xb.bsums[2 * sub] as i32 + xb.bsums[2 * sub + 1] as i32);
                    }
                }
                sum += xb.d * (d * sumi as f32 - dmin * summ as f32);
            }
            Kind::Q6K => {
                let (ql, qh, sc) = (&blk[..128], &blk[128..192], &blk[192..208]);
                let d = f16::from_le_bytes([blk[208], blk[209]]).to_f32();
                let mut q = [0i32; QK_K];
                for n in 0..2 {
                    for l in 0..32 {
                        let (lo, hi, h) = (ql[64 * n + l], ql[64 * n + l + 32], qh[32 * n + l] as i32);
                        q[128 * n + l] = (lo & 0x0F) as i32 | ((h & 3) << 4);
                        q[128 * n + l + 32] = (hi & 0x0F) as i32 | (((h >> 2) & 3) << 4);
                        q[128 * n + l + 64] = (lo >> 4) as i32 | (((h >> 4) & 3) << 4);
                        q[128 * n + l + 96] = (hi >> 4) as i32 | (((h >> 6) & 3) << 4);
                    }
                }
                let mut sumi = 0i32;
                for g in 0..QK_K / 16 {
                    let dot: i32 = (16 * g..16 * g + 16).map(|i| (q[i] - 32) * xb.qs[i] as i32).sum();
                    sumi += sc[g] as i8 as i32 * dot;
                }
                sum += xb.d * d * sumi as f32;
            }
            Kind::Q4_0 | Kind::Q4_1 | Kind::Q5_0 | Kind::Q8_0 => unreachable!("32-value formats multiply Q8 blocks (dot_scalar)"),
        }
    }
    sum
}
