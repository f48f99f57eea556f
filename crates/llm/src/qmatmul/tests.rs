//! The quantized matmul's tests: every kernel against candle's `QMatMul`
//! and the scalar references, the AVX2 (and, on aarch64, NEON) paths
//! against the scalar ones, and the fallbacks to candle.

use super::dispatch::{dot_r4, dot_x4, has_avx2_fma};
#[cfg(target_arch = "aarch64")]
use super::dispatch::dot_portable;
use super::scalar::{dot_scalar, dot_scalar_k, quantize_row, quantize_row_q8k};
use super::*;
use candle_core::Device;

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = crate::synthetic::XorShift::seeded(seed);
    (0..len).map(|_| rng.next_f32() * 2.0 - 1.0).collect()
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
        Kind::Q4_1 | Kind::Q5_0 | Kind::Q8_0 => &[(1, 64, 7), (1, 576, 50), (5, 576, 192), (70, 1536, 33), (3, 64, 1)],
        Kind::Q4K | Kind::Q6K => &[(1, 256, 7), (1, 768, 50), (5, 512, 192), (70, 1536, 33), (3, 256, 1)],
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
        let rb = k / kind.block_len() * kind.block_bytes();
        for i in 0..m {
            let row = x.narrow(1, i, 1).unwrap();
            let c = reference.forward(&row).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let scale = c.iter().fold(0f32, |s, v| s.max(v.abs())).max(1.0);
            let ours_row = &a[i * n..(i + 1) * n];
            let max_err = ours_row.iter().zip(&c).fold(0f32, |e, (x, y)| e.max((x - y).abs()));
            assert!(max_err <= 1e-3 * scale, "{dtype:?} ({m},{k},{n}) row {i}: max abs error {max_err} vs candle (scale {scale})");
            let xr = row.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let exact_dot: Box<dyn Fn(&[u8]) -> f32> = match kind {
                Kind::Q4_1 | Kind::Q5_0 | Kind::Q8_0 => {
                    let mut xq = vec![ZERO_BLOCK; k / QK];
                    quantize_row(&xr, &mut xq, kind == Kind::Q4_1);
                    Box::new(move |w| dot_scalar(kind, w, &xq))
                }
                Kind::Q4K | Kind::Q6K => {
                    let mut xq = vec![ZERO_BLOCK_K; k / QK_K];
                    quantize_row_q8k(&xr, &mut xq);
                    Box::new(move |w| dot_scalar_k(kind, w, &xq))
                }
            };
            for (j, v) in ours_row.iter().enumerate() {
                let exact = exact_dot(&data[j * rb..(j + 1) * rb]);
                assert!((v - exact).abs() <= 1e-5 * scale, "{dtype:?} ({m},{k},{n}) [{i},{j}]: {v} vs ggml reference {exact}");
            }
        }
    }
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

/// The scalar K-quant references against candle's dequantization: the
/// dot of a weight row with a Q8_K row equals Σ dequantized(w) · d·q.
#[test]
fn k_quant_references_match_dequantization() {
    let k = 512;
    for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
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

#[test]
fn k_quant_avx2_and_scalar_paths_agree() {
    let k = 768;
    for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
        let kind = Kind::of(dtype).unwrap();
        let w = Tensor::from_vec(random(4 * k, 13), (4, k), &Device::Cpu).unwrap();
        let data = QTensor::quantize(&w, dtype).unwrap().data().unwrap().into_owned();
        let rb = data.len() / 4;
        let rows: [&[u8]; 4] = std::array::from_fn(|i| &data[i * rb..(i + 1) * rb]);
        let xs: Vec<Vec<BlockQ8K>> = (0..4)
            .map(|i| {
                let mut b = vec![ZERO_BLOCK_K; k / QK_K];
                quantize_row_q8k(&random(k, 40 + i), &mut b);
                b
            })
            .collect();
        let refs: [&[BlockQ8K]; 4] = std::array::from_fn(|i| xs[i].as_slice());
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs().max(1.0);
        let quad = Quad { rows: refs, d: &[] };
        let fast = BlockQ8K::dot_x4(kind, rows[1], &quad, has_avx2_fma());
        let slow = BlockQ8K::dot_x4(kind, rows[1], &quad, false);
        for (a, b) in fast.iter().zip(&slow) {
            assert!(close(*a, *b), "{kind:?} x4: {a} vs {b}");
        }
        let fast = BlockQ8K::dot_r4(kind, &rows, refs[2], has_avx2_fma());
        let slow = BlockQ8K::dot_r4(kind, &rows, refs[2], false);
        for (a, b) in fast.iter().zip(&slow) {
            assert!(close(*a, *b), "{kind:?} r4: {a} vs {b}");
        }
    }
}

