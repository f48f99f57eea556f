//! Tresor's own BERT encoder forward for the sentence embedder on the CPU,
//! replacing candle-transformers' `BertModel` there (the profile: candle's
//! batched BERT spent its time on padded positions, copies for transposes
//! and fresh allocations per op, 0.23× sentence-transformers). Weights come
//! through candle's `VarBuilder` (the same names and checks as `BertModel`);
//! the arithmetic runs on plain row-major buffers:
//! - the tokens of all texts of a batch are packed into one matrix without
//!   any padding; attention runs per (text, head) over that text's real
//!   tokens only, strided views into the fused QKV output, no transposes;
//! - the linear layers are one GEMM each over every token of the batch:
//!   f32 through the `gemm` crate (the kernels candle itself uses), or int8
//!   through [`crate::i8gemm`] (per-row weight scales, per-token
//!   activation scales);
//! - LayerNorm, GELU (erf) and softmax are fused row loops written so the
//!   compiler vectorizes them; all buffers are reused between batches.
//!
//! Owns the encoder arithmetic and mean pooling; never tokenizes, never
//! decides the precision (that is `embed`).

use std::cell::RefCell;
use std::sync::Mutex;

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{Config, HiddenAct};
use rayon::prelude::*;

use crate::i8gemm::{self, QActs, QWeight};
use crate::pool::SendPtr;

/// Numeric precision of the linear layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// f32 everywhere (sentence-transformers' vectors, cosine ≥ 0.999).
    F32,
    /// int8 weights and activations in the linear layers, f32 elsewhere.
    Int8,
}

struct Linear {
    /// (n × k) row-major; empty when the layer runs in int8.
    w: Vec<f32>,
    b: Vec<f32>,
    n: usize,
    k: usize,
    q: Option<QWeight>,
    /// Per input channel: 1/s of the smoothing folded into `q` (int8 only).
    smooth: Option<Vec<f32>>,
}

struct Norm {
    w: Vec<f32>,
    b: Vec<f32>,
}

struct Layer {
    qkv: Linear,
    out: Linear,
    ln1: Norm,
    up: Linear,
    down: Linear,
    ln2: Norm,
}

#[derive(Default)]
struct Scratch {
    h: Vec<f32>,
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    tmp: Vec<f32>,
    inter: Vec<f32>,
    acts: QActs,
}

pub struct Encoder {
    hidden: usize,
    heads: usize,
    eps: f32,
    act: HiddenAct,
    max_pos: usize,
    word: Vec<f32>,
    pos: Vec<f32>,
    typ: Vec<f32>,
    emb_ln: Norm,
    layers: Vec<Layer>,
    precision: Precision,
    scratch: Mutex<Scratch>,
}

fn vec1(t: Tensor) -> candle_core::Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

