//! Int8 matrix product for the embedder's linear layers:
//! `out (m×n, f32) = dequant(A_q (m×k) · W_q^T (k×n)) + bias`.
//!
//! Weights are quantized once at load, symmetric per output row
//! (`scale = max|w| / 127`); activations are quantized per call, symmetric
//! per row (per token) and shifted by +128 to unsigned bytes, because the
//! x86 int8 dot instruction (`vpdpbusd`, AVX-512 VNNI) multiplies unsigned by
//! signed bytes. The shift is removed exactly with each weight row's sum, so
//! the integer result is the signed product.
//!
//! Kernels, chosen at run time: AVX-512 VNNI (8 rows × 32 outputs per tile,
//! weights packed so one 64-byte load feeds 16 outputs × 4 k) and a portable
//! scalar kernel with the identical integer result (any CPU, and the tests'
//! reference). Rows are split over rayon's pool.
//!
//! Owns the integer arithmetic only; never decides which layers run in int8
//! (that is `bert`) and never allocates per call beyond the caller's buffers.

use rayon::prelude::*;

/// Outputs per packed weight block (one 512-bit register of i32).
const NB: usize = 16;
/// Rows per micro-tile.
const MR: usize = 8;
/// Outputs per micro-tile (two blocks).
const NR: usize = 2 * NB;
/// Rows per rayon task.
const MC: usize = 64;

/// Whether this CPU runs the fast int8 kernel (the embedder uses int8 by
/// default only then).
pub fn fast_kernel_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A weight matrix (n rows of k) in int8, packed for the kernels.
pub struct QWeight {
    /// Real outputs.
    pub n: usize,
    /// Real inputs.
    pub k: usize,
    /// k rounded up to 4 (one vpdpbusd lane).
    kp: usize,
    /// n rounded up to NR.
    np: usize,
    /// [np/NB][kp/4][NB][4] bytes.
    packed: Vec<i8>,
    /// Per output: max|w| / 127 (0 for padding rows).
    scale: Vec<f32>,
    /// Per output: 128 · Σ_k w_q (removes the +128 activation shift).
    shift: Vec<i32>,
}

impl QWeight {
    /// `w` is row-major (n × k), as stored by PyTorch's Linear.
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k);
        let kp = k.div_ceil(4) * 4;
        let np = n.div_ceil(NR) * NR;
        let mut packed = vec![0i8; np * kp];
        let mut scale = vec![0f32; np];
        let mut shift = vec![0i32; np];
        for r in 0..n {
            let row = &w[r * k..(r + 1) * k];
            let amax = row.iter().fold(0f32, |m, x| m.max(x.abs()));
            let s = if amax > 0.0 { amax / 127.0 } else { 0.0 };
            let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
            scale[r] = s;
            let (blk, lane) = (r / NB, r % NB);
            let mut sum = 0i32;
            for (c, &x) in row.iter().enumerate() {
                let q = (x * inv).round_ties_even().clamp(-127.0, 127.0) as i8;
                sum += q as i32;
                packed[blk * (kp / 4) * NB * 4 + (c / 4) * NB * 4 + lane * 4 + c % 4] = q;
            }
            shift[r] = 128 * sum;
        }
        QWeight { n, k, kp, np, packed, scale, shift }
    }

    /// Row stride of the quantized activations this weight expects.
    pub fn a_stride(&self) -> usize {
        self.kp
    }

    /// The dequantized weight (tests and error bounds).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut w = vec![0f32; self.n * self.k];
        for r in 0..self.n {
            for c in 0..self.k {
                w[r * self.k + c] = self.q(r, c) as f32 * self.scale[r];
            }
        }
        w
    }

    fn q(&self, r: usize, c: usize) -> i8 {
        self.packed[(r / NB) * (self.kp / 4) * NB * 4 + (c / 4) * NB * 4 + (r % NB) * 4 + c % 4]
    }
}

/// Activations (m × k, row-major f32) quantized per row into `a_q`
/// (m_pad × kp bytes, +128 shifted; rows past m and columns past k hold 128,
/// i.e. zero) with their scales in `a_scale` (m_pad).
#[derive(Default)]
pub struct QActs {
    pub m: usize,
    kp: usize,
    a_q: Vec<u8>,
    a_scale: Vec<f32>,
}


