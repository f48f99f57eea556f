//! The quantized matmul's tests: every kernel against candle's `QMatMul`
//! and the scalar references, on every CPU tier this machine supports
//! (AVX512-VNNI, AVX-VNNI, AVX2; on aarch64 NEON with and without dotprod),
//! the tiers against each other, and the fallbacks to candle.

use super::dispatch::{dot_portable, dot_portable_k, dot_r4, dot_x4};
use super::scalar::{dot_scalar, dot_scalar_k, quantize_row, quantize_row_q8k};
use super::*;
use candle_core::Device;

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = crate::synthetic::XorShift::seeded(seed);
    (0..len).map(|_| rng.next_f32() * 2.0 - 1.0).collect()
}

/// Whether candle's own quantized matmul runs on this CPU: candle 0.11's
/// aarch64 kernels (Q4_0, Q8_0, the K-quants) use `sdot` without a run-time
/// check, an illegal instruction on Armv8.0 CPUs without dotprod (qemu's
/// Cortex-A53). There the tests skip the comparisons with candle and keep
/// those with the scalar references.
fn candle_runs_here() -> bool {
    !cfg!(target_arch = "aarch64") || CpuTier::NeonDot.supported()
}

/// Tresor's kernels against candle's reference QMatMul on the same
/// weights, for decode (m = 1, the four-row path with a ragged tail),
/// a ragged prefill and a tile-crossing one, through both the candle op
/// and the slice entry point. The reference is candle's one-row path
/// (8-bit activations, as ours), row by row (candle multiplies big
/// prefill batches differently). candle rounds the Q8_1 block sum to f16
/// *before* scaling (`s = f16(Σq)·d`, ggml: `s = f16(Σq·d)`), so the bound
/// against candle is 1e-3 of the output scale; against the scalar ports
/// of ggml's dot products (same activation blocks) it is 1e-5.
fn matches_candle(dtype: GgmlDType, kind: Kind) {
    let dev = Device::Cpu;
    let shapes: &[(usize, usize, usize)] = match kind {
        Kind::Q4_0 | Kind::Q4_1 | Kind::Q5_0 | Kind::Q8_0 => &[(1, 64, 7), (1, 576, 50), (5, 576, 192), (70, 1536, 33), (3, 64, 1)],
        Kind::Q4K | Kind::Q5K | Kind::Q6K => &[(1, 256, 7), (1, 768, 50), (5, 512, 192), (70, 1536, 33), (3, 256, 1)],
    };
    for &(m, k, n) in shapes {
        let w = Tensor::from_vec(random(n * k, 7 + k as u64), (n, k), &dev).unwrap();
        let reference = QMatMul::from_qtensor(QTensor::quantize(&w, dtype).unwrap()).unwrap();
        let ours = QLinear::from_qtensor(QTensor::quantize(&w, dtype).unwrap()).unwrap();
        let QLinear::Own(wq) = &ours else { panic!("{dtype:?} should use Tresor's kernel") };
        assert_eq!(wq.kind, kind);
        let x = Tensor::from_vec(random(m * k, 3 + m as u64), (1, m, k), &dev).unwrap();
        let a = ours.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a.len(), m * n);
        let mut b = vec![0f32; m * n];
        ours.forward_slice(&x.flatten_all().unwrap().to_vec1::<f32>().unwrap(), m, &mut b).unwrap();
        assert_eq!(a, b, "op and slice paths differ");
        let data = wq.t.data().unwrap();
        // every tier this CPU has, through the whole driver (decode, x8 and
        // x4 prefill, ragged tails): the x86 tiers run one kernel text with
        // exact integer primitives and the same float steps (the 512-bit
        // kernels fold or split their integer halves to keep them), so they
        // agree bit for bit; all of them meet the scalar reference's bound
        // below
        let xs = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let per_tier: Vec<(CpuTier, Vec<f32>)> = CpuTier::all_supported()
            .into_iter()
            .map(|tier| {
                let mut o = vec![0f32; m * n];
                matmul_on(tier, kind, &data, n, k, &xs, m, &mut o);
                (tier, o)
            })
            .collect();
        for (tier, o) in &per_tier {
            if matches!(tier, CpuTier::AvxVnni | CpuTier::Avx512Vnni) {
                let avx2 = &per_tier.iter().find(|(t, _)| *t == CpuTier::Avx2).expect("VNNI implies AVX2").1;
                assert!(o.iter().zip(avx2).all(|(a, b)| a.to_bits() == b.to_bits()), "{dtype:?} ({m},{k},{n}): {tier} differs from avx2");
            }
            // the NEON tiers sum the integers exactly and keep the scalar float steps
            if matches!(tier, CpuTier::Neon | CpuTier::NeonDot) {
                let scalar = &per_tier.iter().find(|(t, _)| *t == CpuTier::Scalar).expect("scalar is always supported").1;
                assert!(o.iter().zip(scalar).all(|(a, b)| a.to_bits() == b.to_bits()), "{dtype:?} ({m},{k},{n}): {tier} differs from scalar");
            }
        }
        let rb = k / kind.block_len() * kind.block_bytes();
        for i in 0..m {
            let row = x.narrow(1, i, 1).unwrap();
            let xr = row.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let ours_row = &a[i * n..(i + 1) * n];
            let scale = if candle_runs_here() {
                let c = reference.forward(&row).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let scale = c.iter().fold(0f32, |s, v| s.max(v.abs())).max(1.0);
                let max_err = ours_row.iter().zip(&c).fold(0f32, |e, (x, y)| e.max((x - y).abs()));
                assert!(max_err <= 1e-3 * scale, "{dtype:?} ({m},{k},{n}) row {i}: max abs error {max_err} vs candle (scale {scale})");
                scale
            } else {
                ours_row.iter().fold(0f32, |s, v| s.max(v.abs())).max(1.0)
            };
            let exact_dot: Box<dyn Fn(&[u8]) -> f32> = match kind {
                Kind::Q4_0 | Kind::Q4_1 | Kind::Q5_0 | Kind::Q8_0 => {
                    let mut xq = vec![ZERO_BLOCK; k / QK];
                    quantize_row(&xr, &mut xq, kind == Kind::Q4_1);
                    Box::new(move |w| dot_scalar(kind, w, &xq))
                }
                Kind::Q4K | Kind::Q5K | Kind::Q6K => {
                    let mut xq = vec![ZERO_BLOCK_K; k / QK_K];
                    quantize_row_q8k(&xr, &mut xq);
                    Box::new(move |w| dot_scalar_k(kind, w, &xq))
                }
            };
            for (j, v) in ours_row.iter().enumerate() {
                let exact = exact_dot(&data[j * rb..(j + 1) * rb]);
                assert!((v - exact).abs() <= 1e-5 * scale, "{dtype:?} ({m},{k},{n}) [{i},{j}]: {v} vs ggml reference {exact}");
                for (tier, o) in &per_tier {
                    let v = o[i * n + j];
                    assert!((v - exact).abs() <= 1e-5 * scale, "{dtype:?} ({m},{k},{n}) [{i},{j}] on {tier}: {v} vs ggml reference {exact}");
                }
            }
        }
    }
}

