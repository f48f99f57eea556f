//! Quantized matrix multiplication for the CPU paths where candle's is slow.
//!
//! candle 0.11 multiplies Q4_1 weights with a scalar (generic) dot product,
//! one weight row per activation row, and its Q8_0 and K-quant kernels do
//! one vector dot per (row, token), called per layer through a tensor round
//! trip. [`QLinear`] replaces candle's `QMatMul` for Q4_0, Q4_1, Q5_0, Q8_0,
//! Q4_K, Q5_K and Q6_K weights on the CPU with SIMD kernels chosen at run
//! time by CPU tier ([`CpuTier`]: AVX512-VNNI, AVX-VNNI, AVX2, NEON with
//! dotprod, NEON, scalar; `TRESOR_CPU_TIER` forces one the CPU supports):
//! - activations are quantized once per call to 8-bit blocks (ggml's
//!   rounding: 32-value blocks with an f16-rounded scale, and for Q4_1 the
//!   scaled block sum; for the K-quants 256-value Q8_K blocks with an f32
//!   scale and the sums of every 16 values), into a reused per-thread buffer;
//! - decode (one activation row): four weight rows per step against the one
//!   activation block (four independent accumulator chains), the next four
//!   rows prefetched meanwhile (decode streams the weights from memory);
//! - prefill: each weight block is expanded once and multiplied with eight
//!   activation rows (four for Q4_1), the rows' block scales read side by
//!   side so one multiply forms four scale products; work is tiled over
//!   (weight rows × activation rows) so one tile of quantized activations
//!   and weights stays in L2;
//! - on aarch64 every format uses NEON, one weight row against one
//!   activation row at a time (`sdot` where the CPU has dotprod, else
//!   widening multiplies; bit for bit the scalar reference either way);
//! - the tiles run on candle's persistent barrier pool (the calling thread
//!   works too, idle workers spin briefly before parking), not a pool
//!   spun up per op ([`crate::pool`]).
//!
//! The weights stay in GGUF's block layout inside the loaded `QTensor`
//! (no copy; on the x86 tiers a repacked copy of the Q4_K, Q8_0, Q5_0 and
//! Q4_0 weights in eight-row interleaved groups, `packed` and `packed32`,
//! which replaces the mapped pages; `TRESOR_REPACK=0` turns both off).
//! Every other quantization (and every non-CPU device) goes to
//! candle's `QMatMul` unchanged; `TRESOR_QMATMUL=candle` forces candle
//! everywhere, for A/B measurements. Owns the arithmetic of `x · Wᵀ` only;
//! never loads files or knows about layers.
//!
//! One module per instruction set, one place that picks among them:
//! - this file: the weight formats ([`Kind`]), the activation block types,
//!   [`QLinear`] and its candle op, and the driver (quantize the
//!   activations, cut decode and prefill into work items on the pool);
//! - `tier`: the run-time CPU check and the `TRESOR_CPU_TIER` override
//!   ([`CpuTier::active`]), shared with [`crate::i8gemm`];
//! - `dispatch`: per format, activation block type and tier, which kernel
//!   multiplies (the `ActBlock` impls); the only code that reads the tier
//!   the driver threads through [`ActBlock`];
//! - `packed`: Q4_K weights repacked at load into eight-row interleaved
//!   groups and their driver (x86 tiers; `TRESOR_Q4K_REPACK=0` turns it off);
//! - `packed32`: the same for Q8_0, Q5_0 and Q4_0, one `vpdpbusd` per
//!   eight rows and four values (`TRESOR_REPACK=0` turns every repacking off);
//! - `scalar`: the portable references (ggml's quantizers and dot products
//!   in plain Rust), the fallback and the tests' ground truth;
//! - `avx2` (x86_64): every x86 kernel, one macro expanded per tier with
//!   that tier's two integer primitives — AVX2 + FMA + F16C there, AVX-VNNI
//!   and AVX512-VNNI (`vpdpbusd`/`vpdpwssd`) in `vnni`; `neon` (aarch64):
//!   the NEON kernels, one text per format over two integer primitives
//!   (widening multiplies for `neon`, `sdot` for `neondot`). Each equals the
//!   scalar reference (NEON bit for bit).

use std::cell::RefCell;
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{CpuStorage, CustomOp1, Layout, Module, Result, Shape, Tensor};

use crate::pool::{parallel_for, SendPtr};
pub use packed::REPACK_ENV;
pub use packed32::REPACK_ALL_ENV;
pub use tier::{cpu_description, CpuTier, TIER_ENV};

