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
//! Kernels, chosen at run time ([`Kernel::detect`]), all with the identical
//! integer result:
//! - AVX-512 VNNI: 8 rows × 32 outputs per tile, weights packed so one
//!   64-byte load feeds 16 outputs × 4 k (`vpdpbusd`);
//! - AVX2: 4 rows × 16 outputs per register tile from the same packing (one
//!   32-byte load = 8 outputs × 4 k). `vpmaddubsw` would saturate on
//!   u8 × i8, so its activations are stored unshifted (i8 in [-127, 127])
//!   and the sign moved onto them: `maddubs(|w|, sign(a, w))` has pair sums
//!   ≤ 2·127·127 = 32258 (exact in i16), `vpmaddwd` with ones widens to i32.
//!   The result is the unshifted product already (no `shift` correction);
//! - a portable scalar kernel (any CPU, and the tests' reference).
//!
//! Rows are split over rayon's pool.
//!
//! Owns the integer arithmetic only; never decides which layers run in int8
//! (that is `bert`) and never allocates per call beyond the caller's buffers.

use crate::qmatmul::CpuTier;
use rayon::prelude::*;

/// Outputs per packed weight block (one 512-bit register of i32).
const NB: usize = 16;
/// Rows per micro-tile.
const MR: usize = 8;
/// Outputs per micro-tile (two blocks).
const NR: usize = 2 * NB;
/// Rows per rayon task.
const MC: usize = 64;

/// The int8 kernel this CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// AVX-512 F/BW/VNNI (`vpdpbusd`).
    Vnni,
    /// AVX2 (`vpmaddubsw` + `vpmaddwd`, sign trick).
    Avx2,
    /// Portable integer loops.
    Scalar,
}

impl Kernel {
    /// The kernel of the active CPU tier ([`CpuTier::active`], so
    /// `TRESOR_CPU_TIER` forces it as it forces the quantized matmul's):
    /// AVX512-VNNI → VNNI, AVX-VNNI or AVX2 → AVX2 (this GEMM's VNNI kernel
    /// is 512-bit), else scalar (also on `neon` and `neondot`: this GEMM has
    /// no NEON kernel yet).
    pub fn detect() -> Kernel {
        Self::for_tier(CpuTier::active())
    }

    /// The kernel a CPU tier runs.
    pub fn for_tier(tier: CpuTier) -> Kernel {
        match tier {
            CpuTier::Avx512Vnni => Kernel::Vnni,
            CpuTier::AvxVnni | CpuTier::Avx2 => Kernel::Avx2,
            CpuTier::NeonDot | CpuTier::Neon | CpuTier::Scalar => Kernel::Scalar,
        }
    }

    /// Whether this kernel runs on this CPU.
    pub fn available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            Kernel::Avx2 => CpuTier::Avx2.supported(),
            Kernel::Vnni => CpuTier::Avx512Vnni.supported(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kernel::Vnni => "avx512-vnni",
            Kernel::Avx2 => "avx2",
            Kernel::Scalar => "scalar",
        }
    }
}