#[test]
fn q4_0_matches_candle() {
    matches_candle(GgmlDType::Q4_0, Kind::Q4_0);
}

#[test]
fn q5_k_matches_candle() {
    matches_candle(GgmlDType::Q5K, Kind::Q5K);
}

#[test]
fn q4_1_matches_candle() {
    matches_candle(GgmlDType::Q4_1, Kind::Q4_1);
}

#[test]
fn q8_0_matches_candle() {
    matches_candle(GgmlDType::Q8_0, Kind::Q8_0);
}

#[test]
fn q5_0_matches_candle() {
    matches_candle(GgmlDType::Q5_0, Kind::Q5_0);
}

#[test]
fn q4_k_matches_candle() {
    matches_candle(GgmlDType::Q4K, Kind::Q4K);
}

#[test]
fn q6_k_matches_candle() {
    matches_candle(GgmlDType::Q6K, Kind::Q6K);
}

/// A row's outputs are the same bit for bit however many rows the call
/// has, on every tier this CPU supports: the whole driver on 70 rows (one
/// full token tile through the eight-row kernels, then the four-row one
/// and a ragged group) against each row alone (the decode kernel) and
/// against chunks of 13 (eight rows, four, one ragged). An odd number of
/// 32-value blocks per row exercises the 512-bit kernel's tail. A kernel
/// that sums in another order than its tier's others fails here: a prompt's
/// logits would then depend on how it is cut into chunks (the 512-bit Q8_0
/// prefill did, 2 % of Gemma-3-270M's logit scale between one and two
/// chunks).
#[test]
fn a_row_is_the_same_in_every_batch() {
    let (m, n) = (70, 33);
    for (dtype, kind) in [
        (GgmlDType::Q4_0, Kind::Q4_0),
        (GgmlDType::Q4_1, Kind::Q4_1),
        (GgmlDType::Q5_0, Kind::Q5_0),
        (GgmlDType::Q8_0, Kind::Q8_0),
        (GgmlDType::Q4K, Kind::Q4K),
        (GgmlDType::Q5K, Kind::Q5K),
        (GgmlDType::Q6K, Kind::Q6K),
    ] {
        let k = if kind.block_len() == QK { 9 * QK } else { 3 * QK_K };
        let w = Tensor::from_vec(random(n * k, 61), (n, k), &Device::Cpu).unwrap();
        let data = QTensor::quantize(&w, dtype).unwrap().data().unwrap().into_owned();
        let x = random(m * k, 62);
        for tier in CpuTier::all_supported() {
            let mut all = vec![0f32; m * n];
            matmul_on(tier, kind, &data, n, k, &x, m, &mut all);
            let same = |got: &[f32], first: usize, what: &str| {
                for (i, (a, b)) in got.iter().zip(&all[first * n..]).enumerate() {
                    assert_eq!(a.to_bits(), b.to_bits(), "{kind:?} on {tier}, row {} col {}: {what} {a} vs all {m} rows {b}", first + i / n, i % n);
                }
            };
            for r in 0..m {
                let mut one = vec![0f32; n];
                matmul_on(tier, kind, &data, n, k, &x[r * k..(r + 1) * k], 1, &mut one);
                same(&one, r, "alone");
            }
            for first in (0..m).step_by(13) {
                let rows = 13.min(m - first);
                let mut chunk = vec![0f32; rows * n];
                matmul_on(tier, kind, &data, n, k, &x[first * k..(first + rows) * k], rows, &mut chunk);
                same(&chunk, first, "in a chunk of 13");
            }
        }
    }
}