#[cfg(target_arch = "x86_64")]
mod avx2;
mod dispatch;
#[cfg(target_arch = "aarch64")]
mod neon;
mod packed;
mod packed32;
#[cfg(target_arch = "x86_64")]
mod quantize_x86;
mod scalar;
#[cfg(test)]
mod tests;
mod tier;

/// Test inputs shared by the kernel modules' tests.
#[cfg(test)]
mod test_support {
    use super::CpuTier;

    /// `len` values in [-1, 1), the same for the same seed.
    pub(super) fn random(len: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::synthetic::XorShift::seeded(seed);
        (0..len).map(|_| rng.next_f32() * 2.0 - 1.0).collect()
    }

    /// Seconds of the fastest of `runs` calls of `run`, after one warm-up
    /// call: the machine's other load only ever slows a run.
    pub(super) fn best_of(runs: usize, mut run: impl FnMut()) -> f64 {
        run();
        (0..runs)
            .map(|_| {
                let t = std::time::Instant::now();
                run();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min)
    }

    /// The packed speed tests' table: for every x86 tier, prefill (`m`
    /// rows) and decode (one row), GGUF's layout then the packed one, the
    /// best of `reps` over all `shapes` (`run(tier, packed, shape index, x,
    /// rows, out)` multiplies one), printed as ms and GMAC/s after `label`.
    pub(super) fn packed_vs_gguf(label: &str, shapes: &[(usize, usize)], m: usize, reps: usize, run: impl Fn(CpuTier, bool, usize, &[f32], usize, &mut [f32])) {
        for tier in x86_tiers() {
            for rows in [m, 1] {
                for packed in [false, true] {
                    let (mut total, mut macs) = (0f64, 0f64);
                    for (i, &(n, k)) in shapes.iter().enumerate() {
                        let x = random(rows * k, 6);
                        let mut out = vec![0f32; rows * n];
                        total += best_of(reps, || run(tier, packed, i, &x, rows, &mut out));
                        macs += (rows * n * k) as f64;
                    }
                    let layout = if packed { "packed" } else { "GGUF layout" };
                    eprintln!("{label} {layout} on {tier} at m={rows}: {:.2} ms, {:.1} GMAC/s", total * 1e3, macs / total / 1e9);
                }
            }
        }
    }

    /// The x86 tiers this CPU has (the packed layouts' tiers).
    pub(super) fn x86_tiers() -> Vec<CpuTier> {
        CpuTier::all_supported().into_iter().filter(|t| matches!(t, CpuTier::Avx2 | CpuTier::AvxVnni | CpuTier::Avx512Vnni)).collect()
    }
}
#[cfg(target_arch = "x86_64")]
mod vnni;

/// Values per quantization block (Q4_1, Q8_0 and the activations' blocks).
const QK: usize = 32;
/// Values per K-quant block (Q4_K, Q6_K and their Q8_K activation blocks).
const QK_K: usize = 256;
/// Bytes of one GGUF Q4_1 block: f16 d, f16 m, 16 bytes of nibbles.
const Q4_1_BYTES: usize = 20;
/// Bytes of one GGUF Q4_0 block: f16 d, 16 bytes of nibbles (value =
/// nibble − 8).
const Q4_0_BYTES: usize = 18;
/// Bytes of one GGUF Q8_0 block: f16 d, 32 signed bytes.
const Q8_0_BYTES: usize = 34;
/// Bytes of one GGUF Q5_0 block: f16 d, 32 high bits, 16 bytes of nibbles
/// (value = nibble + 16·bit − 16).
const Q5_0_BYTES: usize = 22;
/// Bytes of one GGUF Q4_K block: f16 d, f16 dmin, 12 bytes of packed 6-bit
/// scales and minimums (8 sub-blocks of 32), 128 bytes of nibbles.
const Q4_K_BYTES: usize = 144;
/// Bytes of one GGUF Q5_K block: Q4_K's d, dmin and 12 scale bytes, 32
/// bytes of fifth bits, 128 bytes of nibbles.
const Q5_K_BYTES: usize = 176;
/// Bytes of one GGUF Q6_K block: 128 bytes of low nibbles, 64 bytes of high
/// 2-bit pairs, 16 signed 8-bit scales (sub-blocks of 16), f16 d.
const Q6_K_BYTES: usize = 210;
/// Weight rows and activation rows per work item.
const TILE_ROWS: usize = 32;
const TILE_TOKENS: usize = 64;
/// Weight rows per work item when there is one activation row (decode).
const DECODE_ROWS: usize = 16;

/// Weight formats with a Tresor kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Q4_0,
    Q4_1,
    Q5_0,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

impl Kind {
    fn of(dtype: GgmlDType) -> Option<Kind> {
        match dtype {
            GgmlDType::Q4_0 => Some(Kind::Q4_0),
            GgmlDType::Q4_1 => Some(Kind::Q4_1),
            GgmlDType::Q5_0 => Some(Kind::Q5_0),
            GgmlDType::Q8_0 => Some(Kind::Q8_0),
            GgmlDType::Q4K => Some(Kind::Q4K),
            GgmlDType::Q5K => Some(Kind::Q5K),
            GgmlDType::Q6K => Some(Kind::Q6K),
            _ => None,
        }
    }