/// Whether this CPU runs a fast (SIMD) int8 kernel, AVX-512 VNNI or AVX2
/// (the embedder uses int8 by default only then).
pub fn fast_kernel_available() -> bool {
    Kernel::detect() != Kernel::Scalar
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
/// (m_pad × kp bytes; rows past m and columns past k hold zero) with their
/// scales in `a_scale` (m_pad). The bytes are in the layout of the kernel
/// they were quantized for: +128 shifted u8 in [1, 255] (zero = 128) for
/// VNNI and scalar, plain i8 in [-127, 127] (zero = 0) for AVX2, which
/// saves that kernel an XOR and lets it broadcast straight from memory.
#[derive(Default)]
pub struct QActs {
    pub m: usize,
    kp: usize,
    a_q: Vec<u8>,
    a_scale: Vec<f32>,
    /// i8 layout (AVX2) rather than +128 shifted.
    signed: bool,
}


impl QActs {
    /// Quantizes `x` (m × k) for a weight with `kp = w.a_stride()`; reuses
    /// this buffer's memory.
    /// `col_mul` (k), when given, multiplies each column first (the
    /// inverse of a per-channel smoothing folded into the weights).
    pub fn quantize(&mut self, x: &[f32], m: usize, k: usize, kp: usize, col_mul: Option<&[f32]>) {
        self.quantize_for(Kernel::detect(), x, m, k, kp, col_mul)
    }

    /// [`QActs::quantize`] in `kernel`'s layout (for [`matmul_with`]).
    pub fn quantize_for(&mut self, kernel: Kernel, x: &[f32], m: usize, k: usize, kp: usize, col_mul: Option<&[f32]>) {
        assert_eq!(x.len(), m * k);
        assert!(kp >= k);
        let m_pad = m.div_ceil(MR) * MR;
        let signed = kernel == Kernel::Avx2;
        let zero = if signed { 0 } else { 128 };
        self.m = m;
        self.kp = kp;
        self.signed = signed;
        self.a_q.resize(m_pad * kp, zero);
        self.a_scale.resize(m_pad, 0.0);
        self.a_q[m * kp..].fill(zero);
        self.a_scale[m..].fill(0.0);
        self.a_q[..m * kp]
            .par_chunks_mut(kp * MC)
            .zip(self.a_scale[..m].par_chunks_mut(MC))
            .enumerate()
            .for_each(|(ci, (q, s))| {
                for (r, (qrow, sr)) in q.chunks_mut(kp).zip(s.iter_mut()).enumerate() {
                    let row = &x[(ci * MC + r) * k..(ci * MC + r + 1) * k];
                    *sr = match col_mul {
                        None => quantize_row(row, qrow, signed),
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
                            quantize_row(scaled, qrow, signed)
                        }
                    };
                }
            });
    }
}

#[cfg(test)]
impl QActs {
    /// The signed value of row r, column c.
    fn value(&self, r: usize, c: usize) -> i32 {
        let b = self.a_q[r * self.kp + c];
        if self.signed { b as i8 as i32 } else { b as i32 - 128 }
    }
}

/// One row: returns the scale; writes k bytes (q + 128 as u8, or q as i8
/// when `signed`, q ∈ [-127, 127]) and zero (128 or 0) in the padding.
fn quantize_row(row: &[f32], out: &mut [u8], signed: bool) -> f32 {
    let amax = row.iter().fold(0f32, |m, x| m.max(x.abs()));
    let s = if amax > 0.0 { amax / 127.0 } else { 0.0 };
    let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
    let off = if signed { 0.0 } else { 128.0 };
    let (head, pad) = out.split_at_mut(row.len());
    for (o, &x) in head.iter_mut().zip(row) {
        *o = ((x * inv).round_ties_even() + off) as i32 as u8;
    }
    pad.fill(if signed { 0 } else { 128 });
    s
}

/// `out` (m × w.n, row-major) = A · Wᵀ + bias, on this CPU's fastest kernel.
pub fn matmul(a: &QActs, w: &QWeight, bias: Option<&[f32]>, out: &mut [f32]) {
    matmul_with(Kernel::detect(), a, w, bias, out)
}