/// The scalar K-quant references against candle's dequantization: the
/// dot of a weight row with a Q8_K row equals Σ dequantized(w) · d·q.
#[test]
fn k_quant_references_match_dequantization() {
    let k = 512;
    for dtype in [GgmlDType::Q4K, GgmlDType::Q5K, GgmlDType::Q6K] {
        let kind = Kind::of(dtype).unwrap();
        let w = Tensor::from_vec(random(k, 31), (1, k), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, dtype).unwrap();
        let deq = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let mut xq = vec![ZERO_BLOCK_K; k / QK_K];
        quantize_row_q8k(&random(k, 32), &mut xq);
        let want: f32 = deq.iter().enumerate().map(|(i, v)| v * xq[i / QK_K].d * xq[i / QK_K].qs[i % QK_K] as f32).sum();
        let got = dot_scalar_k(kind, &q.data().unwrap(), &xq);
        assert!((got - want).abs() <= 1e-4 * want.abs().max(1.0), "{dtype:?}: {got} vs {want}");
    }
}

/// Every supported tier's K-quant kernels (x4, x8 and r4 shapes)
/// against the scalar tier, at a stated tolerance (float reassociation).
#[test]
fn k_quant_tiers_and_scalar_agree() {
    let k = 768;
    for dtype in [GgmlDType::Q4K, GgmlDType::Q5K, GgmlDType::Q6K] {
        let kind = Kind::of(dtype).unwrap();
        let w = Tensor::from_vec(random(4 * k, 13), (4, k), &Device::Cpu).unwrap();
        let data = QTensor::quantize(&w, dtype).unwrap().data().unwrap().into_owned();
        let rb = data.len() / 4;
        let rows: [&[u8]; 4] = std::array::from_fn(|i| &data[i * rb..(i + 1) * rb]);
        let xs: Vec<Vec<BlockQ8K>> = (0..8)
            .map(|i| {
                let mut b = vec![ZERO_BLOCK_K; k / QK_K];
                quantize_row_q8k(&random(k, 40 + i), &mut b);
                b
            })
            .collect();
        let quads: [Quad<BlockQ8K>; 2] = std::array::from_fn(|q| Quad { rows: std::array::from_fn(|i| xs[4 * q + i].as_slice()), d: &[] });
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs().max(1.0);
        let slow_x4 = BlockQ8K::dot_x4(kind, rows[1], &quads[0], CpuTier::Scalar);
        let slow_x4b = BlockQ8K::dot_x4(kind, rows[1], &quads[1], CpuTier::Scalar);
        let slow_r4 = BlockQ8K::dot_r4(kind, &rows, quads[0].rows[2], CpuTier::Scalar);
        for tier in CpuTier::all_supported() {
            let fast = BlockQ8K::dot_x4(kind, rows[1], &quads[0], tier);
            for (a, b) in fast.iter().zip(&slow_x4) {
                assert!(close(*a, *b), "{kind:?} x4 on {tier}: {a} vs {b}");
            }
            if BlockQ8K::has_x8(kind, tier) {
                let fast = BlockQ8K::dot_x8(kind, rows[1], &quads, tier);
                for (a, b) in fast.iter().zip(slow_x4.iter().chain(&slow_x4b)) {
                    assert!(close(*a, *b), "{kind:?} x8 on {tier}: {a} vs {b}");
                }
            }
            let fast = BlockQ8K::dot_r4(kind, &rows, quads[0].rows[2], tier);
            for (a, b) in fast.iter().zip(&slow_r4) {
                assert!(close(*a, *b), "{kind:?} r4 on {tier}: {a} vs {b}");
            }
        }
    }
}