    /// Values per weight block.
    fn block_len(self) -> usize {
        match self {
            Kind::Q4_0 | Kind::Q4_1 | Kind::Q5_0 | Kind::Q8_0 => QK,
            Kind::Q4K | Kind::Q5K | Kind::Q6K => QK_K,
        }
    }

    fn block_bytes(self) -> usize {
        match self {
            Kind::Q4_0 => Q4_0_BYTES,
            Kind::Q4_1 => Q4_1_BYTES,
            Kind::Q5_0 => Q5_0_BYTES,
            Kind::Q8_0 => Q8_0_BYTES,
            Kind::Q4K => Q4_K_BYTES,
            Kind::Q5K => Q5_K_BYTES,
            Kind::Q6K => Q6_K_BYTES,
        }
    }
}

/// A linear layer without bias over quantized weights `(n, k)`: `x · Wᵀ`.
pub enum QLinear {
    /// Q4_1 / Q5_0 / Q8_0 / Q4_K / Q6_K on the CPU through Tresor's kernels.
    Own(Arc<OwnWeights>),
    /// Everything else through candle.
    Candle(QMatMul),
}

impl QLinear {
    pub fn from_qtensor(t: QTensor) -> Result<Self> {
        Self::from_arc(Arc::new(t))
    }

    pub fn from_arc(t: Arc<QTensor>) -> Result<Self> {
        if let (Some(kind), true, false) = (Kind::of(t.dtype()), t.device().is_cpu(), forced_candle()) {
            if let Ok((n, k)) = t.shape().dims2() {
                if k % kind.block_len() == 0 {
                    let repack = packed32::repack_enabled() && dispatch::has_x86_kernels(CpuTier::for_qmatmul());
                    let packed = repack
                        .then(|| {
                            let d = t.data().ok()?;
                            // the packers hand the packed rows' mapped pages back as they go
                            match kind {
                                Kind::Q4K if packed::repack_enabled() => packed::PackedQ4K::pack(&d, n, k).map(Packed::Q4K),
                                Kind::Q8_0 | Kind::Q5_0 | Kind::Q4_0 => packed32::PackedQ32::pack(kind, &d, n, k).map(Packed::Q32),
                                _ => None,
                            }
                        })
                        .flatten();
                    return Ok(QLinear::Own(Arc::new(OwnWeights { t, kind, n, k, packed })));
                }
            }
        }
        Ok(QLinear::Candle(QMatMul::from_arc(t)?))
    }

    /// Appends row `r`'s bytes in GGUF's block layout, read from the packed
    /// copy, and returns true; false (nothing appended) where the row is
    /// not in a packed copy (Q4_K, Q8_0, Q5_0, Q4_0). An embedding tied to this
    /// matrix looks its rows up here, so the mapped pages handed back at
    /// packing stay out of memory (a lookup in the mapping faults in its
    /// neighbours too: ~30 MB for a 512-token prompt on Gemma-3-270M).
    pub fn append_gguf_row(&self, r: usize, out: &mut Vec<u8>) -> bool {
        match self {
            QLinear::Own(w) => match &w.packed {
                Some(p) if r < p.rows() => {
                    p.append_gguf_row(r, out);
                    true
                }
                _ => false,
            },
            QLinear::Candle(_) => false,
        }
    }

    /// Whether this layer multiplies by `t` itself (the same tensor, as a
    /// tied output projection does with the token embedding).
    pub fn is_over(&self, t: &Arc<QTensor>) -> bool {
        matches!(self, QLinear::Own(w) if Arc::ptr_eq(&w.t, t))
    }

    /// `(n, k)`: output and input features.
    pub fn dims(&self) -> Result<(usize, usize)> {
        match self {
            QLinear::Own(w) => Ok((w.n, w.k)),
            QLinear::Candle(QMatMul::QTensor(t)) => t.shape().dims2(),
            QLinear::Candle(QMatMul::Tensor(t)) | QLinear::Candle(QMatMul::TensorF16(t)) => t.dims2(),
        }
    }

