//! Quantized matrix multiplication for the CPU paths candle leaves slow.
//!
//! candle 0.11 multiplies Q4_1 weights with a scalar (generic) dot product,
//! one weight row per activation row: on SmolLM2-135M-Instruct Q4_1 that is
//! where most of prefill and decode time went. [`QLinear`] replaces candle's
//! `QMatMul` for those weights with an AVX2/FMA kernel (runtime dispatch,
//! scalar fallback elsewhere):
//! - activations are quantized once per call to Q8_1 blocks (f32 scale and
//!   scaled sum, 32 int8 values), exactly the representation llama.cpp and
//!   candle use for Q4_1 dot products;
//! - each weight block's nibbles are expanded once and multiplied with up
//!   to four activation rows (register tile 1 × 4);
//! - work is tiled over (weight rows × activation rows) so that one tile of
//!   quantized activations and weights stays in L2, and the tiles are spread
//!   over rayon's pool (every thread busy, no per-row task).
//!
//! Every other quantization (and every non-CPU device) goes to candle's
//! `QMatMul` unchanged. `TRESOR_QMATMUL=candle` forces candle everywhere,
//! for A/B measurements. Owns the arithmetic of `x · Wᵀ` only; never loads
//! files or knows about layers.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Module, Result, Shape, Tensor};
use half::f16;
use rayon::prelude::*;

/// Values per quantization block (Q4_1 and Q8_1).
const QK: usize = 32;
/// Bytes of one GGUF Q4_1 block: f16 d, f16 m, 16 bytes of nibbles.
const Q4_1_BYTES: usize = 20;
/// Weight rows and activation rows per work item.
const TILE_ROWS: usize = 32;
const TILE_TOKENS: usize = 64;

/// A linear layer without bias over quantized weights `(n, k)`: `x · Wᵀ`.
pub enum QLinear {
    /// Q4_1 on the CPU through Tresor's kernel.
    Q4_1(Arc<Q4_1Weights>),
    /// Everything else through candle.
    Candle(QMatMul),
}

impl QLinear {
    pub fn from_qtensor(t: QTensor) -> Result<Self> {
        Self::from_arc(Arc::new(t))
    }

    pub fn from_arc(t: Arc<QTensor>) -> Result<Self> {
        if t.device().is_cpu() && t.dtype() == GgmlDType::Q4_1 && !forced_candle() {
            if let Ok((n, k)) = t.shape().dims2() {
                if k % QK == 0 {
                    let data = t.data()?.into_owned();
                    return Ok(QLinear::Q4_1(Arc::new(Q4_1Weights { data, n, k })));
                }
            }
        }
        Ok(QLinear::Candle(QMatMul::from_arc(t)?))
    }
}

impl Module for QLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            QLinear::Candle(m) => m.forward(x),
            QLinear::Q4_1(w) => x.contiguous()?.apply_op1_no_bwd(&Q4_1Op(w.clone())),
        }
    }
}

fn forced_candle() -> bool {
    std::env::var("TRESOR_QMATMUL").map(|v| v.eq_ignore_ascii_case("candle")).unwrap_or(false)
}

/// Q4_1 weights in GGUF's own block layout, `n` rows of `k` values.
pub struct Q4_1Weights {
    data: Vec<u8>,
    n: usize,
    k: usize,
}

impl Q4_1Weights {
    fn row(&self, j: usize) -> &[u8] {
        let rb = self.k / QK * Q4_1_BYTES;
        &self.data[j * rb..(j + 1) * rb]
    }
}

/// One quantized activation block: `x ≈ d · qs`, `s = d · Σ qs`.
#[derive(Clone, Copy)]
#[repr(C)]
struct BlockQ8_1 {
    d: f32,
    s: f32,
    qs: [i8; QK],
}

struct Q4_1Op(Arc<Q4_1Weights>);

impl CustomOp1 for Q4_1Op {
    fn name(&self) -> &'static str {
        "tresor-q4_1-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let w = &self.0;
        let x = match storage {
            CpuStorage::F32(v) => v,
            other => candle_core::bail!("q4_1 matmul: f32 activations expected, got {:?}", other.dtype()),
        };
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("q4_1 matmul: activations must be contiguous".into()))?;
        let x = &x[start..end];
        let dims = layout.shape().dims();
        let k = *dims.last().unwrap_or(&0);
        if k != w.k {
            candle_core::bail!("q4_1 matmul: activations have {k} columns, weights {}", w.k);
        }
        let m = x.len() / k;
        let mut out = vec![0f32; m * w.n];
        matmul_q4_1(w, x, m, &mut out);
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("k checked above") = w.n;
        Ok((CpuStorage::F32(out), Shape::from(out_dims)))
    }
}

