//! Q4_K weights repacked at load into eight-row interleaved blocks (the
//! idea of llama.cpp's `block_q4_Kx8` / `gemm_q4_K_8x8`), on the x86 tiers,
//! by default since 2026-12-07 (`TRESOR_Q4K_REPACK=0` keeps GGUF's layout).
//!
//! GGUF's layout keeps each row's blocks together, so a kernel that
//! multiplies one weight row with a few activation rows ends every block
//! with per-row float steps (convert, scale, FMA, the minimum's term) and
//! each result with a horizontal sum. Here block `b` of eight consecutive
//! weight rows sits in one 1,184-byte group with the rows side by side:
//! a 256-bit register holds four bytes of each of the eight rows, so the
//! integer products land in lane `r` for row `r` (the activations' four
//! bytes are broadcast), and the float steps run once per eight rows.
//! Layout of one group (byte offsets):
//! - `OFF_D`, `OFF_DMIN`: the eight rows' f16 `d` and `dmin`;
//! - `OFF_SCALES`: the 6-bit scales unpacked, sub-block `s`'s eight rows at
//!   `8s..8s+8`;
//! - `OFF_MINS`: the 6-bit minimums unpacked, for sub-block pair `q` the
//!   rows' `(min[2q], min[2q+1])` at `16q + 2r`;
//! - `OFF_QS`: the nibbles, 32 bytes per (chunk `j` of 64 values, 4-byte
//!   piece `c`): row `r`'s `qs[32j + 4c..32j + 4c + 4]` at `32(8j + c) + 4r`.
//!
//! Every output of a packed row goes through the packed kernel, whether
//! the call has one activation row (decode) or many: a row's result is
//! the same bit for bit in every batch. Rows past the last full group of
//! eight keep GGUF's layout and the ordinary kernels. The packed copy is
//! extra memory (the mapped file stays mapped: ~3 % more than the Q4_K
//! weights themselves; the packed rows' mapped pages are handed back as
//! packing goes, `mapped::release`). Measured on Llama-3.2-1B Q4_K: decode 1.10× → 1.56×
//! and prefill 0.71× → 0.83× of llama.cpp, peak RSS 820 → 965 MB (llama.cpp
//! 1,416), load +0.7 s; on Gemma-3-270M the f32-cache logits moved by a
//! mean KL divergence of 0.0037 nats against the GGUF-layout kernels, the
//! noise floor of the 8-bit activation rounding (`gemma::tests`).
//! Owns the packed layout, the packing and the packed driver; never the
//! instruction sequences (`x86_kernels!` in `avx2`) nor the choice of tier.

use super::dispatch::gemm_q4_k_8x;
use super::scalar::q4_k_scales;
use super::{ActBlock, BlockQ8K, CpuTier, Kind, Q4_K_BYTES, QK_K};

/// The environment variable that turns the repacking off (`0`, `false`, `off`, `no`; on otherwise).
pub const REPACK_ENV: &str = "TRESOR_Q4K_REPACK";

/// Weight rows per packed group.
pub(super) const ROWS: usize = 8;
pub(super) const OFF_D: usize = 0;
pub(super) const OFF_DMIN: usize = 16;
pub(super) const OFF_SCALES: usize = 32;
pub(super) const OFF_MINS: usize = 96;
pub(super) const OFF_QS: usize = 160;
/// Bytes of one group: block `b` of eight rows.
pub(super) const GROUP_BYTES: usize = OFF_QS + ROWS * 128;

/// Activation rows per prefill kernel call.
const TOKENS: usize = 4;
/// Packed groups per work item (32 weight rows, as the unpacked tiles).
const TILE_GROUPS: usize = 4;

/// Whether to repack: yes unless `TRESOR_Q4K_REPACK` turns it off.
pub fn repack_enabled() -> bool {
    !std::env::var(REPACK_ENV).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "false" | "off" | "no"))
}