    /// `out (m, n) = x (m, k) · Wᵀ` on host slices (the CPU forward path).
    /// Weights without a Tresor kernel go through candle.
    pub fn forward_slice(&self, x: &[f32], m: usize, out: &mut [f32]) -> Result<()> {
        let (n, k) = self.dims()?;
        if x.len() != m * k || out.len() != m * n {
            candle_core::bail!("qlinear: ({m}, {k}) · ({n}, {k})ᵀ got {} inputs and {} outputs", x.len(), out.len());
        }
        match self {
            QLinear::Own(w) => w.matmul(x, m, out)?,
            QLinear::Candle(q) => {
                let xt = Tensor::from_slice(x, (m, k), &candle_core::Device::Cpu)?;
                let y = q.forward(&xt)?.flatten_all()?.to_vec1::<f32>()?;
                out.copy_from_slice(&y);
            }
        }
        Ok(())
    }
}

impl QLinear {
    /// `outs[i] (m, n_i) = x (m, k) · W_iᵀ` for layers that read the same
    /// input. Decode (`m` = 1) over packed Q4_K matrices quantizes `x` once
    /// and runs them all in one pool dispatch (one barrier instead of one
    /// per matrix: a Llama layer's Q, K, V and its gate and up); anything
    /// else is [`QLinear::forward_slice`] per layer. The results are the same
    /// bit for bit either way.
    pub fn forward_slices(layers: &[&QLinear], x: &[f32], m: usize, outs: &mut [&mut [f32]]) -> Result<()> {
        if layers.len() != outs.len() {
            candle_core::bail!("qlinear: {} layers and {} outputs", layers.len(), outs.len());
        }
        let tier = CpuTier::for_qmatmul();
        let k = match layers.first() {
            Some(l) => l.dims()?.1,
            None => return Ok(()),
        };
        let packed: Option<Vec<(&OwnWeights, &packed::PackedQ4K)>> = layers
            .iter()
            .map(|l| match l {
                QLinear::Own(w) => match &w.packed {
                    Some(Packed::Q4K(p)) if w.k == k => Some((w.as_ref(), p)),
                    _ => None,
                },
                QLinear::Candle(_) => None,
            })
            .collect();
        match packed {
            Some(ws) if m == 1 && ws.len() > 1 && x.len() == k && dispatch::has_x86_kernels(tier) && fused_decode_enabled() => {
                for ((w, _), out) in ws.iter().zip(outs.iter()) {
                    if out.len() != w.n {
                        candle_core::bail!("qlinear: (1, {k}) · ({}, {k})ᵀ got {} outputs", w.n, out.len());
                    }
                }
                let data = ws.iter().map(|(w, _)| w.t.data()).collect::<candle_core::Result<Vec<_>>>()?;
                let mats: Vec<(&packed::PackedQ4K, &[u8], usize)> = ws.iter().zip(&data).map(|((w, p), d)| (*p, d.as_ref(), w.n)).collect();
                packed::decode_packed_many_on(tier, &mats, k, x, outs);
                Ok(())
            }
            _ => layers.iter().zip(outs.iter_mut()).try_for_each(|(l, out)| l.forward_slice(x, m, out)),
        }
    }
}

impl Module for QLinear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            QLinear::Candle(m) => m.forward(x),
            QLinear::Own(w) => x.contiguous()?.apply_op1_no_bwd(&QOp(w.clone())),
        }
    }
}

/// `TRESOR_FUSED_DECODE=0` runs [`QLinear::forward_slices`] as one call
/// per matrix, for A/B measurements (read once).
pub const FUSED_DECODE_ENV: &str = "TRESOR_FUSED_DECODE";

fn fused_decode_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| !std::env::var(FUSED_DECODE_ENV).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "false" | "off" | "no")))
}

fn forced_candle() -> bool {
    std::env::var("TRESOR_QMATMUL").map(|v| v.eq_ignore_ascii_case("candle")).unwrap_or(false)
}

/// Quantized weights in GGUF's own block layout, `n` rows of `k` values,
/// read in place from the loaded tensor; for Q4_K on the x86 tiers (unless
/// `TRESOR_Q4K_REPACK=0`) also their full groups of eight rows repacked ([`packed`]).
pub struct OwnWeights {
    t: Arc<QTensor>,
    kind: Kind,
    n: usize,
    k: usize,
    packed: Option<Packed>,
}

/// A load-time repacked copy of a matrix's full groups of eight rows.
enum Packed {
    Q4K(packed::PackedQ4K),
    Q32(packed32::PackedQ32),
}

impl Packed {
    /// Rows in the packed layout (a multiple of eight).
    fn rows(&self) -> usize {
        match self {
            Packed::Q4K(p) => p.rows(),
            Packed::Q32(p) => p.rows(),
        }
    }