impl Encoder {
    /// Loads the f32 encoder; for [`Precision::Int8`] it then runs the
    /// `calibration` texts (token ids, type ids) in f32 to measure each
    /// linear layer's input channels and quantizes the layers with those
    /// statistics ([`Encoder::quantize`]).
    pub fn load(vb: VarBuilder, cfg: &Config, precision: Precision, calibration: &[(Vec<u32>, Vec<u32>)]) -> candle_core::Result<Self> {
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else if let Some(mt) = cfg.model_type.as_deref().filter(|mt| vb.contains_tensor(&format!("{mt}.embeddings.word_embeddings.weight"))) {
            vb.pp(mt)
        } else {
            vb
        };
        let h = cfg.hidden_size;
        if cfg.num_attention_heads == 0 || !h.is_multiple_of(cfg.num_attention_heads) {
            candle_core::bail!("hidden_size {h} is not a multiple of num_attention_heads {}", cfg.num_attention_heads);
        }
        let norm = |vb: VarBuilder| -> candle_core::Result<Norm> {
            let (w, b) = match (vb.get(h, "weight"), vb.get(h, "bias")) {
                (Ok(w), Ok(b)) => (w, b),
                _ => (vb.get(h, "gamma")?, vb.get(h, "beta")?),
            };
            Ok(Norm { w: vec1(w)?, b: vec1(b)? })
        };
        let linear = |parts: &[VarBuilder], k: usize, n_each: usize| -> candle_core::Result<Linear> {
            let mut w = Vec::with_capacity(parts.len() * n_each * k);
            let mut b = Vec::with_capacity(parts.len() * n_each);
            for p in parts {
                w.extend(vec1(p.get((n_each, k), "weight")?)?);
                b.extend(vec1(p.get(n_each, "bias")?)?);
            }
            Ok(Linear { w, b, n: parts.len() * n_each, k, q: None, smooth: None })
        };
        let e = vb.pp("embeddings");
        let word = vec1(e.pp("word_embeddings").get((cfg.vocab_size, h), "weight")?)?;
        let pos = vec1(e.pp("position_embeddings").get((cfg.max_position_embeddings, h), "weight")?)?;
        let typ = vec1(e.pp("token_type_embeddings").get((cfg.type_vocab_size, h), "weight")?)?;
        let emb_ln = norm(e.pp("LayerNorm"))?;
        let mut layers: Vec<Layer> = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let lb = vb.pp(format!("encoder.layer.{l}"));
            let att = lb.pp("attention");
            let s = att.pp("self");
            layers.push(Layer {
                qkv: linear(&[s.pp("query"), s.pp("key"), s.pp("value")], h, h)?,
                out: linear(&[att.pp("output.dense")], h, h)?,
                ln1: norm(att.pp("output.LayerNorm"))?,
                up: linear(&[lb.pp("intermediate.dense")], h, cfg.intermediate_size)?,
                down: linear(&[lb.pp("output.dense")], cfg.intermediate_size, h)?,
                ln2: norm(lb.pp("output.LayerNorm"))?,
            });
        }
        Ok(Encoder {
            hidden: h,
            heads: cfg.num_attention_heads,
            eps: cfg.layer_norm_eps as f32,
            act: cfg.hidden_act,
            max_pos: cfg.max_position_embeddings,
            word,
            pos,
            typ,
            emb_ln,
            layers,
            precision: Precision::F32,
            scratch: Mutex::new(Scratch::default()),
        })
        .map(|mut enc| {
            if precision == Precision::Int8 {
                let texts: Vec<(&[u32], &[u32])> = calibration.iter().map(|(a, b)| (a.as_slice(), b.as_slice())).collect();
                let mut stats = Vec::new();
                enc.run(&texts, Some(&mut stats));
                enc.quantize(&stats);
            }
            enc
        })
    }

    /// Turns every linear layer into int8, smoothed with the per-channel
    /// input maxima `stats` (4 per layer: qkv, out, up, down).
    fn quantize(&mut self, stats: &[Vec<f32>]) {
        let mut it = stats.iter();
        for layer in &mut self.layers {
            for l in [&mut layer.qkv, &mut layer.out, &mut layer.up, &mut layer.down] {
                let amax = it.next().expect("a statistic per linear layer");
                let inv = smoothing(amax, &l.w, l.n, l.k);
                let mut w = std::mem::take(&mut l.w);
                for row in w.chunks_mut(l.k) {
                    for (x, s) in row.iter_mut().zip(&inv) {
                        *x /= s;
                    }
                }
                l.q = Some(QWeight::quantize(&w, l.n, l.k));
                l.smooth = Some(inv);
            }
        }
        self.precision = Precision::Int8;
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Mean-pooled, L2-normalised vectors of the texts given as
    /// (token ids, token type ids), each at most the position table long.
    pub fn embed(&self, texts: &[(&[u32], &[u32])]) -> Vec<Vec<f32>> {
        self.run(texts, None)
    }

    /// The forward pass; with `stats`, appends each linear layer's
    /// per-input-channel max |x| (calibration).
    fn run(&self, texts: &[(&[u32], &[u32])], mut stats: Option<&mut Vec<Vec<f32>>>) -> Vec<Vec<f32>> {
        let mut guard = self.scratch.try_lock();
        let mut own = Scratch::default();
        let sc: &mut Scratch = match guard.as_deref_mut() {
            Ok(s) => s,
            Err(_) => &mut own,
        };
        let h = self.hidden;
        let mut offsets = Vec::with_capacity(texts.len() + 1);
        offsets.push(0usize);
        for (ids, _) in texts {
            offsets.push(offsets.last().unwrap() + ids.len().min(self.max_pos));
        }
        let t = *offsets.last().unwrap();
        if t == 0 {
            return texts.iter().map(|_| vec![0.0; h]).collect();
        }
        let inter_n = self.layers.first().map_or(0, |l| l.up.n);
        sc.h.resize(t * h, 0.0);
        sc.qkv.resize(t * 3 * h, 0.0);
        sc.ctx.resize(t * h, 0.0);
        sc.tmp.resize(t * h, 0.0);
        sc.inter.resize(t * inter_n, 0.0);

        // Embeddings + LayerNorm.
        let vocab = self.word.len() / h;
        let ntyp = self.typ.len() / h;
        for (i, (ids, types)) in texts.iter().enumerate() {
            for p in 0..offsets[i + 1] - offsets[i] {
                let row = &mut sc.h[(offsets[i] + p) * h..(offsets[i] + p + 1) * h];
                let id = (ids[p] as usize).min(vocab - 1);
                let ty = (types.get(p).copied().unwrap_or(0) as usize).min(ntyp - 1);
                let (we, pe, te) = (&self.word[id * h..][..h], &self.pos[p * h..][..h], &self.typ[ty * h..][..h]);
                for c in 0..h {
                    row[c] = we[c] + pe[c] + te[c];
                }
            }
        }
        rows_mut(&mut sc.h, h, |_, row| layer_norm(row, &self.emb_ln, self.eps));

        for layer in &self.layers {
            self.linear(&layer.qkv, &sc.h, t, &mut sc.qkv, &mut sc.acts, stats.as_deref_mut());
            self.attention(&sc.qkv, &offsets, &mut sc.ctx);
            self.linear(&layer.out, &sc.ctx, t, &mut sc.tmp, &mut sc.acts, stats.as_deref_mut());
            // h = LN(attn_out + h)
            let tmp = &sc.tmp;
            rows_mut(&mut sc.h, h, |r, row| {
                add(row, &tmp[r * h..(r + 1) * h]);
                layer_norm(row, &layer.ln1, self.eps);
            });
            self.linear(&layer.up, &sc.h, t, &mut sc.inter, &mut sc.acts, stats.as_deref_mut());
            let act = self.act;
            sc.inter.par_chunks_mut(inter_n * 16).for_each(|c| activate(c, act));
            self.linear(&layer.down, &sc.inter, t, &mut sc.tmp, &mut sc.acts, stats.as_deref_mut());
            let tmp = &sc.tmp;
            rows_mut(&mut sc.h, h, |r, row| {
                add(row, &tmp[r * h..(r + 1) * h]);
                layer_norm(row, &layer.ln2, self.eps);
            });
        }

        // Mean pooling over each text's tokens, then L2.
        (0..texts.len())
            .map(|i| {
                let (a, b) = (offsets[i], offsets[i + 1]);
                let mut v = vec![0f32; h];
                for r in a..b {
                    add(&mut v, &sc.h[r * h..(r + 1) * h]);
                }
                let inv = 1.0 / ((b - a).max(1) as f32);
                v.iter_mut().for_each(|x| *x *= inv);
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
                v
            })
            .collect()
    }

    /// out (m × l.n) = x (m × l.k) · Wᵀ + b.
    fn linear(&self, l: &Linear, x: &[f32], m: usize, out: &mut [f32], acts: &mut QActs, stats: Option<&mut Vec<Vec<f32>>>) {
        let (x, out) = (&x[..m * l.k], &mut out[..m * l.n]);
        if let Some(stats) = stats {
            let mut amax = vec![0f32; l.k];
            for row in x.chunks(l.k) {
                for (m, v) in amax.iter_mut().zip(row) {
                    *m = m.max(v.abs());
                }
            }
            stats.push(amax);
        }
        if let Some(q) = &l.q {
            acts.quantize(x, m, l.k, q.a_stride(), l.smooth.as_deref());
            i8gemm::matmul(acts, q, Some(&l.b), out);
            return;
        }
        gemm_f32(m, l.n, l.k, x, l.k, 1, &l.w, 1, l.k, out, l.n, 1.0, threads_par());
        let (b, n) = (&l.b, l.n);
        out.par_chunks_mut(n * 16).for_each(|c| c.chunks_mut(n).for_each(|row| add(row, b)));
    }

    /// Scaled dot-product attention per (text, head) over the text's own
    /// tokens; `qkv` rows are [q | k | v], `ctx` rows are the heads side by side.
    fn attention(&self, qkv: &[f32], offsets: &[usize], ctx: &mut [f32]) {
        thread_local! {
            static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
        }
        let (h, heads) = (self.hidden, self.heads);
        let d = h / heads;
        let scale = 1.0 / (d as f32).sqrt();
        let ctx_len = ctx.len();
        let ctx_ptr = SendPtr(ctx.as_mut_ptr());
        let jobs: Vec<(usize, usize)> = (0..offsets.len() - 1).flat_map(|s| (0..heads).map(move |hd| (s, hd))).collect();
        jobs.par_iter().for_each(|&(s, hd)| {
            let (a, n) = (offsets[s], offsets[s + 1] - offsets[s]);
            if n == 0 {
                return;
            }
            SCORES.with(|sc| {
                let mut sc = sc.borrow_mut();
                sc.resize(n * n, 0.0);
                let q = &qkv[a * 3 * h + hd * d..];
                let k = &qkv[a * 3 * h + h + hd * d..];
                let v = &qkv[a * 3 * h + 2 * h + hd * d..];
                // scores (n × n) = q (n × d, row stride 3h) · kᵀ
                gemm_f32(n, n, d, q, 3 * h, 1, k, 1, 3 * h, &mut sc, n, scale, gemm::Parallelism::None);
                for row in sc.chunks_mut(n) {
                    softmax(row);
                }
                // ctx (n × d, row stride h) = scores · v (n × d, row stride 3h)
                // Safety: every (text, head) job writes only its own rows ×
                // columns of ctx, inside the buffer (rows a..a+n, columns
                // hd·d..(hd+1)·d); no slice of ctx is formed meanwhile.
                unsafe {
                    assert!((a + n) * h <= ctx_len);
                    gemm_raw(n, d, n, sc.as_ptr(), n, 1, v.as_ptr(), 3 * h, 1, ctx_ptr.get().add(a * h + hd * d), h, 1.0, gemm::Parallelism::None);
                }
            });
        });
    }
}