impl QActs {
    /// Quantizes `x` (m × k) for a weight with `kp = w.a_stride()`; reuses
    /// this buffer's memory.
    /// `col_mul` (k), when given, multiplies each column first (the
    /// inverse of a per-channel smoothing folded into the weights).
    pub fn quantize(&mut self, x: &[f32], m: usize, k: usize, kp: usize, col_mul: Option<&[f32]>) {
        assert_eq!(x.len(), m * k);
        assert!(kp >= k);
        let m_pad = m.div_ceil(MR) * MR;
        self.m = m;
        self.kp = kp;
        self.a_q.resize(m_pad * kp, 128);
        self.a_scale.resize(m_pad, 0.0);
        self.a_q[m * kp..].fill(128);
        self.a_scale[m..].fill(0.0);
        self.a_q[..m * kp]
            .par_chunks_mut(kp * MC)
            .zip(self.a_scale[..m].par_chunks_mut(MC))
            .enumerate()
            .for_each(|(ci, (q, s))| {
                for (r, (qrow, sr)) in q.chunks_mut(kp).zip(s.iter_mut()).enumerate() {
                    let row = &x[(ci * MC + r) * k..(ci * MC + r + 1) * k];
                    *sr = match col_mul {
                        None => quantize_row(row, qrow),
                        Some(cm) => {
                            let mut tmp = [0f32; 4096];
                            let mut buf;
                            let scaled: &mut [f32] = if k <= tmp.len() {
                                &mut tmp[..k]
                            } else {
                                buf = vec![0f32; k];
                                &mut buf
                            };
                            for ((t, &v), &c) in scaled.iter_mut().zip(row).zip(cm) {
                                *t = v * c;
                            }
                            quantize_row(scaled, qrow)
                        }
                    };
                }
            });
    }
}

/// One row: returns the scale; writes k shifted bytes and 128 in the padding.
fn quantize_row(row: &[f32], out: &mut [u8]) -> f32 {
    let amax = row.iter().fold(0f32, |m, x| m.max(x.abs()));
    let s = if amax > 0.0 { amax / 127.0 } else { 0.0 };
    let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
    let (head, pad) = out.split_at_mut(row.len());
    for (o, &x) in head.iter_mut().zip(row) {
        *o = ((x * inv).round_ties_even() + 128.0) as u8;
    }
    pad.fill(128);
    s
}

/// `out` (m × w.n, row-major) = A · Wᵀ + bias.
pub fn matmul(a: &QActs, w: &QWeight, bias: Option<&[f32]>, out: &mut [f32]) {
    assert_eq!(a.kp, w.kp, "activations quantized for another k");
    assert_eq!(out.len(), a.m * w.n);
    if let Some(b) = bias {
        assert_eq!(b.len(), w.n);
    }
    let fast = fast_kernel_available();
    let n = w.n;
    out.par_chunks_mut(MC * n).enumerate().for_each(|(ci, out)| {
        let r0 = ci * MC;
        let rows = out.len() / n;
        let mut tile = [[0i32; NR]; MR];
        for nb in (0..w.np).step_by(NR) {
            for t in (0..rows).step_by(MR) {
                let a_tile = &a.a_q[(r0 + t) * a.kp..(r0 + t + MR) * a.kp];
                let w_tile = &w.packed[nb * w.kp..(nb + NR) * w.kp];
                if fast {
                    #[cfg(target_arch = "x86_64")]
                    // Safety: the CPU has the features (checked above); the
                    // slices hold MR rows of kp bytes and NR outputs of kp.
                    unsafe {
                        tile_vnni(a_tile, w_tile, a.kp, &mut tile)
                    };
                } else {
                    tile_scalar(a_tile, w_tile, a.kp, &mut tile);
                }
                for (i, acc) in tile.iter().enumerate().take((rows - t).min(MR)) {
                    let sa = a.a_scale[r0 + t + i];
                    let orow = &mut out[(t + i) * n..(t + i + 1) * n];
                    for (j, &acc) in acc.iter().enumerate().take(n.saturating_sub(nb)) {
                        let c = nb + j;
                        let v = (acc - w.shift[c]) as f32 * (sa * w.scale[c]);
                        orow[c] = v + bias.map_or(0.0, |b| b[c]);
                    }
                }
            }
        }
    });
}