    /// Row `r`'s (`r < rows()`) bytes in GGUF's block layout, appended to `out`.
    fn append_gguf_row(&self, r: usize, out: &mut Vec<u8>) {
        match self {
            Packed::Q4K(p) => p.append_gguf_row(r, out),
            Packed::Q32(p) => p.append_gguf_row(r, out),
        }
    }
}

impl OwnWeights {
    /// `out (m, n) = x (m, k) · Wᵀ` on the quantized matmul's tier.
    fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) -> Result<()> {
        let data = self.t.data()?;
        match &self.packed {
            Some(Packed::Q4K(p)) => packed::matmul_packed_on(CpuTier::for_qmatmul(), p, &data, self.n, self.k, x, m, out),
            Some(Packed::Q32(p)) => packed32::matmul_packed32_on(CpuTier::for_qmatmul(), p, &data, self.n, self.k, x, m, out),
            None => matmul_on(CpuTier::for_qmatmul(), self.kind, &data, self.n, self.k, x, m, out),
        }
        Ok(())
    }
}

/// One quantized activation block: `x ≈ d · qs`, `s = d · Σ qs` (Q4_1 only).
#[derive(Clone, Copy)]
#[repr(C)]
struct BlockQ8 {
    d: f32,
    s: f32,
    qs: [i8; QK],
}

const ZERO_BLOCK: BlockQ8 = BlockQ8 { d: 0.0, s: 0.0, qs: [0; QK] };

/// One Q8_K activation block (ggml's `block_q8_K`): `x ≈ d · qs` over 256
/// values, `bsums[g]` = Σ qs of values `16g..16g+16` (the K-quants' minimum
/// and offset terms need only these sums).
#[derive(Clone, Copy)]
#[repr(C)]
struct BlockQ8K {
    d: f32,
    qs: [i8; QK_K],
    bsums: [i16; QK_K / 16],
}

const ZERO_BLOCK_K: BlockQ8K = BlockQ8K { d: 0.0, qs: [0; QK_K], bsums: [0; QK_K / 16] };

/// The scales of four activation rows' block `b`, side by side, so a
/// prefill kernel multiplies one weight scale with all four at once and
/// picks each product by an in-lane shuffle (as llama.cpp's tinyBLAS does):
/// `d` the rows' `BlockQ8::d`, `s` their `BlockQ8::s` (Q4_1's sums).
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Scales4 {
    d: [f32; 4],
    s: [f32; 4],
}

const ZERO_SCALES4: Scales4 = Scales4 { d: [0.0; 4], s: [0.0; 4] };

/// Four activation rows for a prefill kernel, and their blocks' scales
/// side by side (`d[b]` for block `b`; filled for 32-value blocks only).
struct Quad<'a, A> {
    rows: [&'a [A]; 4],
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // read by the AVX2 kernels
    d: &'a [Scales4],
}

/// An activation block type: how a row is quantized into it and which
/// kernels multiply weight rows with it.
trait ActBlock: Copy + Send + Sync + 'static {
    /// Values per block.
    const LEN: usize;
    const ZERO: Self;
    /// This thread's reused buffer of quantized activations.
    fn buffer() -> &'static std::thread::LocalKey<RefCell<Vec<Self>>>;
    fn quantize(kind: Kind, x: &[f32], out: &mut [Self]);
    /// Whether prefill kernels read [`Quad::d`].
    const SCALES4: bool;
    /// The side-by-side scales of four rows' blocks, into `out` (only
    /// where `SCALES4`).
    fn fill_scales4(rows: &[&[Self]; 4], out: &mut [Scales4]);
    /// One weight row with four activation rows (prefill).
    fn dot_x4(kind: Kind, w: &[u8], xs: &Quad<Self>, tier: CpuTier) -> [f32; 4];
    /// Whether [`ActBlock::dot_x8`] has a kernel for `kind`.
    fn has_x8(_kind: Kind, _tier: CpuTier) -> bool {
        false
    }
    /// One weight row with eight activation rows (two groups of four):
    /// the weight block is expanded once for all eight (Q5_0's bits cost
    /// as much as two tokens' products). Only where `has_x8`.
    fn dot_x8(kind: Kind, w: &[u8], quads: &[Quad<Self>; 2], tier: CpuTier) -> [f32; 8] {
        let (a, b) = (Self::dot_x4(kind, w, &quads[0], tier), Self::dot_x4(kind, w, &quads[1], tier));
        std::array::from_fn(|i| if i < 4 { a[i] } else { b[i - 4] })
    }
    /// Four weight rows with one activation row (decode).
    fn dot_r4(kind: Kind, ws: &[&[u8]; 4], x: &[Self], tier: CpuTier) -> [f32; 4];
}