/// SmoothQuant's per-channel factors (α = 0.6) for a linear layer: BERT's
/// hidden states have a few channels far larger than the rest, which would
/// eat a per-token int8 scale. Channel c is divided by
/// s_c = sqrt(a_c / w_c) before quantization and the weights' column
/// multiplied by it (the product is unchanged), with a_c the channel's
/// calibrated max |x| and w_c the column's max |w|. Returns 1/s_c.
fn smoothing(amax: &[f32], w: &[f32], n: usize, k: usize) -> Vec<f32> {
    // 0.5–0.75 all keep MiniLM's int8 vectors at cosine ≈ 0.9975 to f32
    // on the parity fixture (0 — no smoothing — gives 0.989).
    let alpha = 0.6f32;
    let mut wmax = vec![0f32; k];
    for row in w.chunks(k).take(n) {
        for (m, x) in wmax.iter_mut().zip(row) {
            *m = m.max(x.abs());
        }
    }
    amax.iter()
        .zip(&wmax)
        .map(|(&a, &wm)| {
            let s = a.max(1e-5).powf(alpha) / wm.max(1e-5).powf(1.0 - alpha);
            1.0 / s
        })
        .collect()
}

fn threads_par() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

/// dst (m × n, row stride dst_rs) = alpha · lhs (m × k) · rhs (k × n), with
/// element (i, j) of lhs at `i·lhs_rs + j·lhs_cs` and likewise for rhs.
#[allow(clippy::too_many_arguments)]
fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    lhs: &[f32],
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: &[f32],
    rhs_rs: usize,
    rhs_cs: usize,
    dst: &mut [f32],
    dst_rs: usize,
    alpha: f32,
    par: gemm::Parallelism,
) {
    let span = |rows: usize, rs: usize, cols: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs + 1;
    assert!(m > 0 && n > 0 && k > 0);
    assert!(lhs.len() >= span(m, lhs_rs, k, lhs_cs));
    assert!(rhs.len() >= span(k, rhs_rs, n, rhs_cs));
    assert!(dst.len() >= span(m, dst_rs, n, 1));
    // Safety: the asserts above keep every access inside the slices.
    unsafe { gemm_raw(m, n, k, lhs.as_ptr(), lhs_rs, lhs_cs, rhs.as_ptr(), rhs_rs, rhs_cs, dst.as_mut_ptr(), dst_rs, alpha, par) }
}

