//! Every format on aarch64 (Apple Silicon, ARM laptops): the 32-value
//! formats against Q8 blocks and Q4_K/Q5_K/Q6_K against Q8_K blocks, one
//! weight row against one activation row. Each kernel is written once over
//! its integer primitive ([`Dot`]): widening multiplies (`smull`, pairwise
//! `saddlp`) for the `neon` tier (NEON is part of every aarch64 CPU, so no
//! run-time check), `sdot` (Armv8.2 dotprod, through `asm!`: `vdotq_s32` is
//! unstable on rustc 1.95) for `neondot`, whose entry points need the
//! `dotprod` check (`CpuTier::supported`). Both sum the integers exactly and
//! do the float steps in `scalar::dot_scalar`'s / `dot_scalar_k`'s order, so
//! the results equal the scalar reference bit for bit. Compile-checked on x86
//! hosts with `cargo check -p tresor-llm --target aarch64-unknown-linux-gnu`,
//! tested under qemu by `scripts/check-aarch64`.
//! Owns the NEON instruction sequences; never detects the CPU or tiles the
//! work.

use super::scalar::q4_k_scales;
use super::{BlockQ8, BlockQ8K, Kind, QK, QK_K};
use half::f16;
use std::arch::aarch64::*;

/// An integer primitive: the 16 products of signed bytes `w`·`x` added to
/// the four i32 lanes of `acc` (which lane gets which product differs
/// between the primitives; the kernels only ever add the lanes up).
trait Dot {
    unsafe fn dot16(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t;
}

/// Widening multiplies: every product of two signed bytes fits i16 (at
/// most 128² = 16384), pairs of them widen to i32.
struct Mull;

impl Dot for Mull {
    #[inline(always)]
    unsafe fn dot16(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        let lo = vmull_s8(vget_low_s8(w), vget_low_s8(x));
        let hi = vmull_high_s8(w, x);
        vaddq_s32(acc, vaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)))
    }
}

/// `sdot`: four products per i32 lane in one instruction. Only inlined
/// into `#[target_feature(enable = "dotprod")]` functions (the assembler
/// refuses `sdot` elsewhere).
struct Sdot;

impl Dot for Sdot {
    #[inline(always)]
    unsafe fn dot16(mut acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        std::arch::asm!(
            "sdot {acc:v}.4s, {w:v}.16b, {x:v}.16b",
            acc = inout(vreg) acc,
            w = in(vreg) w,
            x = in(vreg) x,
            options(pure, nomem, nostack, preserves_flags)
        );
        acc
    }
}

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
        Kind::Q4K | Kind::Q5K | Kind::Q6K => unreachable!("K-quants multiply Q8_K blocks (dot_k)"),
    }
}