struct QOp(Arc<OwnWeights>);

impl CustomOp1 for QOp {
    fn name(&self) -> &'static str {
        "tresor-quantized-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let w = &self.0;
        let x = match storage {
            CpuStorage::F32(v) => v,
            other => candle_core::bail!("quantized matmul: f32 activations expected, got {:?}", other.dtype()),
        };
        let (start, end) = layout
            .contiguous_offsets()
            .ok_or_else(|| candle_core::Error::Msg("quantized matmul: activations must be contiguous".into()))?;
        let x = &x[start..end];
        let dims = layout.shape().dims();
        let k = *dims.last().unwrap_or(&0);
        if k != w.k {
            candle_core::bail!("quantized matmul: activations have {k} columns, weights {}", w.k);
        }
        let m = x.len() / k;
        let mut out = vec![0f32; m * w.n];
        w.matmul(x, m, &mut out)?;
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("k checked above") = w.n;
        Ok((CpuStorage::F32(out), Shape::from(out_dims)))
    }
}

thread_local! {
    /// Quantized activations of the current call, reused across calls.
    static XQ: RefCell<Vec<BlockQ8>> = const { RefCell::new(Vec::new()) };
    static XQ_K: RefCell<Vec<BlockQ8K>> = const { RefCell::new(Vec::new()) };
    /// Side-by-side scales of each group of four quantized rows (prefill).
    static XQ_SCALES4: RefCell<Vec<Scales4>> = const { RefCell::new(Vec::new()) };
}

/// `out (m, n) = x (m, k) · Wᵀ` for weights `data` of `kind` (GGUF's
/// layout) on `tier`, which the caller checked this CPU supports.
#[allow(clippy::too_many_arguments)]
fn matmul_on(tier: CpuTier, kind: Kind, data: &[u8], n: usize, k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    assert!(tier.supported(), "CPU tier {tier} is not supported here");
    match kind {
        Kind::Q4_0 | Kind::Q4_1 | Kind::Q5_0 | Kind::Q8_0 => matmul_with::<BlockQ8>(tier, kind, data, n, k, x, m, out),
        Kind::Q4K | Kind::Q5K | Kind::Q6K => matmul_with::<BlockQ8K>(tier, kind, data, n, k, x, m, out),
    }
}

#[allow(clippy::too_many_arguments)]
fn matmul_with<A: ActBlock>(tier: CpuTier, kind: Kind, data: &[u8], n: usize, k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    let nb = k / A::LEN;
    let rb = nb * kind.block_bytes();
    debug_assert!(data.len() >= n * rb);
    if nb == 0 {
        out.fill(0.0);
        return;
    }
    A::buffer().with(|cell| {
        let mut buf = cell.borrow_mut();
        // Grown, never cleared: every block is overwritten below, and
        // zero-filling the buffer on each call cost ~5 % of Gemma's prefill.
        if buf.len() < m * nb {
            buf.resize(m * nb, A::ZERO);
        }
        let xq = &mut buf[..m * nb];
        quantize_rows(kind, x, k, xq);
        let xq: &[A] = xq;
        let row = |j: usize| &data[j * rb..(j + 1) * rb];
        let out_ptr = SendPtr(out.as_mut_ptr());
        if m == 1 {
            let items = n.div_ceil(DECODE_ROWS);
            parallel_for(items, |item| {
                let out_ptr = &out_ptr;
                let end = n.min((item + 1) * DECODE_ROWS);
                let mut j = item * DECODE_ROWS;
                while j < end {
                    let count = (end - j).min(4);
                    let rows: [&[u8]; 4] = std::array::from_fn(|i| row(j + i.min(count - 1)));
                    let dots = A::dot_r4(kind, &rows, xq, tier);
                    for (i, d) in dots.iter().take(count).enumerate() {
                        // SAFETY: each output cell belongs to exactly one work item.
                        unsafe { *out_ptr.0.add(j + i) = *d };
                    }
                    j += count;
                }
            });
            return;
        }
        prefill(tier, kind, data, n, nb, xq, m, out);
    });
}

/// The `m` rows of `x` (`k` values each) quantized into `xq` (`k / A::LEN`
/// blocks per row), over the pool when there are eight rows or more.
fn quantize_rows<A: ActBlock>(kind: Kind, x: &[f32], k: usize, xq: &mut [A]) {
    let (nb, m) = (k / A::LEN, x.len() / k);
    debug_assert_eq!(xq.len(), m * nb);
    if m < 8 {
        for (dst, src) in xq.chunks_mut(nb).zip(x.chunks(k)) {
            A::quantize(kind, src, dst);
        }
    } else {
        let xq_ptr = SendPtr(xq.as_mut_ptr() as *mut f32);
        parallel_for(m, |r| {
            let xq_ptr = &xq_ptr;
            // SAFETY: every activation row is written by exactly one item.
            let dst = unsafe { std::slice::from_raw_parts_mut((xq_ptr.0 as *mut A).add(r * nb), nb) };
            A::quantize(kind, &x[r * k..(r + 1) * k], dst);
        });
    }
}