/// [`gemm_f32`] on raw pointers. Safety: every element addressed by the
/// shapes and strides lies inside the caller's allocations.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    lhs: *const f32,
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: *const f32,
    rhs_rs: usize,
    rhs_cs: usize,
    dst: *mut f32,
    dst_rs: usize,
    alpha: f32,
    par: gemm::Parallelism,
) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        false,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        0.0,
        alpha,
        false,
        false,
        false,
        par,
    )
}

/// Runs `f(row index, row)` over the rows of `buf`, in parallel.
fn rows_mut(buf: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    const ROWS: usize = 16;
    buf.par_chunks_mut(width * ROWS).enumerate().for_each(|(ci, chunk)| {
        for (i, row) in chunk.chunks_mut(width).enumerate() {
            f(ci * ROWS + i, row);
        }
    });
}

fn add(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// Σ x with 8 independent partial sums (vectorizes; no reassociation needed).
fn sum8(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += f(c[i]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

fn layer_norm(row: &mut [f32], n: &Norm, eps: f32) {
    let len = row.len() as f32;
    let mean = sum8(row, |v| v) / len;
    let var = sum8(row, |v| (v - mean) * (v - mean)) / len;
    let inv = 1.0 / (var + eps).sqrt();
    for ((x, w), b) in row.iter_mut().zip(&n.w).zip(&n.b) {
        *x = (*x - mean) * inv * w + b;
    }
}

fn softmax(row: &mut [f32]) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    for x in row.iter_mut() {
        *x = exp(*x - max);
    }
    let inv = 1.0 / sum8(row, |v| v);
    row.iter_mut().for_each(|x| *x *= inv);
}

fn activate(xs: &mut [f32], act: HiddenAct) {
    match act {
        HiddenAct::Gelu => xs.iter_mut().for_each(|x| *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2))),
        HiddenAct::GeluApproximate => xs.iter_mut().for_each(|x| {
            let v = *x;
            let u = 0.797_884_6 * (v + 0.044715 * v * v * v);
            // tanh(u) = 1 - 2 / (exp(2u) + 1)
            let th = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
            *x = 0.5 * v * (1.0 + th);
        }),
        HiddenAct::Relu => xs.iter_mut().for_each(|x| *x = x.max(0.0)),
    }
}

