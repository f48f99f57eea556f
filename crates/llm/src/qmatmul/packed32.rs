//! Q8_0, Q5_0 and Q4_0 weights repacked at load into eight-row interleaved
//! groups, on the x86 tiers (`TRESOR_REPACK=0` keeps GGUF's layout), so a
//! 32-value block costs one integer instruction per eight rows and four
//! bytes instead of a handful per row.
//!
//! GGUF keeps each row's blocks together, and the 32-value formats'
//! ordinary prefill kernel (`dot_q8_0_x8`) multiplies one row with eight
//! activation rows: per (row, token, block) a load, the sign trick, the
//! integer product, a convert, a scale shuffle and an FMA — about five
//! vector instructions per 32 products, 38 % of Gemma-3-270M's prefill.
//! Here block `b` of eight consecutive rows sits in one group with the rows
//! side by side: a 256-bit register holds four values of each of the eight
//! rows as unsigned bytes `u = w + offset` (Q8_0: +128, Q5_0: +16, Q4_0:
//! +8), one token's matching four activation bytes are broadcast, and one
//! `vpdpbusd` (u8 × i8) adds row `r`'s four products into lane `r`. The
//! offset comes back out as `offset · Σ x` per token and block (exact, in
//! integers: the activations' block sums are computed once per call), and
//! the float steps (convert, scale, FMA) run once per eight rows and block.
//! AVX2 has no `vpdpbusd`: its `maddubs` would saturate on Q8_0's
//! `w + 128`, so there Q8_0 goes back to signed bytes and the sign trick
//! (Q5_0's and Q4_0's unsigned values stay small enough).
//!
//! Layout of one group (byte offsets; `b` blocks of a group follow each
//! other, then the next group's):
//! - `OFF_D`: the eight rows' f16 `d`;
//! - Q8_0 (`GROUP_Q8_0` = 272 bytes, as eight GGUF blocks): at
//!   `16 + 32p + 4r` row `r`'s values `4p..4p + 4` (piece `p` of 8) as
//!   `w ^ 0x80` (= `w + 128` as u8);
//! - Q4_0 (144 bytes): at `16 + 32c + 4r` row `r`'s GGUF bytes
//!   `qs[4c..4c + 4]` (`c` < 4): the low nibbles are piece `c`, the high
//!   nibbles piece `c + 4`;
//! - Q5_0 (176 bytes): at `16` the fifth bits, one byte per (row, value
//!   `i` of a piece) at `16 + 4r + i` — bit `4 + c` for piece `c`, bit
//!   `c` for piece `c + 4` —, then the nibbles at `48 + 32c + 4r` as
//!   Q4_0's. A shift and a mask put each piece's bit at bit 4.
//!
//! Every output of a packed row goes through the packed kernel, whether
//! the call has one activation row (decode) or many: a row's result is the
//! same bit for bit in every batch. Rows past the last full group of eight
//! keep GGUF's layout and the ordinary kernels. The packed copy has the
//! GGUF blocks' size, and the mapped pages of the rows packed are handed
//! back as packing goes (`mapped::release`, every 64 groups), so memory
//! does not grow, not even for a moment on Gemma's 178 MB tied embedding.
//! Owns the packed layout of the 32-value signed formats, their packing and
//! their driver; never the instruction sequences (`x86_kernels!` in
//! `avx2`) nor the choice of tier.

use super::dispatch::gemm_q32_8x;
use super::{ActBlock, BlockQ8, CpuTier, Kind, QK};
use std::cell::RefCell;

/// The environment variable that turns every load-time repacking off
/// (`0`, `false`, `off`, `no`): these formats' and Q4_K's.
pub const REPACK_ALL_ENV: &str = "TRESOR_REPACK";

/// Weight rows per packed group.
pub(super) const ROWS: usize = 8;
pub(super) const OFF_D: usize = 0;
/// Q5_0's fifth bits.
pub(super) const OFF_QH: usize = 16;
/// Bytes of one group: block `b` of eight rows.
pub(super) const GROUP_Q8_0: usize = 16 + ROWS * 32;
pub(super) const GROUP_Q5_0: usize = 16 + 32 + ROWS * 16;
pub(super) const GROUP_Q4_0: usize = 16 + ROWS * 16;