/// Integer tile: `tile[i][j] = Σ_k a[i][k] · w[j][k]` (shifted activations).
fn tile_scalar(a: &[u8], w: &[i8], kp: usize, tile: &mut [[i32; NR]; MR]) {
    for (i, row) in tile.iter_mut().enumerate() {
        let ar = &a[i * kp..(i + 1) * kp];
        for (j, acc) in row.iter_mut().enumerate() {
            let blk = &w[(j / NB) * kp * NB..(j / NB + 1) * kp * NB];
            let lane = j % NB;
            let mut s = 0i32;
            for k4 in 0..kp / 4 {
                let wq = &blk[k4 * NB * 4 + lane * 4..k4 * NB * 4 + lane * 4 + 4];
                for d in 0..4 {
                    s += ar[k4 * 4 + d] as i32 * wq[d] as i32;
                }
            }
            *acc = s;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile_vnni(a: &[u8], w: &[i8], kp: usize, tile: &mut [[i32; NR]; MR]) {
    use std::arch::x86_64::*;
    debug_assert!(a.len() >= MR * kp && w.len() >= NR * kp);
    let ap = a.as_ptr();
    let w0 = w.as_ptr();
    let w1 = w0.add(kp * NB);
    let mut acc = [[_mm512_setzero_si512(); 2]; MR];
    for k4 in 0..kp / 4 {
        let b0 = _mm512_loadu_si512(w0.add(k4 * 64) as *const _);
        let b1 = _mm512_loadu_si512(w1.add(k4 * 64) as *const _);
        for (i, acc) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_epi32((ap.add(i * kp + k4 * 4) as *const i32).read_unaligned());
            acc[0] = _mm512_dpbusd_epi32(acc[0], x, b0);
            acc[1] = _mm512_dpbusd_epi32(acc[1], x, b1);
        }
    }
    for (t, acc) in tile.iter_mut().zip(&acc) {
        _mm512_storeu_si512(t.as_mut_ptr() as *mut _, acc[0]);
        _mm512_storeu_si512(t.as_mut_ptr().add(NB) as *mut _, acc[1]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rnd(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
            })
            .collect()
    }

    /// The exact result of the quantized operands, in f64.
    fn reference(x: &[f32], m: usize, k: usize, w: &QWeight, bias: &[f32]) -> Vec<f32> {
        let wd = w.dequantize();
        let mut out = vec![0f32; m * w.n];
        for r in 0..m {
            let row = &x[r * k..(r + 1) * k];
            let mut q = vec![0u8; w.kp];
            let s = quantize_row(row, &mut q);
            for c in 0..w.n {
                let dot: f64 = (0..k).map(|i| (q[i] as f64 - 128.0) * s as f64 * wd[c * k + i] as f64).sum();
                out[r * w.n + c] = dot as f32 + bias[c];
            }
        }
        out
    }

    fn check(m: usize, n: usize, k: usize, kernel_fast: bool) {
        let x = rnd(m * k, 1 + m as u64, 2.0);
        let wf = rnd(n * k, 7 + n as u64, 0.1);
        let bias = rnd(n, 3, 0.5);
        let w = QWeight::quantize(&wf, n, k);
        let mut a = QActs::default();
        a.quantize(&x, m, k, w.a_stride(), None);
        let mut out = vec![f32::NAN; m * n];
        if kernel_fast {
            matmul(&a, &w, Some(&bias), &mut out);
        } else {
            // The scalar kernel directly, whatever this CPU has.
            let mut tile = [[0i32; NR]; MR];
            for t in (0..m).step_by(MR) {
                for nb in (0..w.np).step_by(NR) {
                    tile_scalar(&a.a_q[t * a.kp..(t + MR) * a.kp], &w.packed[nb * w.kp..(nb + NR) * w.kp], a.kp, &mut tile);
                    for (i, acc) in tile.iter().enumerate().take(m - t) {
                        for (j, &acc) in acc.iter().enumerate().take(n.saturating_sub(nb)) {
                            let c = nb + j;
                            out[(t + i) * n + c] = (acc - w.shift[c]) as f32 * a.a_scale[t + i] * w.scale[c] + bias[c];
                        }
                    }
                }
            }
        }
        let want = reference(&x, m, k, &w, &bias);
        let worst = out.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-3, "m={m} n={n} k={k}: max abs error {worst}");
        // And close to the f32 product (int8 rounding only).
        let mut exact_err = 0f32;
        let mut mag = 0f32;
        for r in 0..m {
            for c in 0..n {
                let d: f32 = (0..k).map(|i| x[r * k + i] * wf[c * k + i]).sum::<f32>() + bias[c];
                exact_err = exact_err.max((d - out[r * n + c]).abs());
                mag = mag.max(d.abs());
            }
        }
        assert!(exact_err < 0.05 * mag.max(1.0), "int8 error {exact_err} vs magnitude {mag}");
    }

    #[test]
    fn scalar_kernel_matches_the_quantized_reference() {
        for (m, n, k) in [(1, 1, 1), (9, 33, 13), (17, 64, 384), (8, 32, 4)] {
            check(m, n, k, false);
        }
    }

    #[test]
    fn dispatched_kernel_matches_the_quantized_reference() {
        eprintln!("fast int8 kernel available: {}", fast_kernel_available());
        for (m, n, k) in [(1, 1, 1), (3, 17, 7), (70, 96, 384), (130, 40, 1536), (8, 32, 4)] {
            check(m, n, k, true);
        }
    }

    #[test]
    fn zero_rows_and_weights_give_the_bias() {
        let w = QWeight::quantize(&[0.0; 8], 2, 4);
        let mut a = QActs::default();
        a.quantize(&[0.0; 4], 1, 4, w.a_stride(), None);
        let mut out = vec![9.0; 2];
        matmul(&a, &w, Some(&[1.5, -2.0]), &mut out);
        assert_eq!(out, vec![1.5, -2.0]);
    }
}