/// [`matmul`] on a given kernel (panics when this CPU lacks it).
pub fn matmul_with(kernel: Kernel, a: &QActs, w: &QWeight, bias: Option<&[f32]>, out: &mut [f32]) {
    assert_eq!(a.kp, w.kp, "activations quantized for another k");
    assert_eq!(out.len(), a.m * w.n);
    if let Some(b) = bias {
        assert_eq!(b.len(), w.n);
    }
    assert!(kernel.available(), "int8 kernel {} not supported by this CPU", kernel.name());
    assert_eq!(a.signed, kernel == Kernel::Avx2, "activations quantized for another kernel's layout");
    let n = w.n;
    // The AVX2 kernel returns the unshifted product already.
    let shift: &[i32] = if kernel == Kernel::Avx2 { &[] } else { &w.shift };
    out.par_chunks_mut(MC * n).enumerate().for_each(|(ci, out)| {
        let r0 = ci * MC;
        let rows = out.len() / n;
        let mut tile = [[0i32; NR]; MR];
        for nb in (0..w.np).step_by(NR) {
            for t in (0..rows).step_by(MR) {
                let a_tile = &a.a_q[(r0 + t) * a.kp..(r0 + t + MR) * a.kp];
                let w_tile = &w.packed[nb * w.kp..(nb + NR) * w.kp];
                match kernel {
                    #[cfg(target_arch = "x86_64")]
                    // Safety: the CPU has the features (asserted above); the
                    // slices hold MR rows of kp bytes and NR outputs of kp.
                    Kernel::Vnni => unsafe { tile_vnni(a_tile, w_tile, a.kp, &mut tile) },
                    #[cfg(target_arch = "x86_64")]
                    // Safety: as above.
                    Kernel::Avx2 => unsafe { tile_avx2(a_tile, w_tile, a.kp, &mut tile) },
                    _ => tile_scalar(a_tile, w_tile, a.kp, &mut tile),
                }
                let cols = n.saturating_sub(nb).min(NR);
                for (i, acc) in tile.iter().enumerate().take((rows - t).min(MR)) {
                    let sa = a.a_scale[r0 + t + i];
                    let orow = &mut out[(t + i) * n + nb..(t + i) * n + nb + cols];
                    let sc = &w.scale[nb..nb + cols];
                    let sh = shift.get(nb..nb + cols);
                    match (bias, sh) {
                        (Some(b), None) => {
                            for (((o, &acc), &s), &b) in orow.iter_mut().zip(acc).zip(sc).zip(&b[nb..nb + cols]) {
                                *o = acc as f32 * (sa * s) + b;
                            }
                        }
                        _ => {
                            for (j, o) in orow.iter_mut().enumerate() {
                                let acc = tile[i][j] - sh.map_or(0, |s| s[j]);
                                *o = acc as f32 * (sa * sc[j]) + bias.map_or(0.0, |b| b[nb + j]);
                            }
                        }
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

/// Integer tile `tile[i][j] = Σ_k a[i][k] · w[j][k]` for i8 activations
/// (the signed layout, so the product needs no shift correction), 4 rows ×
/// 16 outputs per register tile: 8 i32 accumulators, the two weight vectors
/// and their absolute values, one broadcast activation, a temporary, ones.
///
/// Exact: the activations are in [-127, 127] (quantize_row, padding 0),
/// never -128 (which `vpsignb` could not negate); every `vpmaddubsw` pair
/// sum is ≤ 2·127·127 = 32258 < 32767, so it never saturates.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2(a: &[u8], w: &[i8], kp: usize, tile: &mut [[i32; NR]; MR]) {
    use std::arch::x86_64::*;
    debug_assert!(a.len() >= MR * kp && w.len() >= NR * kp);
    let ones = _mm256_set1_epi16(1);
    for r0 in (0..MR).step_by(4) {
        let ap = a.as_ptr().add(r0 * kp);
        for b in 0..NR / NB {
            let wp = w.as_ptr().add(b * kp * NB);
            let mut acc = [[_mm256_setzero_si256(); 2]; 4];
            for k4 in 0..kp / 4 {
                let w0 = _mm256_loadu_si256(wp.add(k4 * 64) as *const _);
                let w1 = _mm256_loadu_si256(wp.add(k4 * 64 + 32) as *const _);
                let u0 = _mm256_abs_epi8(w0);
                let u1 = _mm256_abs_epi8(w1);
                for (i, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_epi32((ap.add(i * kp + k4 * 4) as *const i32).read_unaligned());
                    let p0 = _mm256_maddubs_epi16(u0, _mm256_sign_epi8(x, w0));
                    acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(p0, ones));
                    let p1 = _mm256_maddubs_epi16(u1, _mm256_sign_epi8(x, w1));
                    acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(p1, ones));
                }
            }
            for (i, acc) in acc.iter().enumerate() {
                let t = tile[r0 + i].as_mut_ptr().add(b * NB);
                _mm256_storeu_si256(t as *mut _, acc[0]);
                _mm256_storeu_si256(t.add(8) as *mut _, acc[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rnd(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut rng = crate::synthetic::XorShift::seeded(seed);
        (0..n).map(|_| (rng.next_f32() - 0.5) * 2.0 * scale).collect()
    }

    /// The exact result of the quantized operands, in f64.
    fn reference(x: &[f32], m: usize, k: usize, w: &QWeight, bias: &[f32]) -> Vec<f32> {
        let wd = w.dequantize();
        let mut out = vec![0f32; m * w.n];
        for r in 0..m {
            let row = &x[r * k..(r + 1) * k];
            let mut q = vec![0u8; w.kp];
            let s = quantize_row(row, &mut q, false);
            for c in 0..w.n {
                let dot: f64 = (0..k).map(|i| (q[i] as f64 - 128.0) * s as f64 * wd[c * k + i] as f64).sum();
                out[r * w.n + c] = dot as f32 + bias[c];
            }
        }
        out
    }

    /// The kernels this CPU runs.
    fn kernels() -> Vec<Kernel> {
        let ks: Vec<Kernel> = [Kernel::Scalar, Kernel::Avx2, Kernel::Vnni].into_iter().filter(|k| k.available()).collect();
        eprintln!("int8 kernels on this CPU: {:?} (dispatch: {:?})", ks, Kernel::detect());
        ks
    }

    fn check(m: usize, n: usize, k: usize, kernel: Kernel) {
        let x = rnd(m * k, 1 + m as u64, 2.0);
        let wf = rnd(n * k, 7 + n as u64, 0.1);
        let bias = rnd(n, 3, 0.5);
        let w = QWeight::quantize(&wf, n, k);
        let mut a = QActs::default();
        a.quantize_for(kernel, &x, m, k, w.a_stride(), None);
        let mut out = vec![f32::NAN; m * n];
        matmul_with(kernel, &a, &w, Some(&bias), &mut out);
        let want = reference(&x, m, k, &w, &bias);
        let worst = out.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(worst < 1e-3, "{kernel:?} m={m} n={n} k={k}: max abs error {worst}");
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
            check(m, n, k, Kernel::Scalar);
        }
    }

    #[test]
    fn every_kernel_matches_the_quantized_reference() {
        for kernel in kernels() {
            for (m, n, k) in [(1, 1, 1), (3, 17, 7), (70, 96, 384), (130, 40, 1536), (8, 32, 4)] {
                check(m, n, k, kernel);
            }
        }
    }

    /// The signed integer product Σ_k (a − 128) · w of every (row, output)
    /// through `kernel`'s tiles, the way `matmul_with` walks them.
    fn int_product(kernel: Kernel, a: &QActs, w: &QWeight) -> Vec<i32> {
        let (m, n) = (a.m, w.n);
        let mut out = vec![0i32; m * n];
        let mut tile = [[0i32; NR]; MR];
        for t in (0..m).step_by(MR) {
            for nb in (0..w.np).step_by(NR) {
                let (at, wt) = (&a.a_q[t * a.kp..(t + MR) * a.kp], &w.packed[nb * w.kp..(nb + NR) * w.kp]);
                match kernel {
                    #[cfg(target_arch = "x86_64")]
                    Kernel::Vnni => unsafe { tile_vnni(at, wt, a.kp, &mut tile) },
                    #[cfg(target_arch = "x86_64")]
                    Kernel::Avx2 => unsafe { tile_avx2(at, wt, a.kp, &mut tile) },
                    _ => tile_scalar(at, wt, a.kp, &mut tile),
                }
                for (i, row) in tile.iter().enumerate().take(m - t) {
                    for (j, &v) in row.iter().enumerate().take(n.saturating_sub(nb).min(NR)) {
                        let sh = if kernel == Kernel::Avx2 { 0 } else { w.shift[nb + j] };
                        out[(t + i) * n + nb + j] = v - sh;
                    }
                }
            }
        }
        out
    }

    /// Σ_k (a − 128) · w in i64 from the stored operands.
    fn int_reference(a: &QActs, w: &QWeight) -> Vec<i32> {
        let mut out = vec![0i32; a.m * w.n];
        for r in 0..a.m {
            for c in 0..w.n {
                let s: i64 = (0..w.k).map(|i| a.value(r, i) as i64 * w.q(c, i) as i64).sum();
                out[r * w.n + c] = i32::try_from(s).unwrap();
            }
        }
        out
    }

    /// Every kernel gives the exact integer product: ragged shapes (m not a
    /// multiple of the 8- or 4-row tile, n not of 16/32, k not of 4) and the
    /// extremes: weights ±127 with activations at 1 and 255 (x = ∓127), where
    /// a saturating `vpmaddubsw` pair (2·127·127 = 32258 exact, 2·255·127 not)
    /// would show.
    #[test]
    fn every_kernel_gives_the_exact_integer_product() {
        let kernels = kernels();
        let mut cases: Vec<(usize, usize, usize, Vec<f32>, Vec<f32>)> = Vec::new();
        for &(m, n, k) in &[(1, 1, 1), (5, 17, 3), (13, 49, 385), (9, 33, 1538), (4, 16, 4), (67, 100, 130), (3, 1152, 384)] {
            cases.push((m, n, k, rnd(m * k, 11 + k as u64, 3.0), rnd(n * k, 5 + n as u64, 0.2)));
        }
        // Extremes: every activation ±amax (bytes 255 / 1), every weight ±max
        // (±127), in all four sign combinations and alternating patterns.
        let (m, n, k) = (11, 40, 1539);
        let sgn = |i: usize, pat: usize| -> f32 {
            match pat {
                0 => 1.0,
                1 => -1.0,
                2 => if i % 2 == 0 { 1.0 } else { -1.0 },
                _ => if (i / 3) % 2 == 0 { -1.0 } else { 1.0 },
            }
        };
        for pa in 0..4 {
            for pw in 0..4 {
                let x: Vec<f32> = (0..m * k).map(|i| sgn(i, pa) * 5.0).collect();
                let wf: Vec<f32> = (0..n * k).map(|i| sgn(i + i / k, pw) * 0.5).collect();
                cases.push((m, n, k, x, wf));
            }
        }
        for (m, n, k, x, wf) in &cases {
            let (m, n, k) = (*m, *n, *k);
            let w = QWeight::quantize(wf, n, k);
            let mut base_a = QActs::default();
            base_a.quantize_for(Kernel::Scalar, x, m, k, w.a_stride(), None);
            let want = int_reference(&base_a, &w);
            let bias = rnd(n, 9, 1.0);
            let mut base = vec![f32::NAN; m * n];
            matmul_with(Kernel::Scalar, &base_a, &w, Some(&bias), &mut base);
            for &kernel in &kernels {
                let mut a = QActs::default();
                a.quantize_for(kernel, x, m, k, w.a_stride(), None);
                assert_eq!(int_reference(&a, &w), want, "{kernel:?}: layouts hold different values");
                assert_eq!(int_product(kernel, &a, &w), want, "{kernel:?} m={m} n={n} k={k}");
                let mut got = vec![f32::NAN; m * n];
                matmul_with(kernel, &a, &w, Some(&bias), &mut got);
                assert!(got.iter().zip(&base).all(|(a, b)| a.to_bits() == b.to_bits()), "{kernel:?} m={m} n={n} k={k}: f32 output differs from scalar");
            }
        }
        // The extremes really are extreme.
        let w = QWeight::quantize(&vec![0.5; 16 * 8], 16, 8);
        let mut a = QActs::default();
        a.quantize_for(Kernel::Scalar, &[5.0, -5.0, 5.0, -5.0, 5.0, 5.0, -5.0, -5.0], 1, 8, w.a_stride(), None);
        assert_eq!(&a.a_q[..8], &[255, 1, 255, 1, 255, 255, 1, 1]);
        a.quantize_for(Kernel::Avx2, &[5.0, -5.0, 5.0, -5.0, 5.0, 5.0, -5.0, -5.0], 1, 8, w.a_stride(), None);
        assert_eq!(&a.a_q[..8], &[127, 129, 127, 129, 127, 127, 129, 129]);
        assert!((0..8).all(|i| w.q(0, i) == 127));
        assert_eq!(int_reference(&a, &w)[0], 0);
    }

    /// Kernel throughput on MiniLM's layer shapes (a measurement, not a
    /// check): `cargo test -p tresor-llm --lib i8gemm_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn i8gemm_speed() {
        let m = 2048;
        for kernel in kernels() {
            let mut total = 0f64;
            let mut macs = 0f64;
            for (n, k) in [(1152, 384), (384, 384), (1536, 384), (384, 1536)] {
                let w = QWeight::quantize(&rnd(n * k, 3, 0.1), n, k);
                let mut a = QActs::default();
                a.quantize_for(kernel, &rnd(m * k, 4, 1.0), m, k, w.a_stride(), None);
                let mut out = vec![0f32; m * n];
                let reps = if kernel == Kernel::Scalar { 1 } else { 5 };
                matmul_with(kernel, &a, &w, None, &mut out);
                let t = std::time::Instant::now();
                for _ in 0..reps {
                    matmul_with(kernel, &a, &w, None, &mut out);
                }
                let dt = t.elapsed().as_secs_f64() / reps as f64;
                total += dt;
                macs += (m * n * k) as f64;
                eprintln!("{kernel:?} m={m} n={n} k={k}: {:.2} ms, {:.1} GMAC/s", dt * 1e3, (m * n * k) as f64 / dt / 1e9);
            }
            eprintln!("{kernel:?} one MiniLM layer's linears at m={m}: {:.2} ms, {:.1} GMAC/s (threads {})", total * 1e3, macs / total / 1e9, rayon::current_num_threads());
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