/// One weight row against one activation row on every tier without x86
/// kernels (on aarch64 `neon` and, where the CPU has dotprod, `neondot`)
/// equals the scalar reference bit for bit, every format, on raw random
/// bytes (every nibble, high bit, 6-bit scale and minimum, sign of the Q6_K
/// scales and of the activations, −128 included) under sane f16 scales.
#[test]
fn portable_kernels_match_the_scalar_reference_bit_for_bit() {
    let mut rng = crate::synthetic::XorShift::seeded(71);
    let mut byte = move || (rng.next_u64() >> 40) as u8;
    let tiers: Vec<CpuTier> = CpuTier::all_supported().into_iter().filter(|t| !dispatch::has_x86_kernels(*t)).collect();
    #[cfg(target_arch = "aarch64")]
    assert!(tiers.contains(&CpuTier::Neon), "{tiers:?}");
    let kinds = [Kind::Q4_0, Kind::Q4_1, Kind::Q5_0, Kind::Q8_0, Kind::Q4K, Kind::Q5K, Kind::Q6K];
    for kind in kinds {
        for blocks in [1, 3] {
            for round in 0..8 {
                let (bytes, nb) = (kind.block_bytes(), blocks * QK_K / kind.block_len());
                let mut w: Vec<u8> = (0..nb * bytes).map(|_| byte()).collect();
                for blk in w.chunks_exact_mut(bytes) {
                    // the f16 scales (Q6_K's last): small finite values of either sign
                    let at: &[usize] = match kind {
                        Kind::Q4_1 | Kind::Q4K | Kind::Q5K => &[0, 2],
                        Kind::Q6K => &[208],
                        _ => &[0],
                    };
                    for &o in at {
                        let v = half::f16::from_f32((byte() as f32 - 128.0) / 1024.0).to_le_bytes();
                        blk[o..o + 2].copy_from_slice(&v);
                    }
                }
                let got: Vec<(CpuTier, f32)>;
                let want: f32;
                if kind.block_len() == QK {
                    let x: Vec<BlockQ8> = (0..nb)
                        .map(|_| BlockQ8 { d: (byte() as f32 + 1.0) / 4096.0, s: (byte() as f32 - 128.0) / 64.0, qs: std::array::from_fn(|_| byte() as i8) })
                        .collect();
                    want = dot_scalar(kind, &w, &x);
                    got = tiers.iter().map(|&t| (t, dot_portable(kind, &w, &x, t))).collect();
                } else {
                    let x: Vec<BlockQ8K> = (0..nb)
                        .map(|_| {
                            let mut b = BlockQ8K { d: (byte() as f32 + 1.0) / 4096.0, qs: std::array::from_fn(|_| byte() as i8), bsums: [0; QK_K / 16] };
                            for (g, sum) in b.bsums.iter_mut().enumerate() {
                                *sum = b.qs[g * 16..(g + 1) * 16].iter().map(|&q| q as i16).sum();
                            }
                            b
                        })
                        .collect();
                    want = dot_scalar_k(kind, &w, &x);
                    got = tiers.iter().map(|&t| (t, dot_portable_k(kind, &w, &x, t))).collect();
                }
                for (tier, v) in got {
                    assert_eq!(v.to_bits(), want.to_bits(), "{kind:?}, {blocks} blocks, round {round}, on {tier}: {v} vs scalar {want}");
                }
            }
        }
    }
}