/// `out (m, n) = x (m, k) · Wᵀ`.
fn matmul_q4_1(w: &Q4_1Weights, x: &[f32], m: usize, out: &mut [f32]) {
    let (n, k) = (w.n, w.k);
    let nb = k / QK;
    let mut xq = vec![BlockQ8_1 { d: 0.0, s: 0.0, qs: [0; QK] }; m * nb];
    xq.par_chunks_mut(nb).zip(x.par_chunks(k)).for_each(|(dst, src)| quantize_row_q8_1(src, dst));

    let row_tiles = n.div_ceil(TILE_ROWS);
    let token_tiles = m.div_ceil(TILE_TOKENS);
    let out_ptr = SendPtr(out.as_mut_ptr());
    let avx2 = has_avx2_fma();
    (0..row_tiles * token_tiles).into_par_iter().for_each(|item| {
        let out_ptr = &out_ptr;
        let (rt, tt) = (item % row_tiles, item / row_tiles);
        let rows = rt * TILE_ROWS..n.min((rt + 1) * TILE_ROWS);
        let t_end = m.min((tt + 1) * TILE_TOKENS);
        let mut t = tt * TILE_TOKENS;
        while t < t_end {
            let count = (t_end - t).min(4);
            let xs: [&[BlockQ8_1]; 4] = std::array::from_fn(|i| {
                let r = t + i.min(count - 1);
                &xq[r * nb..(r + 1) * nb]
            });
            for j in rows.clone() {
                let dots = if count == 1 { [dot_q4_1_x1(w.row(j), xs[0], avx2), 0.0, 0.0, 0.0] } else { dot_q4_1_x4(w.row(j), &xs, avx2) };
                for (i, d) in dots.iter().take(count).enumerate() {
                    // SAFETY: each (token, row) cell belongs to exactly one work item.
                    unsafe { *out_ptr.0.add((t + i) * n + j) = *d };
                }
            }
            t += count;
        }
    });
}

struct SendPtr(*mut f32);
unsafe impl Sync for SendPtr {}
unsafe impl Send for SendPtr {}

fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// ggml's `quantize_row_q8_1`: per block, `d = max|x| / 127`, round to nearest.
fn quantize_row_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
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
        dst.s = f16::from_f32(d * sum as f32).to_f32();
    }
}

/// Dot products of one Q4_1 weight row with four Q8_1 activation rows.
fn dot_q4_1_x4(w: &[u8], xs: &[&[BlockQ8_1]; 4], avx2: bool) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2 and FMA were detected at run time.
        return unsafe { avx2::dot_q4_1_x4(w, xs) };
    }
    let _ = avx2;
    std::array::from_fn(|i| dot_q4_1_scalar(w, xs[i]))
}

/// Dot product of one Q4_1 weight row with one Q8_1 activation row (decode).
fn dot_q4_1_x1(w: &[u8], x: &[BlockQ8_1], avx2: bool) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2 and FMA were detected at run time.
        return unsafe { avx2::dot_q4_1_x1(w, x) };
    }
    let _ = avx2;
    dot_q4_1_scalar(w, x)
}