/// e^x, branch-free (vectorizes): 2^n · Taylor(r), |r| ≤ ln2/2; relative
/// error ≈ 2e-7. Inputs below -87 give ~0.
#[inline(always)]
fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    f32::from_bits(((n as i32 + 127) << 23) as u32) * p
}

/// erf, Abramowitz & Stegun 7.1.28 (|error| ≤ 3e-7, plus ~1e-6 of f32
/// rounding), branch-free.
#[inline(always)]
fn erf(x: f32) -> f32 {
    let a = x.abs();
    let p = 1.0 + a * (0.070_523_08 + a * (0.042_282_01 + a * (0.009_270_527 + a * (0.000_152_014_3 + a * (0.000_276_567_2 + a * 0.000_043_063_8)))));
    let p2 = p * p;
    let p4 = p2 * p2;
    let p8 = p4 * p4;
    let p16 = p8 * p8;
    (1.0 - 1.0 / p16).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_are_accurate() {
        for i in -2000..=2000 {
            let x = i as f32 * 0.01;
            let (e, want) = (exp(x), x.exp());
            assert!((e - want).abs() <= 1e-6 * want, "exp({x}) = {e}, want {want}");
            let want = libm_erf(x as f64) as f32;
            assert!((erf(x) - want).abs() < 2e-6, "erf({x}) = {}, want {want}", erf(x));
        }
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(-87.0) < 1e-37);
    }

    /// erf by its Taylor series / continued fraction, in f64 (reference).
    fn libm_erf(x: f64) -> f64 {
        if x.abs() < 3.0 {
            let mut sum = x;
            let mut term = x;
            for n in 1..200 {
                term *= -x * x / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc continued fraction (Lentz), accurate for |x| ≥ 3
            let a = x.abs();
            let mut f = a;
            for k in (1..60).rev() {
                f = a + (k as f64 / 2.0) / f;
            }
            let erfc = (-a * a).exp() / (std::f64::consts::PI.sqrt() * f);
            (1.0 - erfc).copysign(x)
        }
    }
}