/// Every supported tier's 32-value kernels (x4, x8 where present, r4)
/// against the scalar tier, at a stated tolerance (float reassociation).
#[test]
fn tiers_and_scalar_paths_agree() {
    let k = 256;
    for (dtype, kind) in [(GgmlDType::Q4_0, Kind::Q4_0), (GgmlDType::Q4_1, Kind::Q4_1), (GgmlDType::Q5_0, Kind::Q5_0), (GgmlDType::Q8_0, Kind::Q8_0)] {
        let w = Tensor::from_vec(random(4 * k, 11), (4, k), &Device::Cpu).unwrap();
        let data = QTensor::quantize(&w, dtype).unwrap().data().unwrap().into_owned();
        let rb = data.len() / 4;
        let rows: [&[u8]; 4] = std::array::from_fn(|i| &data[i * rb..(i + 1) * rb]);
        let xs: Vec<Vec<BlockQ8>> = (0..8)
            .map(|i| {
                let mut b = vec![ZERO_BLOCK; k / QK];
                quantize_row(&random(k, 20 + i), &mut b, kind == Kind::Q4_1);
                b
            })
            .collect();
        let refs: [[&[BlockQ8]; 4]; 2] = std::array::from_fn(|q| std::array::from_fn(|i| xs[4 * q + i].as_slice()));
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs().max(1.0);
        let scales4: Vec<Vec<Scales4>> = refs
            .iter()
            .map(|r| {
                let mut s = vec![ZERO_SCALES4; k / QK];
                BlockQ8::fill_scales4(r, &mut s);
                s
            })
            .collect();
        let quads: [Quad<BlockQ8>; 2] = std::array::from_fn(|q| Quad { rows: refs[q], d: &scales4[q] });
        let slow_x4: Vec<f32> = (0..2).flat_map(|q| dot_x4(kind, rows[1], &quads[q], CpuTier::Scalar)).collect();
        let slow_r4 = dot_r4(kind, &rows, refs[0][2], CpuTier::Scalar);
        for tier in CpuTier::all_supported() {
            let fast = dot_x4(kind, rows[1], &quads[0], tier);
            for (a, b) in fast.iter().zip(&slow_x4) {
                assert!(close(*a, *b), "{kind:?} x4 on {tier}: {a} vs {b}");
            }
            if BlockQ8::has_x8(kind, tier) {
                let fast = BlockQ8::dot_x8(kind, rows[1], &quads, tier);
                for (a, b) in fast.iter().zip(&slow_x4) {
                    assert!(close(*a, *b), "{kind:?} x8 on {tier}: {a} vs {b}");
                }
            }
            let fast = dot_r4(kind, &rows, refs[0][2], tier);
            for (a, b) in fast.iter().zip(&slow_r4) {
                assert!(close(*a, *b), "{kind:?} r4 on {tier}: {a} vs {b}");
            }
        }
    }
}