/// The first `8 · groups` rows of a Q4_K matrix in the packed layout.
pub struct PackedQ4K {
    data: Vec<u8>,
    groups: usize,
    nb: usize,
}

impl PackedQ4K {
    /// Packs the full groups of eight rows of `data` (`n` GGUF Q4_K rows of
    /// `k` values), or None when there is no full group.
    pub(super) fn pack(data: &[u8], n: usize, k: usize) -> Option<PackedQ4K> {
        let (groups, nb) = (n / ROWS, k / QK_K);
        let rb = nb * Q4_K_BYTES;
        if groups == 0 || nb == 0 || !k.is_multiple_of(QK_K) || data.len() < n * rb {
            return None;
        }
        let out = super::pack_groups(groups, nb * GROUP_BYTES, data, rb, |g, dst| {
            for (b, grp) in dst.chunks_exact_mut(GROUP_BYTES).enumerate() {
                for r in 0..ROWS {
                    let blk = &data[(g * ROWS + r) * rb + b * Q4_K_BYTES..][..Q4_K_BYTES];
                    grp[OFF_D + 2 * r..OFF_D + 2 * r + 2].copy_from_slice(&blk[0..2]);
                    grp[OFF_DMIN + 2 * r..OFF_DMIN + 2 * r + 2].copy_from_slice(&blk[2..4]);
                    // the scales in bytes 0..8, the minimums in 8..16 (memory order)
                    let sm: [u8; 16] = le_bytes(q4_k_scales(&blk[4..16]));
                    for s in 0..8 {
                        grp[OFF_SCALES + 8 * s + r] = sm[s];
                        grp[OFF_MINS + 16 * (s / 2) + 2 * r + s % 2] = sm[8 + s];
                    }
                    let qs = &blk[16..];
                    for j in 0..4 {
                        for c in 0..8 {
                            let at = OFF_QS + 32 * (8 * j + c) + 4 * r;
                            grp[at..at + 4].copy_from_slice(&qs[32 * j + 4 * c..32 * j + 4 * c + 4]);
                        }
                    }
                }
            }
        });
        Some(PackedQ4K { data: out, groups, nb })
    }

    /// Rows in the packed layout (a multiple of eight).
    pub(super) fn rows(&self) -> usize {
        self.groups * ROWS
    }

    fn group(&self, g: usize) -> &[u8] {
        &self.data[g * self.nb * GROUP_BYTES..(g + 1) * self.nb * GROUP_BYTES]
    }