/// The reference: ggml's `vec_dot_q4_1_q8_1` in plain Rust.
fn dot_q4_1_scalar(w: &[u8], x: &[BlockQ8_1]) -> f32 {
    let mut sum = 0f32;
    for (blk, xb) in w.chunks_exact(Q4_1_BYTES).zip(x) {
        let d = f16::from_le_bytes([blk[0], blk[1]]).to_f32();
        let m = f16::from_le_bytes([blk[2], blk[3]]).to_f32();
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let q = blk[4 + j];
            sumi += (q & 0x0F) as i32 * xb.qs[j] as i32 + (q >> 4) as i32 * xb.qs[j + QK / 2] as i32;
        }
        sum += d * xb.d * sumi as f32 + m * xb.s;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BlockQ8_1, Q4_1_BYTES};
    use half::f16;
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// One Q4_1 block: its scale, its minimum and the 32 nibbles as bytes
    /// (elements 0..16 from the low nibbles, 16..32 from the high ones).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn unpack_q4_1(blk: *const u8, low: __m128i) -> (f32, f32, __m256i) {
        let d = f16::from_bits(u16::from_le_bytes([*blk, *blk.add(1)])).to_f32();
        let m = f16::from_bits(u16::from_le_bytes([*blk.add(2), *blk.add(3)])).to_f32();
        let packed = _mm_loadu_si128(blk.add(4) as *const __m128i);
        let lo = _mm_and_si128(packed, low);
        let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
        (d, m, _mm256_set_m128i(hi, lo))
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_q4_1_x1(w: &[u8], x: &[BlockQ8_1]) -> f32 {
        let nb = w.len() / Q4_1_BYTES;
        debug_assert!(x.len() >= nb);
        let low = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        let mut mins = 0f32;
        let wp = w.as_ptr();
        for b in 0..nb {
            let (d, m, wq) = unpack_q4_1(wp.add(b * Q4_1_BYTES), low);
            let xb = x.get_unchecked(b);
            let xq = _mm256_loadu_si256(xb.qs.as_ptr() as *const __m256i);
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(wq, xq), ones);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * xb.d), _mm256_cvtepi32_ps(p), acc);
            mins += m * xb.s;
        }
        hsum(acc) + mins
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_q4_1_x4(w: &[u8], xs: &[&[BlockQ8_1]; 4]) -> [f32; 4] {
        let nb = w.len() / Q4_1_BYTES;
        debug_assert!(xs.iter().all(|x| x.len() >= nb));
        let low = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut mins = [0f32; 4];
        let wp = w.as_ptr();
        for b in 0..nb {
            let (d, m, wq) = unpack_q4_1(wp.add(b * Q4_1_BYTES), low);
            for i in 0..4 {
                let xb = xs.get_unchecked(i).get_unchecked(b);
                let xq = _mm256_loadu_si256(xb.qs.as_ptr() as *const __m256i);
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(wq, xq), ones);
                acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(d * xb.d), _mm256_cvtepi32_ps(p), acc[i]);
                mins[i] += m * xb.s;
            }
        }
        [hsum(acc[0]) + mins[0], hsum(acc[1]) + mins[1], hsum(acc[2]) + mins[2], hsum(acc[3]) + mins[3]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    /// Tresor's kernel against candle's reference QMatMul on the same Q4_1
    /// weights, for decode (m = 1), a ragged prefill and a tile-crossing one.
    /// candle multiplies prefill batches with dequantized f32 weights, so the
    /// reference is candle's one-row path (Q8_1 activations, as ours), row
    /// by row. candle rounds the activation block sum to f16 *before*
    /// scaling (`s = f16(Σq)·d`, ggml: `s = f16(Σq·d)`), so the bound against
    /// candle is 1e-3 of the output scale; against the scalar port of ggml's
    /// `vec_dot_q4_1_q8_1` (same Q8_1 blocks) it is 1e-5.
    #[test]
    fn q4_1_matches_candle() {
        let dev = Device::Cpu;
        for &(m, k, n) in &[(1, 64, 7), (5, 576, 192), (70, 1536, 33), (3, 64, 1)] {
            let w = Tensor::from_vec(random(n * k, 7 + k as u64), (n, k), &dev).unwrap();
            let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
            let reference = QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q4_1).unwrap()).unwrap();
            let ours = QLinear::from_qtensor(q).unwrap();
            assert!(matches!(ours, QLinear::Q4_1(_)));
            let x = Tensor::from_vec(random(m * k, 3 + m as u64), (1, m, k), &dev).unwrap();
            let a = ours.forward(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(a.len(), m * n);
            for i in 0..m {
                let row = x.narrow(1, i, 1).unwrap();
                let b = reference.forward(&row).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let scale = b.iter().fold(0f32, |s, v| s.max(v.abs())).max(1.0);
                let ours_row = &a[i * n..(i + 1) * n];
                let max_err = ours_row.iter().zip(&b).fold(0f32, |e, (x, y)| e.max((x - y).abs()));
                assert!(max_err <= 1e-3 * scale, "({m},{k},{n}) row {i}: max abs error {max_err} vs candle (scale {scale})");
                let xr = row.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let mut xq = vec![BlockQ8_1 { d: 0.0, s: 0.0, qs: [0; QK] }; k / QK];
                quantize_row_q8_1(&xr, &mut xq);
                let QLinear::Q4_1(wq) = &ours else { unreachable!() };
                for (j, v) in ours_row.iter().enumerate() {
                    let exact = dot_q4_1_scalar(wq.row(j), &xq);
                    assert!((v - exact).abs() <= 1e-5 * scale, "({m},{k},{n}) [{i},{j}]: {v} vs ggml reference {exact}");
                }
            }
        }
    }

    #[test]
    fn avx2_and_scalar_paths_agree() {
        let k = 256;
        let w = Tensor::from_vec(random(k, 11), (1, k), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).unwrap();
        let data = q.data().unwrap().into_owned();
        let xs: Vec<Vec<BlockQ8_1>> = (0..4)
            .map(|i| {
                let mut b = vec![BlockQ8_1 { d: 0.0, s: 0.0, qs: [0; QK] }; k / QK];
                quantize_row_q8_1(&random(k, 20 + i), &mut b);
                b
            })
            .collect();
        let refs: [&[BlockQ8_1]; 4] = std::array::from_fn(|i| xs[i].as_slice());
        let fast = dot_q4_1_x4(&data, &refs, has_avx2_fma());
        let slow = dot_q4_1_x4(&data, &refs, false);
        let one = dot_q4_1_x1(&data, refs[2], has_avx2_fma());
        assert!((one - slow[2]).abs() <= 1e-4 * slow[2].abs().max(1.0), "{one} vs {}", slow[2]);
        for (a, b) in fast.iter().zip(&slow) {
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn other_quantizations_stay_with_candle() {
        let w = Tensor::zeros((4, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        assert!(matches!(QLinear::from_qtensor(q).unwrap(), QLinear::Candle(_)));
    }

    #[test]
    fn wrong_width_is_an_error() {
        let w = Tensor::zeros((4, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
        let l = QLinear::from_qtensor(QTensor::quantize(&w, GgmlDType::Q4_1).unwrap()).unwrap();
        let x = Tensor::zeros((1, 32), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(l.forward(&x).is_err());
    }
}