/// Prefill (m = 128) and decode (m = 1) throughput of every kernel on
/// every supported tier, on Llama-3.2-1B's layer shapes; a measurement and
/// not a check: `RAYON_NUM_THREADS=1 cargo test -p tresor-llm --lib
/// qmatmul_speed -- --ignored --nocapture` (`QMATMUL_SPEED_M=8` for a
/// quick try).
#[test]
#[ignore]
fn qmatmul_speed() {
    let m: usize = std::env::var("QMATMUL_SPEED_M").ok().and_then(|v| v.parse().ok()).unwrap_or(128);
    let shapes = [(2048, 2048), (512, 2048), (8192, 2048), (2048, 8192)];
    let kinds = [
        (GgmlDType::Q8_0, Kind::Q8_0),
        (GgmlDType::Q5_0, Kind::Q5_0),
        (GgmlDType::Q4_0, Kind::Q4_0),
        (GgmlDType::Q4_1, Kind::Q4_1),
        (GgmlDType::Q4K, Kind::Q4K),
        (GgmlDType::Q5K, Kind::Q5K),
        (GgmlDType::Q6K, Kind::Q6K),
    ];
    for (dtype, kind) in kinds {
        let weights: Vec<(usize, usize, Vec<u8>)> = shapes
            .iter()
            .map(|&(n, k)| {
                let w = Tensor::from_vec(random(n * k, 5), (n, k), &Device::Cpu).unwrap();
                (n, k, QTensor::quantize(&w, dtype).unwrap().data().unwrap().into_owned())
            })
            .collect();
        for tier in CpuTier::all_supported() {
            for rows in [m, 1] {
                let (mut total, mut macs) = (0f64, 0f64);
                for (n, k, data) in &weights {
                    let (n, k) = (*n, *k);
                    let x = random(rows * k, 6);
                    let mut out = vec![0f32; rows * n];
                    matmul_on(tier, kind, data, n, k, &x, rows, &mut out);
                    // best of 7: the machine's other load only ever slows a run
                    let mut best = f64::MAX;
                    for _ in 0..7 {
                        let t = std::time::Instant::now();
                        matmul_on(tier, kind, data, n, k, &x, rows, &mut out);
                        best = best.min(t.elapsed().as_secs_f64());
                    }
                    total += best;
                    macs += (rows * n * k) as f64;
                }
                eprintln!("{kind:?} on {tier}, Llama-1B's four layer shapes at m={rows}: {:.2} ms, {:.1} GMAC/s", total * 1e3, macs / total / 1e9);
            }
        }
    }
}

#[test]
fn other_quantizations_stay_with_candle() {
    let w = Tensor::from_vec(random(8 * 256, 5), (8, 256), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&w, GgmlDType::Q3K).unwrap();
    let reference = QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q3K).unwrap()).unwrap();
    let l = QLinear::from_qtensor(q).unwrap();
    assert!(matches!(l, QLinear::Candle(_)));
    if !candle_runs_here() {
        eprintln!("skipping the forward: candle's Q3_K kernel needs dotprod on aarch64");
        return;
    }
    // The slice entry point goes through candle for them.
    let x = random(2 * 256, 9);
    let mut out = vec![0f32; 2 * 8];
    l.forward_slice(&x, 2, &mut out).unwrap();
    let want = reference.forward(&Tensor::from_vec(x, (2, 256), &Device::Cpu).unwrap()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(out, want);
}