/// The columns of `out (m, n)` past the first `p` (the rows a packed
/// copy does not hold: `data` in GGUF's layout, `rb` bytes a row) through
/// [`matmul_on`]; the packed drivers call it before they borrow the
/// activation buffer [`matmul_on`] uses too.
#[allow(clippy::too_many_arguments)]
fn matmul_unpacked_rest(tier: CpuTier, kind: Kind, data: &[u8], rb: usize, p: usize, n: usize, k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    if p < n {
        let mut rest = vec![0f32; m * (n - p)];
        matmul_on(tier, kind, &data[p * rb..n * rb], n - p, k, x, m, &mut rest);
        for (o, r) in out.chunks_exact_mut(n).zip(rest.chunks_exact(n - p)) {
            o[p..].copy_from_slice(r);
        }
    }
}

/// The packed drivers' shared shape (`packed`, `packed32`): the first
/// `8 · groups` columns of `out (m, n)` from packed groups of eight weight
/// rows. `decode(g)` gives group `g`'s eight results for the one
/// activation row; `prefill(g, tokens)` gives them as `[token][row]` for
/// `T` activation rows (a ragged last chunk repeats its last row, computed
/// and not written). Work items: two groups (decode), or `tile_groups`
/// groups × 64 activation rows.
fn drive_packed<const T: usize>(
    groups: usize,
    tile_groups: usize,
    (m, n): (usize, usize),
    out: &mut [f32],
    decode: impl Fn(usize) -> [f32; 8] + Sync,
    prefill: impl Fn(usize, [usize; T]) -> [[f32; 8]; T] + Sync,
) {
    const ROWS: usize = 8;
    let out_ptr = SendPtr(out.as_mut_ptr());
    let write = |t: usize, g: usize, v: &[f32; ROWS]| {
        for (r, v) in v.iter().enumerate() {
            // SAFETY: each (token, row) cell belongs to exactly one work item.
            unsafe { *out_ptr.get().add(t * n + g * ROWS + r) = *v };
        }
    };
    if m == 1 {
        parallel_for(groups.div_ceil(2), |item| {
            for g in 2 * item..groups.min(2 * item + 2) {
                write(0, g, &decode(g));
            }
        });
        return;
    }
    let (group_tiles, token_tiles) = (groups.div_ceil(tile_groups), m.div_ceil(TILE_TOKENS));
    parallel_for(group_tiles * token_tiles, |item| {
        let (gt, tt) = (item % group_tiles, item / group_tiles);
        let t_end = m.min((tt + 1) * TILE_TOKENS);
        let mut t = tt * TILE_TOKENS;
        while t < t_end {
            let count = (t_end - t).min(T);
            let tokens: [usize; T] = std::array::from_fn(|i| t + i.min(count - 1));
            for g in gt * tile_groups..groups.min((gt + 1) * tile_groups) {
                for (i, v) in prefill(g, tokens).iter().take(count).enumerate() {
                    write(t + i, g, v);
                }
            }
            t += count;
        }
    });
}

/// Packed groups per work item of [`pack_groups`], between two hand-backs
/// of the mapped pages they were read from.
const RELEASE_GROUPS: usize = 64;

/// The packed copy of `groups` groups of eight weight rows (`rb` bytes
/// each in `data`, GGUF's layout), `group_bytes` each: `pack(g, dst)` fills
/// group `g`. Work items of [`RELEASE_GROUPS`] groups run on the inference
/// pool ([`crate::pool`]),
/// each handing its source rows' mapped pages back when done, so the
/// resident set holds about one item's source per thread beyond the copy.
/// Groups are independent, so the copy is the same whatever the order.
/// Measured (AMD EPYC, 2 threads, quiet, alternating with the one-thread
/// loop it replaced): Llama-3.1-8B-shaped Q4_K load 4.2–5.9 → 1.5–1.7 s,
/// the 1B Q8_0 0.88–1.04 → 0.60–0.61 s; peak RSS within the ±2 MB that
/// the binary's own resident pages vary from run to run.
fn pack_groups(groups: usize, group_bytes: usize, data: &[u8], rb: usize, pack: impl Fn(usize, &mut [u8]) + Sync) -> Vec<u8> {
    const ROWS: usize = 8;
    struct Out(*mut u8);
    // SAFETY: only the address crosses threads; each item writes its own disjoint groups.
    unsafe impl Sync for Out {}
    let mut out = vec![0u8; groups * group_bytes];
    let base = Out(out.as_mut_ptr());
    let work = |item: usize| {
        let base = &base;
        let (g0, g1) = (item * RELEASE_GROUPS, groups.min((item + 1) * RELEASE_GROUPS));
        for g in g0..g1 {
            // SAFETY: group g's bytes lie inside `out` and belong to this item alone.
            let dst = unsafe { std::slice::from_raw_parts_mut(base.0.add(g * group_bytes), group_bytes) };
            pack(g, dst);
        }
        release_rows(data, rb, g0 * ROWS..g1 * ROWS);
    };
    crate::pool::parallel_for(groups.div_ceil(RELEASE_GROUPS), work);
    out
}