    /// Appends row `r`'s (`r < rows()`) bytes in GGUF's block layout: the
    /// inverse of [`PackedQ4K::pack`] for one row. A token embedding tied
    /// to this matrix looks its rows up here, so the mapped pages handed
    /// back at packing stay out of memory. The twelve scale bytes are
    /// GGUF's 6-bit packing of the unpacked scales and minimums again
    /// (16 six-bit values in 96 bits: the packing is one to one).
    pub(super) fn append_gguf_row(&self, r: usize, out: &mut Vec<u8>) {
        let (g, lane) = (r / ROWS, r % ROWS);
        for grp in self.group(g).chunks_exact(GROUP_BYTES) {
            out.extend_from_slice(&grp[OFF_D + 2 * lane..OFF_D + 2 * lane + 2]);
            out.extend_from_slice(&grp[OFF_DMIN + 2 * lane..OFF_DMIN + 2 * lane + 2]);
            let sc = |s: usize| grp[OFF_SCALES + 8 * s + lane];
            let mn = |s: usize| grp[OFF_MINS + 16 * (s / 2) + 2 * lane + s % 2];
            let mut packed = [0u8; 12];
            for j in 0..4 {
                packed[j] = sc(j) | (sc(j + 4) >> 4) << 6;
                packed[j + 4] = mn(j) | (mn(j + 4) >> 4) << 6;
                packed[j + 8] = (sc(j + 4) & 0x0F) | (mn(j + 4) & 0x0F) << 4;
            }
            out.extend_from_slice(&packed);
            for j in 0..4 {
                for c in 0..8 {
                    out.extend_from_slice(&grp[OFF_QS + 32 * (8 * j + c) + 4 * lane..][..4]);
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

/// The four words' bytes in memory order (little-endian), without a
/// heap allocation per block: packing an 8B model visits 27 million.
fn le_bytes(w: [u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (dst, word) in out.chunks_exact_mut(4).zip(w) {
        dst.copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// `out (m, n) = x (m, k) · Wᵀ` for a Q4_K matrix whose first
/// `packed.rows()` rows are `packed` and whose rows all are `data` in
/// GGUF's layout, on `tier` (one with x86 kernels, which the caller
/// checked this CPU supports). The rows past the packed ones go through
/// [`super::matmul_on`].
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_packed_on(tier: CpuTier, packed: &PackedQ4K, data: &[u8], n: usize, k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    assert!(tier.supported(), "CPU tier {tier} is not supported here");
    let (p, nb) = (packed.rows(), k / QK_K);
    assert!(p <= n && packed.nb == nb && x.len() == m * k && out.len() == m * n);
    super::matmul_unpacked_rest(tier, Kind::Q4K, data, nb * Q4_K_BYTES, p, n, k, x, m, out);
    BlockQ8K::buffer().with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < m * nb {
            buf.resize(m * nb, BlockQ8K::ZERO);
        }
        let xq = &mut buf[..m * nb];
        super::quantize_rows(Kind::Q4K, x, k, xq);
        let xq: &[BlockQ8K] = xq;
        let xrow = |t: usize| &xq[t * nb..(t + 1) * nb];
        super::drive_packed::<TOKENS>(
            packed.groups,
            TILE_GROUPS,
            (m, n),
            out,
            |g| gemm_q4_k_8x::<1>(tier, packed.group(g), &[xrow(0)]).expect("an x86 tier")[0],
            |g, tokens| gemm_q4_k_8x::<TOKENS>(tier, packed.group(g), &tokens.map(xrow)).expect("an x86 tier"),
        );
    });
}

/// Decode (one activation row `x`, `k` values) against several packed Q4_K
/// matrices that read the same input (a layer's Q, K and V, or its gate and
/// up projections): `outs[i] = x · W_iᵀ`. The activations are quantized
/// once and every matrix's groups run as work items of one pool dispatch,
/// so the pool meets one barrier where separate calls meet one per matrix.
/// Each output is bit for bit what [`matmul_packed_on`] gives alone.
pub(super) fn decode_packed_many_on(tier: CpuTier, mats: &[(&PackedQ4K, &[u8], usize)], k: usize, x: &[f32], outs: &mut [&mut [f32]]) {
    assert!(tier.supported(), "CPU tier {tier} is not supported here");
    let nb = k / QK_K;
    assert!(mats.len() == outs.len() && x.len() == k);
    for ((packed, data, n), out) in mats.iter().zip(outs.iter_mut()) {
        assert!(packed.rows() <= *n && packed.nb == nb && out.len() == *n);
        super::matmul_unpacked_rest(tier, Kind::Q4K, data, nb * Q4_K_BYTES, packed.rows(), *n, k, x, 1, out);
    }
    // work items (two groups each) of matrix i start at starts[i]
    let mut starts = Vec::with_capacity(mats.len() + 1);
    starts.push(0);
    for (packed, _, _) in mats {
        starts.push(starts.last().copied().unwrap_or(0) + packed.groups.div_ceil(2));
    }
    let ptrs: Vec<super::SendPtr> = outs.iter_mut().map(|o| super::SendPtr(o.as_mut_ptr())).collect();
    BlockQ8K::buffer().with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < nb {
            buf.resize(nb, BlockQ8K::ZERO);
        }
        let xq = &mut buf[..nb];
        super::quantize_rows(Kind::Q4K, x, k, xq);
        let xq: &[BlockQ8K] = xq;
        let total = starts.last().copied().unwrap_or(0);
        super::parallel_for(total, |item| {
            let i = starts.partition_point(|&s| s <= item) - 1;
            let (packed, ptr) = (mats[i].0, ptrs[i]);
            let local = item - starts[i];
            for g in 2 * local..packed.groups.min(2 * local + 2) {
                let v = gemm_q4_k_8x::<1>(tier, packed.group(g), &[xq]).expect("an x86 tier")[0];
                for (r, v) in v.iter().enumerate() {
                    // SAFETY: group g's eight cells of output i belong to this item alone.
                    unsafe { *ptr.get().add(g * ROWS + r) = *v };
                }
            }
        });
    });
}

#[cfg(test)]
mod tests {
    use super::super::scalar::{dot_scalar_k, quantize_row_q8k};
    use super::super::ZERO_BLOCK_K;
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    use super::super::test_support::{packed_vs_gguf, random, x86_tiers};

    /// The packed path against ggml's scalar reference on every x86 tier
    /// this CPU has (19 rows: two packed groups and three rows in GGUF's
    /// layout; decode, a ragged prefill and a tile-crossing one), the tiers
    /// bit for bit against each other (integer products, the same float
    /// steps), and every row bit for bit the same alone as in the batch.
    #[test]
    fn packed_q4_k_matches_the_scalar_reference_in_every_batch() {
        let tiers = x86_tiers();
        if tiers.is_empty() {
            eprintln!("skipping: no x86 tier on this CPU");
            return;
        }
        let (n, k) = (19, 3 * QK_K);
        let w = Tensor::from_vec(random(n * k, 71), (n, k), &Device::Cpu).unwrap();
        let data = QTensor::quantize(&w, GgmlDType::Q4K).unwrap().data().unwrap().into_owned();
        let packed = PackedQ4K::pack(&data, n, k).expect("two full groups");
        assert_eq!((packed.rows(), packed.bytes()), (16, 2 * 3 * GROUP_BYTES));
        let rb = k / QK_K * Q4_K_BYTES;
        for m in [1, 6, 70] {
            let x = random(m * k, 72 + m as u64);
            let mut first: Option<Vec<f32>> = None;
            for &tier in &tiers {
                let mut out = vec![0f32; m * n];
                matmul_packed_on(tier, &packed, &data, n, k, &x, m, &mut out);
                for t in 0..m {
                    let mut xq = vec![ZERO_BLOCK_K; k / QK_K];
                    quantize_row_q8k(&x[t * k..(t + 1) * k], &mut xq);
                    let exact: Vec<f32> = (0..n).map(|j| dot_scalar_k(Kind::Q4K, &data[j * rb..(j + 1) * rb], &xq)).collect();
                    let scale = exact.iter().fold(1f32, |s, v| s.max(v.abs()));
                    for (j, (a, b)) in out[t * n..(t + 1) * n].iter().zip(&exact).enumerate() {
                        assert!((a - b).abs() <= 1e-5 * scale, "m={m} on {tier} [{t},{j}]: {a} vs ggml reference {b}");
                    }
                    if m > 1 {
                        let mut alone = vec![0f32; n];
                        matmul_packed_on(tier, &packed, &data, n, k, &x[t * k..(t + 1) * k], 1, &mut alone);
                        for (j, (a, b)) in alone.iter().zip(&out[t * n..(t + 1) * n]).enumerate() {
                            assert_eq!(a.to_bits(), b.to_bits(), "m={m} on {tier} [{t},{j}]: alone {a}, in the batch {b}");
                        }
                    }
                }
                match &first {
                    None => first = Some(out),
                    Some(f) => assert!(f.iter().zip(&out).all(|(a, b)| a.to_bits() == b.to_bits()), "m={m}: {tier} differs from {}", tiers[0]),
                }
            }
        }
    }

    /// One dispatch for several matrices on one input (a layer's Q, K, V):
    /// every output bit for bit what each matrix gives alone, on every x86
    /// tier, ragged row counts included (the rows past the last full group
    /// in GGUF's layout); through `QLinear::forward_slices` the same for
    /// decode (fused) and prefill (one call per matrix), and a set with a
    /// matrix that is not packed Q4_K (Q8_0 here) falls back and agrees too.
    #[test]
    fn fused_decode_over_several_matrices_equals_each_alone() {
        let k = 2 * QK_K;
        let shapes = [19usize, 8, 35];
        let datas: Vec<Vec<u8>> = shapes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let w = Tensor::from_vec(random(n * k, 90 + i as u64), (n, k), &Device::Cpu).unwrap();
                QTensor::quantize(&w, GgmlDType::Q4K).unwrap().data().unwrap().into_owned()
            })
            .collect();
        let packs: Vec<PackedQ4K> = datas.iter().zip(shapes).map(|(d, n)| PackedQ4K::pack(d, n, k).expect("a full group")).collect();
        let x = random(k, 99);
        for tier in x86_tiers() {
            let mut fused: Vec<Vec<f32>> = shapes.iter().map(|&n| vec![f32::NAN; n]).collect();
            let mats: Vec<(&PackedQ4K, &[u8], usize)> = packs.iter().zip(&datas).zip(shapes).map(|((p, d), n)| (p, d.as_slice(), n)).collect();
            let mut outs: Vec<&mut [f32]> = fused.iter_mut().map(|o| o.as_mut_slice()).collect();
            decode_packed_many_on(tier, &mats, k, &x, &mut outs);
            for (i, &n) in shapes.iter().enumerate() {
                let mut alone = vec![0f32; n];
                matmul_packed_on(tier, &packs[i], &datas[i], n, k, &x, 1, &mut alone);
                assert!(alone.iter().zip(&fused[i]).all(|(a, b)| a.to_bits() == b.to_bits()), "{tier}, matrix {i}: fused {:?} vs alone {alone:?}", fused[i]);
            }
        }
        // the public entry point: fused decode, per-matrix prefill, and the fallback for a mixed set
        let layer = |i: usize, dtype: GgmlDType| {
            let w = Tensor::from_vec(random(shapes[i] * k, 90 + i as u64), (shapes[i], k), &Device::Cpu).unwrap();
            super::super::QLinear::from_qtensor(QTensor::quantize(&w, dtype).unwrap()).unwrap()
        };
        let q4k: Vec<_> = (0..3).map(|i| layer(i, GgmlDType::Q4K)).collect();
        let mixed = [layer(0, GgmlDType::Q4K), layer(1, GgmlDType::Q8_0), layer(2, GgmlDType::Q4K)];
        for set in [&q4k[..], &mixed[..]] {
            for m in [1usize, 5] {
                let x = random(m * k, 100 + m as u64);
                let mut many: Vec<Vec<f32>> = shapes.iter().map(|&n| vec![f32::NAN; m * n]).collect();
                let mut outs: Vec<&mut [f32]> = many.iter_mut().map(|o| o.as_mut_slice()).collect();
                let refs: Vec<&super::super::QLinear> = set.iter().collect();
                super::super::QLinear::forward_slices(&refs, &x, m, &mut outs).unwrap();
                for (i, l) in set.iter().enumerate() {
                    let mut alone = vec![0f32; m * shapes[i]];
                    l.forward_slice(&x, m, &mut alone).unwrap();
                    assert!(alone.iter().zip(&many[i]).all(|(a, b)| a.to_bits() == b.to_bits()), "m={m}, matrix {i}");
                }
            }
        }
        // a wrong output length is an error, not a write past the buffer
        let refs: Vec<&super::super::QLinear> = q4k.iter().collect();
        let (mut a, mut b, mut c) = (vec![0f32; 19], vec![0f32; 7], vec![0f32; 35]);
        assert!(super::super::QLinear::forward_slices(&refs, &x, 1, &mut [&mut a, &mut b, &mut c]).is_err());
    }

    /// The largest integer sums the kernels can meet: every nibble 15,
    /// every 6-bit scale 63, every activation at full scale with one sign
    /// (a sub-block's eight `maddubs` pairs add up to 30,480 in the AVX2
    /// tier's i16 accumulator). Equal to ggml's scalar reference on every
    /// tier, for both signs, in decode and prefill.
    #[test]
    fn packed_q4_k_extreme_values_do_not_overflow() {
        let tiers = x86_tiers();
        if tiers.is_empty() {
            eprintln!("skipping: no x86 tier on this CPU");
            return;
        }
        let (n, k) = (8, 2 * QK_K);
        let mut block = [0xFFu8; Q4_K_BYTES];
        block[0..2].copy_from_slice(&half::f16::from_f32(1.0).to_bits().to_le_bytes());
        block[2..4].copy_from_slice(&half::f16::from_f32(0.0).to_bits().to_le_bytes());
        assert_eq!(q4_k_scales(&block[4..16]), [63u32 * 0x0101_0101; 4], "all scales and minimums 63");
        let data = block.repeat(n * k / QK_K);
        let packed = PackedQ4K::pack(&data, n, k).expect("one full group");
        let rb = k / QK_K * Q4_K_BYTES;
        for sign in [1f32, -1.0] {
            for m in [1, 5] {
                let x = vec![sign; m * k];
                let mut xq = vec![ZERO_BLOCK_K; k / QK_K];
                quantize_row_q8k(&x[..k], &mut xq);
                assert!(xq[0].qs.iter().all(|&q| q.unsigned_abs() >= 127), "activations at full scale");
                let exact = dot_scalar_k(Kind::Q4K, &data[..rb], &xq);
                assert!(exact.abs() > 1e5, "a large sum: {exact}");
                for &tier in &tiers {
                    let mut out = vec![0f32; m * n];
                    matmul_packed_on(tier, &packed, &data, n, k, &x, m, &mut out);
                    for (i, v) in out.iter().enumerate() {
                        assert!((v - exact).abs() <= 1e-5 * exact.abs(), "sign {sign}, m={m} on {tier} [{i}]: {v} vs ggml reference {exact}");
                    }
                }
            }
        }
    }

    /// Q4_K prefill (m = 128) and decode (m = 1) throughput, packed against
    /// GGUF's layout, on every x86 tier, on Llama-3.2-1B's layer shapes; a
    /// measurement and not a check (quiet machine): `RAYON_NUM_THREADS=1
    /// cargo test -p tresor-llm --lib packed_q4_k_speed -- --ignored
    /// --nocapture` (`QMATMUL_SPEED_M=8` for a quick try).
    #[test]
    #[ignore]
    fn packed_q4_k_speed() {
        let m: usize = std::env::var("QMATMUL_SPEED_M").ok().and_then(|v| v.parse().ok()).unwrap_or(128);
        let shapes = [(2048, 2048), (512, 2048), (8192, 2048), (2048, 8192)];
        let weights: Vec<(usize, usize, Vec<u8>, PackedQ4K)> = shapes
            .iter()
            .map(|&(n, k)| {
                let w = Tensor::from_vec(random(n * k, 5), (n, k), &Device::Cpu).unwrap();
                let data = QTensor::quantize(&w, GgmlDType::Q4K).unwrap().data().unwrap().into_owned();
                let packed = PackedQ4K::pack(&data, n, k).unwrap();
                (n, k, data, packed)
            })
            .collect();
        packed_vs_gguf("Q4_K, Llama-1B's four layer shapes,", &shapes, m, 7, |tier, packed, i, x, rows, out| {
            let (n, k, data, p) = &weights[i];
            if packed {
                matmul_packed_on(tier, p, data, *n, *k, x, rows, out)
            } else {
                super::super::matmul_on(tier, Kind::Q4K, data, *n, *k, x, rows, out)
            }
        });
    }

    /// Decode of a Llama-3.2-1B layer's Q, K, V (2048, 512, 512 × 2048) and
    /// gate, up (2 × 8192 × 2048): one fused dispatch per set against one
    /// call per matrix, best of 200, alternating, on the active tier; a
    /// measurement and not a check (quiet machine): `cargo test -p
    /// tresor-llm --release --lib fused_decode_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn fused_decode_speed() {
        let k = 2048;
        let sets: [&[usize]; 2] = [&[2048, 512, 512], &[8192, 8192]];
        let tier = CpuTier::for_qmatmul();
        for (si, set) in sets.iter().enumerate() {
            let mats: Vec<(Vec<u8>, PackedQ4K, usize)> = set
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let w = Tensor::from_vec(random(n * k, 7 + i as u64), (n, k), &Device::Cpu).unwrap();
                    let data = QTensor::quantize(&w, GgmlDType::Q4K).unwrap().data().unwrap().into_owned();
                    let p = PackedQ4K::pack(&data, n, k).unwrap();
                    (data, p, n)
                })
                .collect();
            let x = random(k, 3);
            let mut bufs: Vec<Vec<f32>> = set.iter().map(|&n| vec![0f32; n]).collect();
            let (mut fused, mut separate) = (f64::MAX, f64::MAX);
            for round in 0..400 {
                let t = std::time::Instant::now();
                if round % 2 == 0 {
                    let refs: Vec<(&PackedQ4K, &[u8], usize)> = mats.iter().map(|(d, p, n)| (p, d.as_slice(), *n)).collect();
                    let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
                    decode_packed_many_on(tier, &refs, k, &x, &mut outs);
                    fused = fused.min(t.elapsed().as_secs_f64());
                } else {
                    for ((d, p, n), b) in mats.iter().zip(bufs.iter_mut()) {
                        matmul_packed_on(tier, p, d, *n, k, &x, 1, b);
                    }
                    separate = separate.min(t.elapsed().as_secs_f64());
                }
            }
            eprintln!("{tier} set {si} {set:?}: fused {:.1} µs, separate {:.1} µs ({:.3}×)", fused * 1e6, separate * 1e6, separate / fused);
        }
    }

    /// Every packed row reads back as its GGUF bytes (what a tied token
    /// embedding looks up), the 6-bit scale bytes included.
    #[test]
    fn packed_q4_k_rows_read_back_as_their_gguf_bytes() {
        let (n, k) = (19, 2 * QK_K);
        let w = Tensor::from_vec(random(n * k, 74), (n, k), &Device::Cpu).unwrap();
        let mut data = QTensor::quantize(&w, GgmlDType::Q4K).unwrap().data().unwrap().into_owned();
        // every scale bit pattern, not only the quantizer's: bytes 4..16 of each block at random
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        for blk in data.chunks_exact_mut(Q4_K_BYTES) {
            for b in &mut blk[4..16] {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                *b = rng as u8;
            }
        }
        let packed = PackedQ4K::pack(&data, n, k).expect("two full groups");
        let rb = k / QK_K * Q4_K_BYTES;
        for r in 0..packed.rows() {
            let mut row = Vec::new();
            packed.append_gguf_row(r, &mut row);
            assert_eq!(row, &data[r * rb..(r + 1) * rb], "row {r}");
        }
    }

    /// No full group of eight rows, or a width that is no whole number of
    /// blocks: nothing to pack.
    #[test]
    fn too_few_rows_are_not_packed() {
        let k = QK_K;
        let w = Tensor::from_vec(random(7 * k, 73), (7, k), &Device::Cpu).unwrap();
        let data = QTensor::quantize(&w, GgmlDType::Q4K).unwrap().data().unwrap().into_owned();
        assert!(PackedQ4K::pack(&data, 7, k).is_none());
        assert!(PackedQ4K::pack(&data, 8, k).is_none(), "7 rows of data cannot hold 8");
    }
}