#[test]
fn wrong_width_is_an_error() {
    let w = Tensor::zeros((4, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
    let l = QLinear::from_qtensor(QTensor::quantize(&w, GgmlDType::Q4_1).unwrap()).unwrap();
    let x = Tensor::zeros((1, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(l.forward(&x).is_err());
    let mut out = vec![0f32; 4];
    assert!(l.forward_slice(&[0.0; 32], 1, &mut out).is_err());
}

/// The AVX2 activation quantization (Q8 and Q8_K blocks) gives the scalar reference's bits:
/// random rows at several scales, rows whose values land exactly on
/// halves (ties round away from zero), just below a half, signed zeros,
/// subnormals and an all-zero block.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_quantization_equals_the_scalar_bit_for_bit() {
    if !CpuTier::Avx2.supported() {
        eprintln!("skipping: no AVX2");
        return;
    }
    let mut rows: Vec<Vec<f32>> = [1e-3f32, 0.5, 1.0, 37.0, 1e4].iter().enumerate().map(|(i, s)| random(QK * 9, 40 + i as u64).iter().map(|v| v * s).collect()).collect();
    // amax 127 → d = 1, id = 1: the values themselves are rounded
    let ties: Vec<f32> = (0..QK as i32).map(|i| if i == 0 { 127.0 } else { (i - 16) as f32 + 0.5 }).collect();
    let below: Vec<f32> = (0..QK).map(|i| if i == 0 { -127.0 } else { 0.49999997 * if i % 2 == 0 { 1.0 } else { -1.0 } + (i % 5) as f32 }).collect();
    let odd: Vec<f32> = (0..QK).map(|i| match i % 4 { 0 => -0.0, 1 => f32::MIN_POSITIVE / 4.0, 2 => -1e-40, _ => 3e-39 }).collect();
    rows.push([ties, below, odd, vec![0.0; QK]].concat());
    for x in rows {
        assert_eq!(x.len() % QK, 0);
        for with_sum in [false, true] {
            let n = x.len() / QK;
            let (mut a, mut b) = (vec![ZERO_BLOCK; n], vec![ZERO_BLOCK; n]);
            quantize_row(&x, &mut a, with_sum);
            // SAFETY: AVX2 checked above
            unsafe { super::quantize_x86::quantize_row(&x, &mut b, with_sum) };
            for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                assert_eq!((p.qs, p.d.to_bits(), p.s.to_bits()), (q.qs, q.d.to_bits(), q.s.to_bits()), "block {i}, with_sum {with_sum}");
            }
        }
        // Q8_K: 256-value blocks (the tie rows repeated to fill one; a block whose
        // largest |x| comes twice with both signs: the first one sets the sign)
        let mut x = x.clone();
        x.truncate(x.len() / QK_K * QK_K);
        let mut both = vec![0.25f32; QK_K];
        both[3] = -9.0;
        both[200] = 9.0;
        x.extend(both);
        x.extend(vec![0.0; QK_K]);
        let n = x.len() / QK_K;
        let (mut a, mut b) = (vec![ZERO_BLOCK_K; n], vec![ZERO_BLOCK_K; n]);
        quantize_row_q8k(&x, &mut a);
        // SAFETY: AVX2 checked above
        unsafe { super::quantize_x86::quantize_row_q8k(&x, &mut b) };
        for (i, (p, q)) in a.iter().zip(&b).enumerate() {
            assert_eq!((p.qs, p.bsums, p.d.to_bits()), (q.qs, q.bsums, q.d.to_bits()), "Q8_K block {i}");
        }
    }
}

/// `pack_groups` fills every group exactly once across its parallel work
/// items (a ragged last item included), each with its own index.
#[test]
fn pack_groups_fills_every_group_once() {
    for groups in [1, 63, 64, 65, 200] {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let data = vec![0u8; groups * 8 * 3];
        let out = super::pack_groups(groups, 5, &data, 3, |g, dst| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(dst.len(), 5);
            assert!(dst.iter().all(|&b| b == 0), "group {g} written twice");
            dst.fill((g % 251) as u8 + 1);
        });
        assert_eq!(calls.into_inner(), groups);
        for (g, chunk) in out.chunks_exact(5).enumerate() {
            assert!(chunk.iter().all(|&b| b == (g % 251) as u8 + 1), "groups {groups}: group {g} holds {chunk:?}");
        }
    }
}