/// Lets the mapped pages of weight rows `rows` (`rb` bytes each) of
/// `data` leave the resident set once a packer has copied them
/// ([`crate::mapped::release`]: a no-op for memory that is not a weight
/// mapping; a later read maps the same bytes in again).
fn release_rows(data: &[u8], rb: usize, rows: std::ops::Range<usize>) {
    if let Some(bytes) = data.get(rows.start * rb..rows.end * rb) {
        crate::mapped::release(bytes);
    }
}

/// The prefill half of [`matmul_with`]: `m` quantized activation rows
/// `xq` (`nb` blocks each) against `n` weight rows, tiled over
/// (weight rows × activation rows) on the pool.
#[allow(clippy::too_many_arguments)]
fn prefill<A: ActBlock>(tier: CpuTier, kind: Kind, data: &[u8], n: usize, nb: usize, xq: &[A], m: usize, out: &mut [f32]) {
    let rb = nb * kind.block_bytes();
    let row = |j: usize| &data[j * rb..(j + 1) * rb];
    // Token `t + i` of a group of four is `t + min(i, count - 1)`: a
    // ragged last group repeats its last row.
    let group_row = |t: usize, count: usize, i: usize| {
        let r = t + i.min(count - 1);
        &xq[r * nb..(r + 1) * nb]
    };
    let out_ptr = SendPtr(out.as_mut_ptr());
    XQ_SCALES4.with(|cell| {
        let mut buf = cell.borrow_mut();
        let len = if A::SCALES4 { m.div_ceil(4) * nb } else { 0 };
        if buf.len() < len {
            buf.resize(len, ZERO_SCALES4);
        }
        let scales4 = &mut buf[..len];
        for (g, out) in scales4.chunks_mut(nb).enumerate() {
            let rows: [&[A]; 4] = std::array::from_fn(|i| group_row(4 * g, (m - 4 * g).min(4), i));
            A::fill_scales4(&rows, out);
        }
        let scales4: &[Scales4] = scales4;
        let row_tiles = n.div_ceil(TILE_ROWS);
        let token_tiles = m.div_ceil(TILE_TOKENS);
        parallel_for(row_tiles * token_tiles, |item| {
            let out_ptr = &out_ptr;
            let (rt, tt) = (item % row_tiles, item / row_tiles);
            let rows = rt * TILE_ROWS..n.min((rt + 1) * TILE_ROWS);
            let t_end = m.min((tt + 1) * TILE_TOKENS);
            let mut t = tt * TILE_TOKENS;
            let quad = |t: usize| {
                let count = (t_end - t).min(4);
                let d = if A::SCALES4 { &scales4[t / 4 * nb..(t / 4 + 1) * nb] } else { &[] };
                Quad { rows: std::array::from_fn(|i| group_row(t, count, i)), d }
            };
            if A::has_x8(kind, tier) {
                while t_end - t >= 8 {
                    let quads = [quad(t), quad(t + 4)];
                    for j in rows.clone() {
                        let dots = A::dot_x8(kind, row(j), &quads, tier);
                        for (i, d) in dots.iter().enumerate() {
                            // SAFETY: each (token, row) cell belongs to exactly one work item.
                            unsafe { *out_ptr.0.add((t + i) * n + j) = *d };
                        }
                    }
                    t += 8;
                }
            }
            while t < t_end {
                let count = (t_end - t).min(4);
                let quad = quad(t);
                for j in rows.clone() {
                    let dots = A::dot_x4(kind, row(j), &quad, tier);
                    for (i, d) in dots.iter().take(count).enumerate() {
                        // SAFETY: each (token, row) cell belongs to exactly one work item.
                        unsafe { *out_ptr.0.add((t + i) * n + j) = *d };
                    }
                }
                t += count;
            }
        });
    });
}