/// Activation rows per prefill kernel call: eight share each unpacking of
/// the weights (Q5_0's nibbles and fifth bits, Q8_0's sign trick on AVX2).
/// Against four, one thread, m = 128: Q5_0 +18 % (avx512vnni) / +14 %
/// (avx2), Q4_0 +6 % / +3 %, Q8_0 ±2 % / +12 %. (Q4_K's kernel, with
/// three accumulators per token, stays at four: eight was 3 % slower.)
const TOKENS: usize = 8;
/// Packed groups per work item (32 weight rows, as the unpacked tiles).
const TILE_GROUPS: usize = 4;

thread_local! {
    /// Σ qs of every quantized activation block of the current call.
    static XQ_SUMS: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
}

/// Whether `TRESOR_REPACK` leaves repacking on (the default).
pub fn repack_enabled() -> bool {
    !std::env::var(REPACK_ALL_ENV).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "false" | "off" | "no"))
}

/// Bytes of one packed group of `kind`, for the formats packed here.
pub(super) fn group_bytes(kind: Kind) -> Option<usize> {
    match kind {
        Kind::Q8_0 => Some(GROUP_Q8_0),
        Kind::Q5_0 => Some(GROUP_Q5_0),
        Kind::Q4_0 => Some(GROUP_Q4_0),
        _ => None,
    }
}

/// The first `8 · groups` rows of a Q8_0, Q5_0 or Q4_0 matrix in the packed layout.
pub struct PackedQ32 {
    kind: Kind,
    data: Vec<u8>,
    groups: usize,
    nb: usize,
}

impl PackedQ32 {
    /// Packs the full groups of eight rows of `data` (`n` GGUF rows of `k`
    /// values of `kind`), or None for another format or no full group.
    pub(super) fn pack(kind: Kind, data: &[u8], n: usize, k: usize) -> Option<PackedQ32> {
        let gb = group_bytes(kind)?;
        let (groups, nb) = (n / ROWS, k / QK);
        let bb = kind.block_bytes();
        let rb = nb * bb;
        if groups == 0 || nb == 0 || !k.is_multiple_of(QK) || data.len() < n * rb {
            return None;
        }
        debug_assert_eq!(gb, ROWS * bb);
        let out = super::pack_groups(groups, nb * gb, data, rb, |g, dst| {
            for (b, grp) in dst.chunks_exact_mut(gb).enumerate() {
                for r in 0..ROWS {
                    let blk = &data[(g * ROWS + r) * rb + b * bb..][..bb];
                    grp[OFF_D + 2 * r..OFF_D + 2 * r + 2].copy_from_slice(&blk[0..2]);
                    match kind {
                        Kind::Q8_0 => {
                            for p in 0..8 {
                                let w = u32::from_le_bytes(blk[2 + 4 * p..6 + 4 * p].try_into().expect("four bytes"));
                                grp[16 + 32 * p + 4 * r..][..4].copy_from_slice(&(w ^ 0x8080_8080).to_le_bytes());
                            }
                        }
                        Kind::Q4_0 => {
                            for c in 0..4 {
                                grp[16 + 32 * c + 4 * r..][..4].copy_from_slice(&blk[2 + 4 * c..2 + 4 * c + 4]);
                            }
                        }
                        _ => {
                            // Q5_0: f16 d, u32 fifth bits, 16 bytes of nibbles
                            let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
                            for i in 0..4 {
                                let mut h = 0u8;
                                for c in 0..4 {
                                    h |= (((qh >> (4 * c + i)) & 1) as u8) << (4 + c);
                                    h |= (((qh >> (16 + 4 * c + i)) & 1) as u8) << c;
                                }
                                grp[OFF_QH + 4 * r + i] = h;
                            }
                            for c in 0..4 {
                                grp[48 + 32 * c + 4 * r..][..4].copy_from_slice(&blk[6 + 4 * c..6 + 4 * c + 4]);
                            }
                        }
                    }
                }
            }
        });
        Some(PackedQ32 { kind, data: out, groups, nb })
    }

