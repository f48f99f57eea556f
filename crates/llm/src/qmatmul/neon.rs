//! The 32-value formats on aarch64 (Apple Silicon, ARM laptops): NEON is
//! part of every aarch64 CPU, so no run-time check. One weight row against
//! one activation row with widening multiplies (`smull`, pairwise `saddlp`):
//! exact integer sums, the float steps in `scalar::dot_scalar`'s order, so the
//! results equal the scalar reference bit for bit. K-quants stay scalar
//! there. Compile-checked on x86 hosts with
//! `cargo check -p tresor-llm --target aarch64-unknown-linux-gnu`.
//! Owns the NEON instruction sequences; never detects the CPU or tiles the
//! work.

use super::{BlockQ8, Kind, QK};
use half::f16;
use std::arch::aarch64::*;

/// The 32 signed weights of a Q8_0, Q5_0, Q4_0 or Q4_1 block as two vectors
/// (values 0..16 and 16..32; Q4_1 unsigned nibbles, 0..15).
#[inline(always)]
unsafe fn weights(kind: Kind, blk: *const u8) -> (int8x16_t, int8x16_t) {
    match kind {
        Kind::Q8_0 => (vld1q_s8(blk.add(2) as *const i8), vld1q_s8(blk.add(18) as *const i8)),
        Kind::Q4_0 => {
            let q = vld1q_u8(blk.add(2));
            let eight = vdupq_n_s8(8);
            (vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), eight), vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(q)), eight))
        }
        Kind::Q4_1 => {
            let q = vld1q_u8(blk.add(4));
            (vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), vreinterpretq_s8_u8(vshrq_n_u8::<4>(q)))
        }
        Kind::Q5_0 => {
            let qh = std::ptr::read_unaligned(blk.add(2) as *const u32);
            let mut high = [0u8; QK];
            for (j, h) in high.iter_mut().enumerate() {
                *h = (((qh >> j) & 1) << 4) as u8;
            }
            let q = vld1q_u8(blk.add(6));
            let lo = vorrq_u8(vandq_u8(q, vdupq_n_u8(0x0F)), vld1q_u8(high.as_ptr()));
            let hi = vorrq_u8(vshrq_n_u8::<4>(q), vld1q_u8(high.as_ptr().add(16)));
            let sixteen = vdupq_n_s8(16);
            (vsubq_s8(vreinterpretq_s8_u8(lo), sixteen), vsubq_s8(vreinterpretq_s8_u8(hi), sixteen))
        }
        Kind::Q4K | Kind::Q5K | Kind::Q6K => unreachable!("K-quants have no NEON kernel"),
    }
}

/// Σ w·x over 16 lanes as four i32 lanes (products fit i16: |w|, |x| ≤ 127).
#[inline(always)]
unsafe fn dot16(w: int8x16_t, x: int8x16_t) -> int32x4_t {
    let lo = vmull_s8(vget_low_s8(w), vget_low_s8(x));
    let hi = vmull_high_s8(w, x);
    vaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi))
}

/// One Q8_0 / Q5_0 / Q4_0 / Q4_1 weight row against one activation row.
pub(super) unsafe fn dot(kind: Kind, w: &[u8], x: &[BlockQ8]) -> f32 {
    let bytes = kind.block_bytes();
    let nb = w.len() / bytes;
    assert!(x.len() >= nb);
    let mut sum = 0f32;
    for b in 0..nb {
        let blk = w.as_ptr().add(b * bytes);
        let xb = x.get_unchecked(b);
        let (w0, w1) = weights(kind, blk);
        let (x0, x1) = (vld1q_s8(xb.qs.as_ptr()), vld1q_s8(xb.qs.as_ptr().add(16)));
        let sumi = vaddvq_s32(vaddq_s32(dot16(w0, x0), dot16(w1, x1)));
        let d = f16::from_bits(std::ptr::read_unaligned(blk as *const u16)).to_f32();
        if kind == Kind::Q4_1 {
            let m = f16::from_bits(std::ptr::read_unaligned(blk.add(2) as *const u16)).to_f32();
            sum += d * xb.d * sumi as f32 + m * xb.s;
        } else {
            sum += d * xb.d * sumi as f32;
        }
    }
    sum
}