/// One Q8_0 / Q5_0 / Q4_0 / Q4_1 weight row against one activation row.
#[inline(always)]
unsafe fn dot_with<D: Dot>(kind: Kind, w: &[u8], x: &[BlockQ8]) -> f32 {
    let bytes = kind.block_bytes();
    let nb = w.len() / bytes;
    assert!(x.len() >= nb);
    let mut sum = 0f32;
    for b in 0..nb {
        let blk = w.as_ptr().add(b * bytes);
        let xb = x.get_unchecked(b);
        let (w0, w1) = weights(kind, blk);
        let (x0, x1) = (vld1q_s8(xb.qs.as_ptr()), vld1q_s8(xb.qs.as_ptr().add(16)));
        let sumi = vaddvq_s32(D::dot16(D::dot16(vdupq_n_s32(0), w0, x0), w1, x1));
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

/// One Q4_K / Q5_K / Q6_K weight row against one Q8_K activation row:
/// per block the integer sums of `scalar::dot_scalar_k` (exact, in i32
/// lanes: |sumi| < 2³¹ with room), then its float steps in its order.
#[inline(always)]
unsafe fn dot_k_with<D: Dot>(kind: Kind, w: &[u8], x: &[BlockQ8K]) -> f32 {
    let bytes = kind.block_bytes();
    let nb = w.len() / bytes;
    assert!(x.len() >= nb);
    let mut sum = 0f32;
    for b in 0..nb {
        let blk = w.as_ptr().add(b * bytes);
        let xb = x.get_unchecked(b);
        let xq = xb.qs.as_ptr();
        match kind {
            Kind::Q4K | Kind::Q5K => {
                let d = f16::from_bits(std::ptr::read_unaligned(blk as *const u16)).to_f32();
                let dmin = f16::from_bits(std::ptr::read_unaligned(blk.add(2) as *const u16)).to_f32();
                // SAFETY: as in dot_scalar_k (same size, any bits valid, memory order)
                let sm: [u8; 16] = std::mem::transmute(q4_k_scales(std::slice::from_raw_parts(blk.add(4), 12)));
                // Σ min · (bsums of the sub-block's two halves): pair sums ≤ 32·128, exact in i16
                let bs = vpaddq_s16(vld1q_s16(xb.bsums.as_ptr()), vld1q_s16(xb.bsums.as_ptr().add(8)));
                let mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(sm.as_ptr().add(8))));
                let summ = vaddvq_s32(vaddq_s32(vmull_s16(vget_low_s16(bs), vget_low_s16(mins)), vmull_high_s16(bs, mins)));
                let q5 = kind == Kind::Q5K;
                let qs = if q5 { blk.add(48) } else { blk.add(16) };
                let (mut h0, mut h1) = if q5 { (vld1q_u8(blk.add(16)), vld1q_u8(blk.add(32))) } else { (vdupq_n_u8(0), vdupq_n_u8(0)) };
                let (low, one, two) = (vdupq_n_u8(0x0F), vdupq_n_u8(1), vdupq_n_u8(2));
                let mut acc = vdupq_n_s32(0);
                for j in 0..QK_K / 64 {
                    let (q0, q1) = (vld1q_u8(qs.add(32 * j)), vld1q_u8(qs.add(32 * j + 16)));
                    let (mut l0, mut l1) = (vandq_u8(q0, low), vandq_u8(q1, low));
                    let (mut u0, mut u1) = (vshrq_n_u8::<4>(q0), vshrq_n_u8::<4>(q1));
                    if q5 {
                        // bit `sub` of qh[l]: sub 2j is bit 0 of the shifted bytes, 2j + 1 bit 1
                        l0 = vorrq_u8(l0, vshlq_n_u8::<4>(vandq_u8(h0, one)));
                        l1 = vorrq_u8(l1, vshlq_n_u8::<4>(vandq_u8(h1, one)));
                        u0 = vorrq_u8(u0, vshlq_n_u8::<3>(vandq_u8(h0, two)));
                        u1 = vorrq_u8(u1, vshlq_n_u8::<3>(vandq_u8(h1, two)));
                        h0 = vshrq_n_u8::<2>(h0);
                        h1 = vshrq_n_u8::<2>(h1);
                    }
                    let x = xq.add(64 * j);
                    let lo = D::dot16(D::dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(l0), vld1q_s8(x)), vreinterpretq_s8_u8(l1), vld1q_s8(x.add(16)));
                    let hi = D::dot16(D::dot16(vdupq_n_s32(0), vreinterpretq_s8_u8(u0), vld1q_s8(x.add(32))), vreinterpretq_s8_u8(u1), vld1q_s8(x.add(48)));
                    acc = vmlaq_n_s32(acc, lo, sm[2 * j] as i32);
                    acc = vmlaq_n_s32(acc, hi, sm[2 * j + 1] as i32);
                }
                let sumi = vaddvq_s32(acc);
                sum += xb.d * (d * sumi as f32 - dmin * summ as f32);
            }
            Kind::Q6K => {
                let (ql, qh, sc) = (blk, blk.add(128), blk.add(192) as *const i8);
                let d = f16::from_bits(std::ptr::read_unaligned(blk.add(208) as *const u16)).to_f32();
                let (low, three, off) = (vdupq_n_u8(0x0F), vdupq_n_u8(3), vdupq_n_s8(32));
                // q − 32 from its low nibble and two high bits, as signed bytes
                let q6 = |l: uint8x16_t, h: uint8x16_t| vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(l, vshlq_n_u8::<4>(vandq_u8(h, three)))), off);
                let mut acc = vdupq_n_s32(0);
                for n in 0..2 {
                    let (lo0, lo1) = (vld1q_u8(ql.add(64 * n)), vld1q_u8(ql.add(64 * n + 16)));
                    let (hi0, hi1) = (vld1q_u8(ql.add(64 * n + 32)), vld1q_u8(ql.add(64 * n + 48)));
                    let (h0, h1) = (vld1q_u8(qh.add(32 * n)), vld1q_u8(qh.add(32 * n + 16)));
                    // values 128n + 32·quarter + l, l in 0..32, as two groups of 16
                    let quarters = [
                        (q6(vandq_u8(lo0, low), h0), q6(vandq_u8(lo1, low), h1)),
                        (q6(vandq_u8(hi0, low), vshrq_n_u8::<2>(h0)), q6(vandq_u8(hi1, low), vshrq_n_u8::<2>(h1))),
                        (q6(vshrq_n_u8::<4>(lo0), vshrq_n_u8::<4>(h0)), q6(vshrq_n_u8::<4>(lo1), vshrq_n_u8::<4>(h1))),
                        (q6(vshrq_n_u8::<4>(hi0), vshrq_n_u8::<6>(h0)), q6(vshrq_n_u8::<4>(hi1), vshrq_n_u8::<6>(h1))),
                    ];
                    for (quarter, (w0, w1)) in quarters.into_iter().enumerate() {
                        let g = 8 * n + 2 * quarter;
                        let x = xq.add(16 * g);
                        acc = vmlaq_n_s32(acc, D::dot16(vdupq_n_s32(0), w0, vld1q_s8(x)), *sc.add(g) as i32);
                        acc = vmlaq_n_s32(acc, D::dot16(vdupq_n_s32(0), w1, vld1q_s8(x.add(16))), *sc.add(g + 1) as i32);
                    }
                }
                let sumi = vaddvq_s32(acc);
                sum += xb.d * d * sumi as f32;
            }
            Kind::Q4_0 | Kind::Q4_1 | Kind::Q5_0 | Kind::Q8_0 => unreachable!("32-value formats multiply Q8 blocks (dot)"),
        }
    }
    sum
}

/// One Q8_0 / Q5_0 / Q4_0 / Q4_1 weight row against one activation row
/// (`neon`).
pub(super) unsafe fn dot(kind: Kind, w: &[u8], x: &[BlockQ8]) -> f32 {
    dot_with::<Mull>(kind, w, x)
}

/// [`dot`] with `sdot` (`neondot`). Needs the dotprod extension.
#[target_feature(enable = "dotprod")]
pub(super) unsafe fn dot_sdot(kind: Kind, w: &[u8], x: &[BlockQ8]) -> f32 {
    dot_with::<Sdot>(kind, w, x)
}

/// One Q4_K / Q5_K / Q6_K weight row against one Q8_K activation row
/// (`neon`).
pub(super) unsafe fn dot_k(kind: Kind, w: &[u8], x: &[BlockQ8K]) -> f32 {
    dot_k_with::<Mull>(kind, w, x)
}

/// [`dot_k`] with `sdot` (`neondot`). Needs the dotprod extension.
#[target_feature(enable = "dotprod")]
pub(super) unsafe fn dot_k_sdot(kind: Kind, w: &[u8], x: &[BlockQ8K]) -> f32 {
    dot_k_with::<Sdot>(kind, w, x)
}