    /// Rows in the packed layout (a multiple of eight).
    pub(super) fn rows(&self) -> usize {
        self.groups * ROWS
    }

    fn group(&self, g: usize) -> &[u8] {
        let gb = group_bytes(self.kind).expect("a packed format");
        &self.data[g * self.nb * gb..(g + 1) * self.nb * gb]
    }

    /// Appends row `r`'s (`r < rows()`) bytes in GGUF's block layout: the
    /// inverse of [`PackedQ32::pack`] for one row.
    pub(super) fn append_gguf_row(&self, r: usize, out: &mut Vec<u8>) {
        let gb = group_bytes(self.kind).expect("a packed format");
        let (g, lane) = (r / ROWS, r % ROWS);
        for grp in self.group(g).chunks_exact(gb) {
            out.extend_from_slice(&grp[OFF_D + 2 * lane..OFF_D + 2 * lane + 2]);
            match self.kind {
                Kind::Q8_0 => {
                    for p in 0..8 {
                        out.extend(grp[16 + 32 * p + 4 * lane..][..4].iter().map(|b| b ^ 0x80));
                    }
                }
                Kind::Q4_0 => {
                    for c in 0..4 {
                        out.extend_from_slice(&grp[16 + 32 * c + 4 * lane..][..4]);
                    }
                }
                _ => {
                    let mut qh = 0u32;
                    for i in 0..4 {
                        let h = grp[OFF_QH + 4 * lane + i] as u32;
                        for c in 0..4 {
                            qh |= ((h >> (4 + c)) & 1) << (4 * c + i);
                            qh |= ((h >> c) & 1) << (16 + 4 * c + i);
                        }
                    }
                    out.extend_from_slice(&qh.to_le_bytes());
                    for c in 0..4 {
                        out.extend_from_slice(&grp[48 + 32 * c + 4 * lane..][..4]);
                    }
                }
            }
        }
    }

    /// Bytes held by the packed copy.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// `out (m, n) = x (m, k) · Wᵀ` for a matrix whose first `packed.rows()`
/// rows are `packed` and whose rows all are `data` in GGUF's layout, on
/// `tier` (one with x86 kernels, which the caller checked this CPU
/// supports). The rows past the packed ones go through [`super::matmul_on`].
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_packed32_on(tier: CpuTier, packed: &PackedQ32, data: &[u8], n: usize, k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    assert!(tier.supported(), "CPU tier {tier} is not supported here");
    let (kind, p, nb) = (packed.kind, packed.rows(), k / QK);
    assert!(p <= n && packed.nb == nb && x.len() == m * k && out.len() == m * n);
    super::matmul_unpacked_rest(tier, kind, data, nb * kind.block_bytes(), p, n, k, x, m, out);
    BlockQ8::buffer().with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < m * nb {
            buf.resize(m * nb, BlockQ8::ZERO);
        }
        let xq = &mut buf[..m * nb];
        super::quantize_rows(kind, x, k, xq);
        let xq: &[BlockQ8] = xq;
        XQ_SUMS.with(|sums_cell| {
            let mut sums = sums_cell.borrow_mut();
            if sums.len() < m * nb {
                sums.resize(m * nb, 0);
            }
            let sums = &mut sums[..m * nb];
            for (s, xb) in sums.iter_mut().zip(xq) {
                *s = xb.qs.iter().map(|&q| q as i32).sum();
            }
            let sums: &[i32] = sums;
            let xrow = |t: usize| &xq[t * nb..(t + 1) * nb];
            let srow = |t: usize| &sums[t * nb..(t + 1) * nb];
            super::drive_packed::<TOKENS>(
                packed.groups,
                TILE_GROUPS,
                (m, n),
                out,
                |g| gemm_q32_8x::<1>(tier, kind, packed.group(g), &[xrow(0)], &[srow(0)]).expect("an x86 tier")[0],
                |g, tokens| gemm_q32_8x::<TOKENS>(tier, kind, packed.group(g), &tokens.map(xrow), &tokens.map(srow)).expect("an x86 tier"),
            );
        });
    });
}