/// On aarch64 the NEON path equals the scalar reference bit for bit.
#[cfg(target_arch = "aarch64")]
#[test]
fn neon_matches_the_scalar_reference() {
    let k = 256;
    for dtype in [GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q8_0] {
        let kind = Kind::of(dtype).unwrap();
        let w = Tensor::from_vec(random(k, 17), (1, k), &Device::Cpu).unwrap();
        let data = QTensor::quantize(&w, dtype).unwrap().data().unwrap().into_owned();
        let mut xq = vec![ZERO_BLOCK; k / QK];
        quantize_row(&random(k, 18), &mut xq, kind == Kind::Q4_1);
        assert_eq!(dot_portable(kind, &data, &xq).to_bits(), dot_scalar(kind, &data, &xq).to_bits(), "{kind:?}");
    }
}

#[test]
fn avx2_and_scalar_paths_agree() {
    let k = 256;
    for (dtype, kind) in [(GgmlDType::Q4_1, Kind::Q4_1), (GgmlDType::Q5_0, Kind::Q5_0), (GgmlDType::Q8_0, Kind::Q8_0)] {
        let w = Tensor::from_vec(random(4 * k, 11), (4, k), &Device::Cpu).unwrap();
        let data = QTensor::quantize(&w, dtype).unwrap().data().unwrap().into_owned();
        let rb = data.len() / 4;
        let rows: [&[u8]; 4] = std::array::from_fn(|i| &data[i * rb..(i + 1) * rb]);
        let xs: Vec<Vec<BlockQ8>> = (0..4)
            .map(|i| {
                let mut b = vec![ZERO_BLOCK; k / QK];
                quantize_row(&random(k, 20 + i), &mut b, kind == Kind::Q4_1);
                b
            })
            .collect();
        let refs: [&[BlockQ8]; 4] = std::array::from_fn(|i| xs[i].as_slice());
        let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * b.abs().max(1.0);
        let mut scales4 = vec![ZERO_SCALES4; k / QK];
        BlockQ8::fill_scales4(&refs, &mut scales4);
        let quad = Quad { rows: refs, d: &scales4 };
        let fast = dot_x4(kind, rows[1], &quad, has_avx2_fma());
        let slow = dot_x4(kind, rows[1], &quad, false);
        for (a, b) in fast.iter().zip(&slow) {
            assert!(close(*a, *b), "{kind:?} x4: {a} vs {b}");
        }
        let fast = dot_r4(kind, &rows, refs[2], has_avx2_fma());
        let slow = dot_r4(kind, &rows, refs[2], false);
        for (a, b) in fast.iter().zip(&slow) {
            assert!(close(*a, *b), "{kind:?} r4: {a} vs {b}");
        }
    }
}

/// Prefill throughput of every kernel on Llama-3.2-1B's layer shapes at
/// 128 tokens, a measurement and not a check: `RAYON_NUM_THREADS=1
/// cargo test -p tresor-llm --lib qmatmul_speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn qmatmul_speed() {
    let m = 128;
    let shapes = [(2048, 2048), (512, 2048), (8192, 2048), (2048, 8192)];
    for (dtype, kind) in [(GgmlDType::Q8_0, Kind::Q8_0), (GgmlDType::Q5_0, Kind::Q5_0), (GgmlDType::Q4_1, Kind::Q4_1), (GgmlDType::Q4K, Kind::Q4K), (GgmlDType::Q6K, Kind::Q6K)] {
        let (mut total, mut macs) = (0f64, 0f64);
        for (n, k) in shapes {
            let w = Tensor::from_vec(random(n * k, 5), (n, k), &Device::Cpu).unwrap();
            let data = QTensor::quantize(&w, dtype).unwrap().data().unwrap().into_owned();
            let x = random(m * k, 6);
            let mut out = vec![0f32; m * n];
            matmul(kind, &data, n, k, &x, m, &mut out);
            // best of 7: the machine's other load only ever slows a run
            let mut best = f64::MAX;
            for _ in 0..7 {
                let t = std::time::Instant::now();
                matmul(kind, &data, n, k, &x, m, &mut out);
                best = best.min(t.elapsed().as_secs_f64());
            }
            total += best;
            macs += (m * n * k) as f64;
        }
        eprintln!("{kind:?}, Llama-1B's four layer shapes at m={m}: {:.1} ms, {:.1} GMAC/s", total * 1e3, macs / total / 1e9);
    }
}

#[test]
fn other_quantizations_stay_with_candle() {
    let w = Tensor::from_vec(random(8 * 256, 5), (8, 256), &Device::Cpu).unwrap();
    let q = QTensor::quantize(&w, GgmlDType::Q5K).unwrap();
    let reference = QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q5K).unwrap()).unwrap();
    let l = QLinear::from_qtensor(q).unwrap();
    assert!(matches!(l, QLinear::Candle(_)));
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