#[cfg(test)]
mod tests {
    use super::super::scalar::{dot_scalar, quantize_row};
    use super::super::{Q8_0_BYTES, ZERO_BLOCK};
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    use super::super::test_support::{packed_vs_gguf, random, x86_tiers};

    const FORMATS: [(Kind, GgmlDType); 3] = [(Kind::Q8_0, GgmlDType::Q8_0), (Kind::Q5_0, GgmlDType::Q5_0), (Kind::Q4_0, GgmlDType::Q4_0)];

    /// The packed path against ggml's scalar reference for each format on
    /// every x86 tier this CPU has (19 rows: two packed groups and three
    /// rows in GGUF's layout; decode, a ragged prefill and a tile-crossing
    /// one), the tiers bit for bit against each other (integer products,
    /// the same float steps), and every row bit for bit the same alone as
    /// in the batch. The weights include each format's extreme values
    /// (Q8_0's −128 and 127 meet activations of −127 and 127).
    #[test]
    fn packed_32_value_formats_match_the_scalar_reference_in_every_batch() {
        let tiers = x86_tiers();
        if tiers.is_empty() {
            eprintln!("skipping: no x86 tier on this CPU");
            return;
        }
        let (n, k) = (19, 5 * QK);
        let mut wv = random(n * k, 81);
        // a block of full-scale values of both signs
        for (i, v) in wv[..QK].iter_mut().enumerate() {
            *v = if i % 2 == 0 { 1.0 } else { -1.0 };
        }
        let w = Tensor::from_vec(wv, (n, k), &Device::Cpu).unwrap();
        for (kind, dtype) in FORMATS {
            let mut data = QTensor::quantize(&w, dtype).unwrap().data().unwrap().into_owned();
            if kind == Kind::Q8_0 {
                // −128, which ggml's quantizer never writes but a GGUF may hold
                data[2] = 0x80;
                data[3 + Q8_0_BYTES] = 0x80;
            }
            let packed = PackedQ32::pack(kind, &data, n, k).expect("two full groups");
            assert_eq!((packed.rows(), packed.bytes()), (16, 2 * 5 * group_bytes(kind).unwrap()));
            let rb = k / QK * kind.block_bytes();
            for m in [1, 6, 70] {
                let mut x = random(m * k, 82 + m as u64);
                // a block of ±max activations against the full-scale weights
                for (i, v) in x[..QK].iter_mut().enumerate() {
                    *v = if i % 3 == 0 { -2.0 } else { 2.0 };
                }
                let mut first: Option<Vec<f32>> = None;
                for &tier in &tiers {
                    let mut out = vec![0f32; m * n];
                    matmul_packed32_on(tier, &packed, &data, n, k, &x, m, &mut out);
                    for t in 0..m {
                        let mut xq = vec![ZERO_BLOCK; k / QK];
                        quantize_row(&x[t * k..(t + 1) * k], &mut xq, false);
                        let exact: Vec<f32> = (0..n).map(|j| dot_scalar(kind, &data[j * rb..(j + 1) * rb], &xq)).collect();
                        let scale = exact.iter().fold(1f32, |s, v| s.max(v.abs()));
                        for (j, (a, b)) in out[t * n..(t + 1) * n].iter().zip(&exact).enumerate() {
                            assert!((a - b).abs() <= 1e-5 * scale, "{kind:?} m={m} on {tier} [{t},{j}]: {a} vs ggml reference {b}");
                        }
                        if m > 1 {
                            let mut alone = vec![0f32; n];
                            matmul_packed32_on(tier, &packed, &data, n, k, &x[t * k..(t + 1) * k], 1, &mut alone);
                            for (j, (a, b)) in alone.iter().zip(&out[t * n..(t + 1) * n]).enumerate() {
                                assert_eq!(a.to_bits(), b.to_bits(), "{kind:?} m={m} on {tier} [{t},{j}]: alone {a}, in the batch {b}");
                            }
                        }
                    }
                    match &first {
                        None => first = Some(out),
                        Some(f) => assert!(
                            f.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()),
                            "{kind:?} m={m}: {tier} differs from {}",
                            tiers[0]
                        ),
                    }
                }
            }
        }
    }

    /// Prefill (m = 128) and decode (m = 1) throughput of each format,
    /// packed against GGUF's layout, on every x86 tier, on Gemma-3-270M's
    /// and Llama-3.2-1B's layer shapes; a measurement and not a check
    /// (quiet machine): `RAYON_NUM_THREADS=1 cargo test -p tresor-llm --lib
    /// packed_32_speed -- --ignored --nocapture` (`QMATMUL_SPEED_M=8` for a
    /// quick try).
    #[test]
    #[ignore]
    fn packed_32_speed() {
        let m: usize = std::env::var("QMATMUL_SPEED_M").ok().and_then(|v| v.parse().ok()).unwrap_or(128);
        let shapes = [(1024, 640), (2048, 640), (640, 2048), (2048, 2048), (8192, 2048), (2048, 8192)];
        for (kind, dtype) in FORMATS {
            let weights: Vec<(usize, usize, Vec<u8>, PackedQ32)> = shapes
                .iter()
                .map(|&(n, k)| {
                    let w = Tensor::from_vec(random(n * k, 5), (n, k), &Device::Cpu).unwrap();
                    let data = QTensor::quantize(&w, dtype).unwrap().data().unwrap().into_owned();
                    let packed = PackedQ32::pack(kind, &data, n, k).unwrap();
                    (n, k, data, packed)
                })
                .collect();
            packed_vs_gguf(&format!("{kind:?}, six layer shapes,"), &shapes, m, 5, |tier, packed, i, x, rows, out| {
                let (n, k, data, p) = &weights[i];
                if packed {
                    matmul_packed32_on(tier, p, data, *n, *k, x, rows, out)
                } else {
                    super::super::matmul_on(tier, kind, data, *n, *k, x, rows, out)
                }
            });
        }
    }

    /// Every packed row reads back as its GGUF bytes (what a tied
    /// embedding looks up), for each format; rows past the packed ones are
    /// not there to read.
    #[test]
    fn packed_rows_read_back_as_their_gguf_bytes() {
        let (n, k) = (19, 3 * QK);
        let w = Tensor::from_vec(random(n * k, 84), (n, k), &Device::Cpu).unwrap();
        for (kind, dtype) in FORMATS {
            let data = QTensor::quantize(&w, dtype).unwrap().data().unwrap().into_owned();
            let packed = PackedQ32::pack(kind, &data, n, k).unwrap();
            let rb = k / QK * kind.block_bytes();
            for r in 0..packed.rows() {
                let mut row = Vec::new();
                packed.append_gguf_row(r, &mut row);
                assert_eq!(row, &data[r * rb..(r + 1) * rb], "{kind:?} row {r}");
            }
        }
    }

    /// No full group of eight rows, a format packed elsewhere, or a width
    /// that is no whole number of blocks: nothing to pack.
    #[test]
    fn what_cannot_be_packed_is_not() {
        let k = QK;
        let w = Tensor::from_vec(random(8 * k, 83), (8, k), &Device::Cpu).unwrap();
        let data = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap().data().unwrap().into_owned();
        assert!(PackedQ32::pack(Kind::Q8_0, &data, 7, k).is_none(), "no full group");
        assert!(PackedQ32::pack(Kind::Q8_0, &data, 9, k).is_none(), "8 rows of data cannot hold 9");
        assert!(PackedQ32::pack(Kind::Q4_1, &data, 8, k).is_none(), "Q4_1 is not packed");
        assert!(PackedQ32::pack(Kind::Q8_0, &data, 8, k).is_some());
    }
}
