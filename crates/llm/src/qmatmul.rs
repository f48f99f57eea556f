//! Quantized matrix multiplication for the CPU paths where candle's is slow.
//!
//! candle 0.11 multiplies Q4_1 weights with a scalar (generic) dot product,
//! one weight row per activation row, and its Q8_0 and K-quant kernels do
//! one vector dot per (row, token), called per layer through a tensor round
//! trip. [`QLinear`] replaces candle's `QMatMul` for Q4_1, Q5_0, Q8_0, Q4_K and
//! Q6_K weights on the CPU with AVX2/FMA kernels (runtime dispatch, scalar
//! fallback elsewhere):
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
//! - on aarch64 the 32-value formats use NEON (bit for bit the scalar
//!   reference), the K-quants the scalar reference;
//! - the tiles run on candle's persistent barrier pool (the calling thread
//!   works too, idle workers spin briefly before parking), not a pool
//!   spun up per op.
//! The weights stay in GGUF's block layout inside the loaded `QTensor`
//! (no copy). Every other quantization (and every non-CPU device) goes to
//! candle's `QMatMul` unchanged; `TRESOR_QMATMUL=candle` forces candle
//! everywhere, for A/B measurements. Owns the arithmetic of `x · Wᵀ` only;
//! never loads files or knows about layers.

use std::cell::RefCell;
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{CpuStorage, CustomOp1, Layout, Module, Result, Shape, Tensor};
use half::f16;

/// Values per quantization block (Q4_1, Q8_0 and the activations' blocks).
const QK: usize = 32;
/// Values per K-quant block (Q4_K, Q6_K and their Q8_K activation blocks).
const QK_K: usize = 256;
/// Bytes of one GGUF Q4_1 block: f16 d, f16 m, 16 bytes of nibbles.
const Q4_1_BYTES: usize = 20;
/// Bytes of one GGUF Q8_0 block: f16 d, 32 signed bytes.
const Q8_0_BYTES: usize = 34;
/// Bytes of one GGUF Q5_0 block: f16 d, 32 high bits, 16 bytes of nibbles
/// (value = nibble + 16·bit − 16).
const Q5_0_BYTES: usize = 22;
/// Bytes of one GGUF Q4_K block: f16 d, f16 dmin, 12 bytes of packed 6-bit
/// scales and minimums (8 sub-blocks of 32), 128 bytes of nibbles.
const Q4_K_BYTES: usize = 144;
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
    Q4_1,
    Q5_0,
    Q8_0,
    Q4K,
    Q6K,
}

impl Kind {
    fn of(dtype: GgmlDType) -> Option<Kind> {
        match dtype {
            GgmlDType::Q4_1 => Some(Kind::Q4_1),
            GgmlDType::Q5_0 => Some(Kind::Q5_0),
            GgmlDType::Q8_0 => Some(Kind::Q8_0),
            GgmlDType::Q4K => Some(Kind::Q4K),
            GgmlDType::Q6K => Some(Kind::Q6K),
            _ => None,
        }
    }

    /// Values per weight block.
    fn block_len(self) -> usize {
        match self {
            Kind::Q4_1 | Kind::Q5_0 | Kind::Q8_0 => QK,
            Kind::Q4K | Kind::Q6K => QK_K,
        }
    }

    fn block_bytes(self) -> usize {
        match self {
            Kind::Q4_1 => Q4_1_BYTES,
            Kind::Q5_0 => Q5_0_BYTES,
            Kind::Q8_0 => Q8_0_BYTES,
            Kind::Q4K => Q4_K_BYTES,
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
                    return Ok(QLinear::Own(Arc::new(OwnWeights { t, kind, n, k })));
                }
            }
        }
        Ok(QLinear::Candle(QMatMul::from_arc(t)?))
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
            QLinear::Own(w) => {
                let data = w.t.data()?;
                matmul(w.kind, &data, n, k, x, m, out);
            }
            QLinear::Candle(q) => {
                let xt = Tensor::from_slice(x, (m, k), &candle_core::Device::Cpu)?;
                let y = q.forward(&xt)?.flatten_all()?.to_vec1::<f32>()?;
                out.copy_from_slice(&y);
            }
        }
        Ok(())
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

fn forced_candle() -> bool {
    std::env::var("TRESOR_QMATMUL").map(|v| v.eq_ignore_ascii_case("candle")).unwrap_or(false)
}

/// Quantized weights in GGUF's own block layout, `n` rows of `k` values,
/// read in place from the loaded tensor.
pub struct OwnWeights {
    t: Arc<QTensor>,
    kind: Kind,
    n: usize,
    k: usize,
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
    fn dot_x4(kind: Kind, w: &[u8], xs: &Quad<Self>, avx2: bool) -> [f32; 4];
    /// Whether [`ActBlock::dot_x8`] has a kernel for `kind`.
    fn has_x8(_kind: Kind, _avx2: bool) -> bool {
        false
    }
    /// One weight row with eight activation rows (two groups of four):
    /// the weight block is expanded once for all eight (Q5_0's bits cost
    /// as much as two tokens' products). Only where `has_x8`.
    fn dot_x8(kind: Kind, w: &[u8], quads: &[Quad<Self>; 2], avx2: bool) -> [f32; 8] {
        let (a, b) = (Self::dot_x4(kind, w, &quads[0], avx2), Self::dot_x4(kind, w, &quads[1], avx2));
        std::array::from_fn(|i| if i < 4 { a[i] } else { b[i - 4] })
    }
    /// Four weight rows with one activation row (decode).
    fn dot_r4(kind: Kind, ws: &[&[u8]; 4], x: &[Self], avx2: bool) -> [f32; 4];
}

impl ActBlock for BlockQ8 {
    const LEN: usize = QK;
    const ZERO: Self = ZERO_BLOCK;
    fn buffer() -> &'static std::thread::LocalKey<RefCell<Vec<Self>>> {
        &XQ
    }
    fn quantize(kind: Kind, x: &[f32], out: &mut [Self]) {
        quantize_row(x, out, kind == Kind::Q4_1)
    }
    const SCALES4: bool = true;
    fn fill_scales4(rows: &[&[Self]; 4], out: &mut [Scales4]) {
        for (b, sc) in out.iter_mut().enumerate() {
            sc.d = std::array::from_fn(|i| rows[i][b].d);
            sc.s = std::array::from_fn(|i| rows[i][b].s);
        }
    }
    fn dot_x4(kind: Kind, w: &[u8], xs: &Quad<Self>, avx2: bool) -> [f32; 4] {
        dot_x4(kind, w, xs, avx2)
    }
    fn has_x8(kind: Kind, avx2: bool) -> bool {
        cfg!(target_arch = "x86_64") && avx2 && matches!(kind, Kind::Q5_0 | Kind::Q8_0)
    }
    #[cfg(target_arch = "x86_64")]
    fn dot_x8(kind: Kind, w: &[u8], quads: &[Quad<Self>; 2], avx2: bool) -> [f32; 8] {
        assert!(Self::has_x8(kind, avx2));
        // SAFETY: AVX2, FMA and F16C were detected at run time (has_x8).
        unsafe {
            match kind {
                Kind::Q5_0 => avx2::dot_q8_0_x8::<true>(w, quads),
                _ => avx2::dot_q8_0_x8::<false>(w, quads),
            }
        }
    }
    fn dot_r4(kind: Kind, ws: &[&[u8]; 4], x: &[Self], avx2: bool) -> [f32; 4] {
        dot_r4(kind, ws, x, avx2)
    }
}

impl ActBlock for BlockQ8K {
    const LEN: usize = QK_K;
    const ZERO: Self = ZERO_BLOCK_K;
    fn buffer() -> &'static std::thread::LocalKey<RefCell<Vec<Self>>> {
        &XQ_K
    }
    fn quantize(_: Kind, x: &[f32], out: &mut [Self]) {
        quantize_row_q8k(x, out)
    }
    const SCALES4: bool = false;
    fn fill_scales4(_: &[&[Self]; 4], _: &mut [Scales4]) {}
    fn dot_x4(kind: Kind, w: &[u8], quad: &Quad<Self>, avx2: bool) -> [f32; 4] {
        let xs = &quad.rows;
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: AVX2, FMA and F16C were detected at run time.
            return unsafe {
                match kind {
                    Kind::Q6K => avx2::dot_q6_k::<4>(w, xs),
                    _ => avx2::dot_q4_k::<4>(w, xs),
                }
            };
        }
        let _ = avx2;
        std::array::from_fn(|i| dot_scalar_k(kind, w, xs[i]))
    }
    fn has_x8(_kind: Kind, avx2: bool) -> bool {
        cfg!(target_arch = "x86_64") && avx2
    }
    #[cfg(target_arch = "x86_64")]
    fn dot_x8(kind: Kind, w: &[u8], quads: &[Quad<Self>; 2], avx2: bool) -> [f32; 8] {
        assert!(Self::has_x8(kind, avx2));
        let xs: [&[Self]; 8] = std::array::from_fn(|i| quads[i / 4].rows[i % 4]);
        // SAFETY: AVX2, FMA and F16C were detected at run time (has_x8).
        unsafe {
            match kind {
                Kind::Q6K => avx2::dot_q6_k::<8>(w, &xs),
                _ => avx2::dot_q4_k::<8>(w, &xs),
            }
        }
    }
    fn dot_r4(kind: Kind, ws: &[&[u8]; 4], x: &[Self], avx2: bool) -> [f32; 4] {
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: AVX2, FMA and F16C were detected at run time.
            return std::array::from_fn(|i| unsafe {
                match kind {
                    Kind::Q6K => avx2::dot_q6_k::<1>(ws[i], &[x])[0],
                    _ => avx2::dot_q4_k::<1>(ws[i], &[x])[0],
                }
            });
        }
        let _ = avx2;
        std::array::from_fn(|i| dot_scalar_k(kind, ws[i], x))
    }
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
        let data = w.t.data()?;
        matmul(w.kind, &data, w.n, w.k, x, m, &mut out);
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

/// Runs `f(i)` for every `i < items` on candle's barrier pool (inline when
/// there is one item or the caller is already a pool worker).
pub(crate) fn parallel_for(items: usize, f: impl Fn(usize) + Sync) {
    if items <= 1 {
        (0..items).for_each(f);
        return;
    }
    candle_core::utils::barrier_pool().execute_chunked(items, |range| range.for_each(&f));
}

/// Runs `f(first_row, rows)` over `out` cut into runs of whole rows
/// (`row` values each) on the pool, about 4k values per run; inline when
/// `out` is small (decode). For the element-wise steps of the forward
/// (norms, SiLU·mul, GELU·mul) that were serial between parallel matmuls:
/// Gemma's prefill at two threads spent ~6 % of its time in them.
pub(crate) fn parallel_rows(out: &mut [f32], row: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    const RUN: usize = 4096;
    debug_assert!(row > 0 && out.len() % row == 0, "{} values are no whole rows of {row}", out.len());
    let rows = if row == 0 { 0 } else { out.len() / row };
    let per_item = RUN.div_ceil(row.max(1)).max(1);
    let items = rows.div_ceil(per_item);
    if items <= 1 {
        f(0, out);
        return;
    }
    let ptr = SendPtr(out.as_mut_ptr());
    parallel_for(items, |item| {
        let ptr = &ptr;
        let r0 = item * per_item;
        let r1 = rows.min(r0 + per_item);
        // SAFETY: the items' row ranges are disjoint and inside `out`.
        let chunk = unsafe { std::slice::from_raw_parts_mut(ptr.0.add(r0 * row), (r1 - r0) * row) };
        f(r0, chunk);
    });
}

/// `out (m, n) = x (m, k) · Wᵀ` for weights `data` of `kind`.
fn matmul(kind: Kind, data: &[u8], n: usize, k: usize, x: &[f32], m: usize, out: &mut [f32]) {
    match kind {
        Kind::Q4_1 | Kind::Q5_0 | Kind::Q8_0 => matmul_with::<BlockQ8>(kind, data, n, k, x, m, out),
        Kind::Q4K | Kind::Q6K => matmul_with::<BlockQ8K>(kind, data, n, k, x, m, out),
    }
}

fn matmul_with<A: ActBlock>(kind: Kind, data: &[u8], n: usize, k: usize, x: &[f32], m: usize, out: &mut [f32]) {
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
        let xq: &[A] = xq;
        let row = |j: usize| &data[j * rb..(j + 1) * rb];
        let out_ptr = SendPtr(out.as_mut_ptr());
        let avx2 = has_avx2_fma();
        if m == 1 {
            let items = n.div_ceil(DECODE_ROWS);
            parallel_for(items, |item| {
                let out_ptr = &out_ptr;
                let end = n.min((item + 1) * DECODE_ROWS);
                let mut j = item * DECODE_ROWS;
                while j < end {
                    let count = (end - j).min(4);
                    let rows: [&[u8]; 4] = std::array::from_fn(|i| row(j + i.min(count - 1)));
                    let dots = A::dot_r4(kind, &rows, xq, avx2);
                    for (i, d) in dots.iter().take(count).enumerate() {
                        // SAFETY: each output cell belongs to exactly one work item.
                        unsafe { *out_ptr.0.add(j + i) = *d };
                    }
                    j += count;
                }
            });
            return;
        }
        prefill(kind, data, n, nb, xq, m, out);
    });
}

/// The prefill half of [`matmul_with`]: `m` quantized activation rows
/// `xq` (`nb` blocks each) against `n` weight rows, tiled over
/// (weight rows × activation rows) on the pool.
fn prefill<A: ActBlock>(kind: Kind, data: &[u8], n: usize, nb: usize, xq: &[A], m: usize, out: &mut [f32]) {
    let rb = nb * kind.block_bytes();
    let row = |j: usize| &data[j * rb..(j + 1) * rb];
    // Token `t + i` of a group of four is `t + min(i, count - 1)`: a
    // ragged last group repeats its last row.
    let group_row = |t: usize, count: usize, i: usize| {
        let r = t + i.min(count - 1);
        &xq[r * nb..(r + 1) * nb]
    };
    let out_ptr = SendPtr(out.as_mut_ptr());
    let avx2 = has_avx2_fma();
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
            if A::has_x8(kind, avx2) {
                while t_end - t >= 8 {
                    let quads = [quad(t), quad(t + 4)];
                    for j in rows.clone() {
                        let dots = A::dot_x8(kind, row(j), &quads, avx2);
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
                    let dots = A::dot_x4(kind, row(j), &quad, avx2);
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

struct SendPtr(*mut f32);
unsafe impl Sync for SendPtr {}
unsafe impl Send for SendPtr {}

fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// ggml's `quantize_row_q8_1` (`with_sum`) / `quantize_row_q8_0`: per block,
/// `d = max|x| / 127`, round to nearest.
fn quantize_row(x: &[f32], out: &mut [BlockQ8], with_sum: bool) {
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
        dst.s = if with_sum { f16::from_f32(d * sum as f32).to_f32() } else { 0.0 };
    }
}

/// Dot products of one weight row with four activation rows (prefill).
fn dot_x4(kind: Kind, w: &[u8], xs: &Quad<BlockQ8>, avx2: bool) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2, FMA and F16C were detected at run time.
        return unsafe {
            match kind {
                Kind::Q4_1 => avx2::dot_q4_1_x4(w, xs),
                Kind::Q5_0 => avx2::dot_q8_0_x4::<true>(w, xs),
                _ => avx2::dot_q8_0_x4::<false>(w, xs), // Q8_0: the other 32-value format
            }
        };
    }
    let _ = avx2;
    std::array::from_fn(|i| dot_portable(kind, w, xs.rows[i]))
}

/// Dot products of four weight rows with one activation row (decode).
fn dot_r4(kind: Kind, ws: &[&[u8]; 4], x: &[BlockQ8], avx2: bool) -> [f32; 4] {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: AVX2, FMA and F16C were detected at run time.
        return unsafe {
            match kind {
                Kind::Q4_1 => avx2::dot_q4_1_r4(ws, x),
                Kind::Q5_0 => avx2::dot_q8_0_r4::<true>(ws, x),
                _ => avx2::dot_q8_0_r4::<false>(ws, x), // Q8_0
            }
        };
    }
    let _ = avx2;
    std::array::from_fn(|i| dot_portable(kind, ws[i], x))
}

/// One weight row against one activation row without AVX2: NEON on
/// aarch64, else the scalar reference.
#[cfg(target_arch = "aarch64")]
fn dot_portable(kind: Kind, w: &[u8], x: &[BlockQ8]) -> f32 {
    // SAFETY: NEON is part of every aarch64 CPU.
    unsafe { neon::dot(kind, w, x) }
}

#[cfg(not(target_arch = "aarch64"))]
fn dot_portable(kind: Kind, w: &[u8], x: &[BlockQ8]) -> f32 {
    dot_scalar(kind, w, x)
}

/// The references: ggml's `vec_dot_q4_1_q8_1`, `vec_dot_q5_0_q8_0` and
/// `vec_dot_q8_0_q8_0` in plain Rust.
#[cfg_attr(target_arch = "aarch64", allow(dead_code))] // the tests' reference there
fn dot_scalar(kind: Kind, w: &[u8], x: &[BlockQ8]) -> f32 {
    let mut sum = 0f32;
    for (blk, xb) in w.chunks_exact(kind.block_bytes()).zip(x) {
        let d = f16::from_le_bytes([blk[0], blk[1]]).to_f32();
        match kind {
            Kind::Q4_1 => {
                let m = f16::from_le_bytes([blk[2], blk[3]]).to_f32();
                let mut sumi = 0i32;
                for j in 0..QK / 2 {
                    let q = blk[4 + j];
                    sumi += (q & 0x0F) as i32 * xb.qs[j] as i32 + (q >> 4) as i32 * xb.qs[j + QK / 2] as i32;
                }
                sum += d * xb.d * sumi as f32 + m * xb.s;
            }
            Kind::Q4K | Kind::Q6K => unreachable!("K-quants multiply Q8_K blocks (dot_scalar_k)"),
            Kind::Q5_0 => {
                let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
                let mut sumi = 0i32;
                for j in 0..QK / 2 {
                    let q = blk[6 + j];
                    let lo = ((q & 0x0F) as i32 | (((qh >> j) & 1) << 4) as i32) - 16;
                    let hi = ((q >> 4) as i32 | (((qh >> (j + 16)) & 1) << 4) as i32) - 16;
                    sumi += lo * xb.qs[j] as i32 + hi * xb.qs[j + QK / 2] as i32;
                }
                sum += d * xb.d * sumi as f32;
            }
            Kind::Q8_0 => {
                let sumi: i32 = blk[2..].iter().zip(&xb.qs).map(|(&w, &x)| w as i8 as i32 * x as i32).sum();
                sum += d * xb.d * sumi as f32;
            }
        }
    }
    sum
}

/// ggml's `quantize_row_q8_K` (as candle does it): per 256 values,
/// `d = max / -127` with `max` the value of largest magnitude, round to
/// nearest, and the sums of every 16 quantized values.
fn quantize_row_q8k(x: &[f32], out: &mut [BlockQ8K]) {
    for (src, dst) in x.chunks_exact(QK_K).zip(out.iter_mut()) {
        let (mut max, mut amax) = (0f32, 0f32);
        for &v in src {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *dst = ZERO_BLOCK_K;
            continue;
        }
        let iscale = -127.0 / max;
        for (q, v) in dst.qs.iter_mut().zip(src) {
            *q = (iscale * v).round().clamp(-128.0, 127.0) as i8;
        }
        for (g, sum) in dst.bsums.iter_mut().enumerate() {
            *sum = dst.qs[g * 16..(g + 1) * 16].iter().map(|&q| q as i16).sum();
        }
        dst.d = 1.0 / iscale;
    }
}

/// The 6-bit scales and minimums of a Q4_K block's 8 sub-blocks, unpacked
/// from their 12 bytes (ggml's `get_scale_min_k4`): bytes 0..8 of the result
/// are the scales, 8..16 the minimums.
#[inline(always)]
fn q4_k_scales(packed: &[u8]) -> [u32; 4] {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let word = |i: usize| u32::from_le_bytes([packed[4 * i], packed[4 * i + 1], packed[4 * i + 2], packed[4 * i + 3]]);
    let (u0, u1, u2) = (word(0), word(1), word(2));
    [
        u0 & KMASK1,
        (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4),
        u1 & KMASK1,
        ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4),
    ]
}

/// The references for the K-quants: ggml's `vec_dot_q4_K_q8_K` and
/// `vec_dot_q6_K_q8_K` in plain Rust, from the blocks' dequantization
/// formulas (Q4_K: `d·sc·q − dmin·m` per sub-block of 32; Q6_K:
/// `d·sc·(q − 32)` per sub-block of 16, q from 4 low and 2 high bits).
fn dot_scalar_k(kind: Kind, w: &[u8], x: &[BlockQ8K]) -> f32 {
    let mut sum = 0f32;
    for (blk, xb) in w.chunks_exact(kind.block_bytes()).zip(x) {
        match kind {
            Kind::Q4K => {
                let d = f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                let dmin = f16::from_le_bytes([blk[2], blk[3]]).to_f32();
                let sm: [u8; 16] = unsafe { std::mem::transmute(q4_k_scales(&blk[4..16])) };
                let qs = &blk[16..];
                let (mut sumi, mut summ) = (0i32, 0i32);
                for j in 0..QK_K / 64 {
                    for half in 0..2 {
                        let sub = 2 * j + half;
                        let mut dot = 0i32;
                        for l in 0..32 {
                            let q = if half == 0 { qs[32 * j + l] & 0x0F } else { qs[32 * j + l] >> 4 };
                            dot += q as i32 * xb.qs[32 * sub + l] as i32;
                        }
                        sumi += dot * sm[sub] as i32;
                        summ += sm[8 + sub] as i32 * (xb.bsums[2 * sub] as i32 + xb.bsums[2 * sub + 1] as i32);
                    }
                }
                sum += xb.d * (d * sumi as f32 - dmin * summ as f32);
            }
            Kind::Q6K => {
                let (ql, qh, sc) = (&blk[..128], &blk[128..192], &blk[192..208]);
                let d = f16::from_le_bytes([blk[208], blk[209]]).to_f32();
                let mut q = [0i32; QK_K];
                for n in 0..2 {
                    for l in 0..32 {
                        let (lo, hi, h) = (ql[64 * n + l], ql[64 * n + l + 32], qh[32 * n + l] as i32);
                        q[128 * n + l] = (lo & 0x0F) as i32 | ((h & 3) << 4);
                        q[128 * n + l + 32] = (hi & 0x0F) as i32 | (((h >> 2) & 3) << 4);
                        q[128 * n + l + 64] = (lo >> 4) as i32 | (((h >> 4) & 3) << 4);
                        q[128 * n + l + 96] = (hi >> 4) as i32 | (((h >> 6) & 3) << 4);
                    }
                }
                let mut sumi = 0i32;
                for g in 0..QK_K / 16 {
                    let dot: i32 = (16 * g..16 * g + 16).map(|i| (q[i] - 32) * xb.qs[i] as i32).sum();
                    sumi += sc[g] as i8 as i32 * dot;
                }
                sum += xb.d * d * sumi as f32;
            }
            Kind::Q4_1 | Kind::Q5_0 | Kind::Q8_0 => unreachable!("32-value formats multiply Q8 blocks (dot_scalar)"),
        }
    }
    sum
}

/// The 32-value formats on aarch64 (Apple Silicon, ARM laptops): NEON is
/// part of every aarch64 CPU, so no run-time check. One weight row against
/// one activation row with widening multiplies (`smull`, pairwise `saddlp`):
/// exact integer sums, the float steps in [`dot_scalar`]'s order, so the
/// results equal the scalar reference bit for bit. K-quants stay scalar
/// there. Compile-checked on x86 hosts with
/// `cargo check -p tresor-llm --target aarch64-unknown-linux-gnu`.
#[cfg(target_arch = "aarch64")]
mod neon {
    use super::{BlockQ8, Kind, QK};
    use half::f16;
    use std::arch::aarch64::*;

    /// The 32 signed weights of a Q8_0, Q5_0 or Q4_1 block as two vectors
    /// (values 0..16 and 16..32; Q4_1 unsigned nibbles, 0..15).
    #[inline(always)]
    unsafe fn weights(kind: Kind, blk: *const u8) -> (int8x16_t, int8x16_t) {
        match kind {
            Kind::Q8_0 => (vld1q_s8(blk.add(2) as *const i8), vld1q_s8(blk.add(18) as *const i8)),
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
            Kind::Q4K | Kind::Q6K => unreachable!("K-quants have no NEON kernel"),
        }
    }

    /// Σ w·x over 16 lanes as four i32 lanes (products fit i16: |w|, |x| ≤ 127).
    #[inline(always)]
    unsafe fn dot16(w: int8x16_t, x: int8x16_t) -> int32x4_t {
        let lo = vmull_s8(vget_low_s8(w), vget_low_s8(x));
        let hi = vmull_high_s8(w, x);
        vaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi))
    }

    /// One Q8_0 / Q5_0 / Q4_1 weight row against one activation row.
    pub(super) unsafe fn dot(kind: Kind, w: &[u8], x: &[BlockQ8]) -> f32 {
        let bytes = kind.block_bytes();
        let nb = w.len() / bytes;
        assert!(x.len() >= nb);
        let mut sum = 0f32;
        for b in 0..nb {
            let blk = w.as_ptr().add(b * bytes);
            let xb = x.get_unchecked(b);
            let (w0, w1) = weights(kind, blk);
            let (x0, x1) = (vld1q_s8(xb.qs.as_ptr()), vld1q_s8(xb.qs.as_ptr().add(16)));
            let sumi = vaddvq_s32(vaddq_s32(dot16(w0, x0), dot16(w1, x1)));
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
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BlockQ8, BlockQ8K, Quad, Scales4, Q4_1_BYTES, Q4_K_BYTES, Q5_0_BYTES, Q6_K_BYTES, Q8_0_BYTES};
    use std::arch::x86_64::*;

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// A block's f16 scale (and, for Q4_1, its f16 minimum right after it)
    /// as f32 lanes `[d, m, _, _]`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scales(blk: *const u8) -> __m128 {
        _mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(blk as *const i32)))
    }

    /// An activation block's `[d, s, 0, 0]` (adjacent f32 fields).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn act_scales(xb: &BlockQ8) -> __m128 {
        _mm_castsi128_ps(_mm_loadl_epi64(&xb.d as *const f32 as *const __m128i))
    }

    /// The 32 nibbles of a Q4_1 block as bytes (elements 0..16 from the low
    /// nibbles, 16..32 from the high ones).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn nibbles(blk: *const u8, low: __m128i) -> __m256i {
        let packed = _mm_loadu_si128(blk.add(4) as *const __m128i);
        let lo = _mm_and_si128(packed, low);
        let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
        _mm256_set_m128i(hi, lo)
    }

    /// Σ u8 × i8 over 32 bytes as 8 f32 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dot_u8_i8(u: __m256i, i: __m256i, ones: __m256i) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(u, i), ones))
    }

    /// Q4_1 block product: `prod = [d·dx, m·sx]`; the integer dot scaled by
    /// lane 0 goes into `acc`, lane 1 (the minimum's term) into `mins`.
    macro_rules! q4_1_step {
        ($dm:expr, $wq:expr, $xb:expr, $xq:expr, $acc:ident, $mins:ident, $ones:expr) => {{
            let prod = _mm_mul_ps($dm, act_scales($xb));
            $acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(prod), dot_u8_i8($wq, $xq, $ones), $acc);
            $mins = _mm_add_ps($mins, prod);
        }};
    }

    /// `hsum(acc) + mins[1]` for Q4_1.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn finish_q4_1(acc: __m256, mins: __m128) -> f32 {
        hsum(acc) + _mm_cvtss_f32(_mm_movehdup_ps(mins))
    }

    /// Decode streams weights from memory four rows at a time; the rows
    /// of a matrix are contiguous, so while one group is multiplied the
    /// next group's bytes (`next`, proportionally to the progress `off`)
    /// are prefetched. Prefetching never faults, past the end included.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prefetch_next(next: *const u8, off: usize) {
        _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(off) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(off + 64) as *const i8);
    }

    /// Four Q4_1 weight rows against one activation row (decode).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_q4_1_r4(ws: &[&[u8]; 4], x: &[BlockQ8]) -> [f32; 4] {
        let nb = ws[0].len() / Q4_1_BYTES;
        assert!(x.len() >= nb && ws.iter().all(|w| w.len() == ws[0].len()));
        let low = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let (mut a0, mut a1, mut a2, mut a3) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut m0, mut m1, mut m2, mut m3) = (_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps());
        let (p0, p1, p2, p3) = (ws[0].as_ptr(), ws[1].as_ptr(), ws[2].as_ptr(), ws[3].as_ptr());
        let next = p3.wrapping_add(ws[3].len());
        for b in 0..nb {
            prefetch_next(next, b * 4 * Q4_1_BYTES);
            let xb = x.get_unchecked(b);
            let xq = _mm256_loadu_si256(xb.qs.as_ptr() as *const __m256i);
            let o = b * Q4_1_BYTES;
            q4_1_step!(scales(p0.add(o)), nibbles(p0.add(o), low), xb, xq, a0, m0, ones);
            q4_1_step!(scales(p1.add(o)), nibbles(p1.add(o), low), xb, xq, a1, m1, ones);
            q4_1_step!(scales(p2.add(o)), nibbles(p2.add(o), low), xb, xq, a2, m2, ones);
            q4_1_step!(scales(p3.add(o)), nibbles(p3.add(o), low), xb, xq, a3, m3, ones);
        }
        [finish_q4_1(a0, m0), finish_q4_1(a1, m1), finish_q4_1(a2, m2), finish_q4_1(a3, m3)]
    }

    /// The four products `dd = d · [dx0, dx1, dx2, dx3]` (in both 128-bit
    /// halves) of a weight block scale `d` (all lanes) with four rows'
    /// activation scales, and `dd`'s lane `I` in every lane.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scale_products(d: __m256, sc: &Scales4) -> __m256 {
        _mm256_mul_ps(d, _mm256_broadcast_ps(&*(sc.d.as_ptr() as *const __m128)))
    }

    macro_rules! lane {
        ($v:expr, $i:literal) => {
            _mm256_shuffle_ps::<{ $i * 0x55 }>($v, $v)
        };
    }

    /// One Q4_1 weight row against four activation rows (prefill): the
    /// block's four scale products in one multiply, its minimum's four
    /// terms (`m · s`) in one more.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_q4_1_x4(w: &[u8], quad: &Quad<BlockQ8>) -> [f32; 4] {
        let xs = &quad.rows;
        let nb = w.len() / Q4_1_BYTES;
        assert!(xs.iter().all(|x| x.len() >= nb) && quad.d.len() >= nb);
        let low = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let (mut a0, mut a1, mut a2, mut a3) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        let mut mins = _mm_setzero_ps();
        let (x0, x1, x2, x3) = (xs[0].as_ptr(), xs[1].as_ptr(), xs[2].as_ptr(), xs[3].as_ptr());
        let wp = w.as_ptr();
        for b in 0..nb {
            let blk = wp.add(b * Q4_1_BYTES);
            let sc = quad.d.get_unchecked(b);
            let dd = scale_products(scale_splat(blk), sc);
            let m = _mm256_castps256_ps128(scale_splat(blk.add(2)));
            mins = _mm_add_ps(mins, _mm_mul_ps(m, _mm_load_ps(sc.s.as_ptr())));
            let wq = nibbles(blk, low);
            macro_rules! tok {
                ($xp:expr, $acc:ident, $i:literal) => {{
                    let xq = _mm256_loadu_si256((*$xp.add(b)).qs.as_ptr() as *const __m256i);
                    $acc = _mm256_fmadd_ps(lane!(dd, $i), dot_u8_i8(wq, xq, ones), $acc);
                }};
            }
            tok!(x0, a0, 0);
            tok!(x1, a1, 1);
            tok!(x2, a2, 2);
            tok!(x3, a3, 3);
        }
        let mut m = [0f32; 4];
        _mm_storeu_ps(m.as_mut_ptr(), mins);
        [hsum(a0) + m[0], hsum(a1) + m[1], hsum(a2) + m[2], hsum(a3) + m[3]]
    }

    /// Q8_0 block product: the sign trick (|w| as u8 times x with w's sign)
    /// feeds `maddubs`; scaled by `d·dx`.
    /// `$prod` is the two blocks' scale product in every lane.
    macro_rules! q8_0_step {
        ($prod:expr, $wq:expr, $wabs:expr, $xb:expr, $acc:expr, $ones:expr) => {{
            let xq = _mm256_loadu_si256($xb.qs.as_ptr() as *const __m256i);
            $acc = _mm256_fmadd_ps($prod, dot_u8_i8($wabs, _mm256_sign_epi8(xq, $wq), $ones), $acc);
        }};
    }

    /// The f16 at `p` as f32 in all eight lanes. A one-lane conversion
    /// (`_mm_cvtph_ps` of `_mm_cvtsi32_si128`, only lane 0 used) let LLVM
    /// load the half with `vpinsrw` *into* a live register, often an
    /// accumulator: a false dependency that chained every block's scale
    /// to the previous block's last FMA, and Q8_0 prefill ran at ~5 cycles
    /// per 32 values. A broadcast writes the whole register.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scale_splat(p: *const u8) -> __m256 {
        _mm256_cvtph_ps(_mm_set1_epi16(std::ptr::read_unaligned(p as *const i16)))
    }

    /// The 32 signed weights of a Q8_0 block (`Q5 = false`) or a Q5_0 block
    /// (`Q5 = true`: nibbles, and 0xF0 or-ed in where the block's high bit
    /// is clear, which is `nibble + 16·bit − 16` as i8, as ggml does it).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn weights_8<const Q5: bool>(blk: *const u8) -> __m256i {
        if !Q5 {
            return _mm256_loadu_si256(blk.add(2) as *const __m256i);
        }
        let qh = std::ptr::read_unaligned(blk.add(2) as *const u32);
        let q = nibbles(blk.add(2), _mm_set1_epi8(0x0F)); // nibbles() skips 4 bytes: qs at 6
        // byte j = 0xFF where bit j of qh is set
        let spread = _mm256_shuffle_epi8(_mm256_set1_epi32(qh as i32), _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0));
        let bit_set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe)), _mm256_set1_epi64x(-1));
        _mm256_or_si256(q, _mm256_andnot_si256(bit_set, _mm256_set1_epi8(0xF0u8 as i8)))
    }

    /// Four Q8_0 (or Q5_0) weight rows against one activation row (decode).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_q8_0_r4<const Q5: bool>(ws: &[&[u8]; 4], x: &[BlockQ8]) -> [f32; 4] {
        let bytes = if Q5 { Q5_0_BYTES } else { Q8_0_BYTES };
        let nb = ws[0].len() / bytes;
        assert!(x.len() >= nb && ws.iter().all(|w| w.len() == ws[0].len()));
        let ones = _mm256_set1_epi16(1);
        let (mut a0, mut a1, mut a2, mut a3) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        let (p0, p1, p2, p3) = (ws[0].as_ptr(), ws[1].as_ptr(), ws[2].as_ptr(), ws[3].as_ptr());
        let next = p3.wrapping_add(ws[3].len());
        for b in 0..nb {
            prefetch_next(next, b * 4 * bytes);
            _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(b * 4 * bytes + 128) as *const i8);
            let xb = x.get_unchecked(b);
            let dx = _mm256_broadcast_ss(&xb.d);
            let o = b * bytes;
            macro_rules! row {
                ($p:expr, $acc:ident) => {{
                    let blk = $p.add(o);
                    let wq = weights_8::<Q5>(blk);
                    q8_0_step!(_mm256_mul_ps(scale_splat(blk), dx), wq, _mm256_sign_epi8(wq, wq), xb, $acc, ones);
                }};
            }
            row!(p0, a0);
            row!(p1, a1);
            row!(p2, a2);
            row!(p3, a3);
        }
        [hsum(a0), hsum(a1), hsum(a2), hsum(a3)]
    }

    /// One Q8_0 (or Q5_0) weight row against four activation rows
    /// (prefill): the block's four scale products in one multiply.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_q8_0_x4<const Q5: bool>(w: &[u8], quad: &Quad<BlockQ8>) -> [f32; 4] {
        let xs = &quad.rows;
        let bytes = if Q5 { Q5_0_BYTES } else { Q8_0_BYTES };
        let nb = w.len() / bytes;
        assert!(xs.iter().all(|x| x.len() >= nb) && quad.d.len() >= nb);
        let ones = _mm256_set1_epi16(1);
        let (mut a0, mut a1, mut a2, mut a3) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
        let (x0, x1, x2, x3) = (xs[0].as_ptr(), xs[1].as_ptr(), xs[2].as_ptr(), xs[3].as_ptr());
        let wp = w.as_ptr();
        for b in 0..nb {
            let blk = wp.add(b * bytes);
            let wq = weights_8::<Q5>(blk);
            let wabs = _mm256_sign_epi8(wq, wq);
            let dd = scale_products(scale_splat(blk), quad.d.get_unchecked(b));
            q8_0_step!(lane!(dd, 0), wq, wabs, &*x0.add(b), a0, ones);
            q8_0_step!(lane!(dd, 1), wq, wabs, &*x1.add(b), a1, ones);
            q8_0_step!(lane!(dd, 2), wq, wabs, &*x2.add(b), a2, ones);
            q8_0_step!(lane!(dd, 3), wq, wabs, &*x3.add(b), a3, ones);
        }
        [hsum(a0), hsum(a1), hsum(a2), hsum(a3)]
    }

    /// One Q8_0 (or Q5_0) weight row against eight activation rows (two
    /// groups of four, prefill): each weight block expanded once for all
    /// eight.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_q8_0_x8<const Q5: bool>(w: &[u8], quads: &[Quad<BlockQ8>; 2]) -> [f32; 8] {
        let bytes = if Q5 { Q5_0_BYTES } else { Q8_0_BYTES };
        let nb = w.len() / bytes;
        assert!(quads.iter().all(|q| q.rows.iter().all(|x| x.len() >= nb) && q.d.len() >= nb));
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); 8];
        let xp: [*const BlockQ8; 8] = std::array::from_fn(|i| quads[i / 4].rows[i % 4].as_ptr());
        let wp = w.as_ptr();
        for b in 0..nb {
            let blk = wp.add(b * bytes);
            let wq = weights_8::<Q5>(blk);
            let wabs = _mm256_sign_epi8(wq, wq);
            let dw = scale_splat(blk);
            let lo = scale_products(dw, quads[0].d.get_unchecked(b));
            let hi = scale_products(dw, quads[1].d.get_unchecked(b));
            q8_0_step!(lane!(lo, 0), wq, wabs, &*xp[0].add(b), acc[0], ones);
            q8_0_step!(lane!(lo, 1), wq, wabs, &*xp[1].add(b), acc[1], ones);
            q8_0_step!(lane!(lo, 2), wq, wabs, &*xp[2].add(b), acc[2], ones);
            q8_0_step!(lane!(lo, 3), wq, wabs, &*xp[3].add(b), acc[3], ones);
            q8_0_step!(lane!(hi, 0), wq, wabs, &*xp[4].add(b), acc[4], ones);
            q8_0_step!(lane!(hi, 1), wq, wabs, &*xp[5].add(b), acc[5], ones);
            q8_0_step!(lane!(hi, 2), wq, wabs, &*xp[6].add(b), acc[6], ones);
            q8_0_step!(lane!(hi, 3), wq, wabs, &*xp[7].add(b), acc[7], ones);
        }
        std::array::from_fn(|i| hsum(acc[i]))
    }

    /// `_mm256_shuffle_epi8` patterns that broadcast 16-bit lane `i` of a
    /// 128-bit half to all eight lanes of that half (a table: built from
    /// scalars in the loop, the vector cost ~40 instructions per use).
    const BROADCAST_I16: [[u8; 32]; 8] = {
        let mut t = [[0u8; 32]; 8];
        let mut i = 0;
        while i < 8 {
            let mut b = 0;
            while b < 32 {
                t[i][b] = (2 * i + b % 2) as u8;
                b += 1;
            }
            i += 1;
        }
        t
    };

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn broadcast_i16(i: usize) -> __m256i {
        _mm256_loadu_si256(BROADCAST_I16.as_ptr().add(i) as *const __m256i)
    }

    /// `T` Q8_K activation rows against one Q4_K weight row: each block's
    /// nibbles and scales are unpacked once and multiplied with all `T`
    /// rows (prefill: T = 4; decode: T = 1).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_q4_k<const T: usize>(w: &[u8], xs: &[&[BlockQ8K]; T]) -> [f32; T] {
        let nb = w.len() / Q4_K_BYTES;
        assert!(xs.iter().all(|x| x.len() >= nb));
        let m4 = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); T];
        let mut acc_m = [_mm256_setzero_ps(); T];
        let wp = w.as_ptr();
        for b in 0..nb {
            let blk = wp.add(b * Q4_K_BYTES);
            if T == 1 {
                _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(3 * Q4_K_BYTES) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(3 * Q4_K_BYTES + 64) as *const i8);
                _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(3 * Q4_K_BYTES + 128) as *const i8);
            }
            let (d, neg_dmin) = (scale_splat(blk), _mm256_sub_ps(_mm256_setzero_ps(), scale_splat(blk.add(2))));
            let u = super::q4_k_scales(std::slice::from_raw_parts(blk.add(4), 12));
            let packed = _mm_set_epi32(u[3] as i32, u[2] as i32, u[1] as i32, u[0] as i32);
            let mins_scales = _mm256_cvtepu8_epi16(packed);
            // each sub-block's minimum twice: it multiplies the two 16-value
            // sums of its 32 activations in one `madd`
            let mins2 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(packed, packed));
            let sc128 = _mm256_castsi256_si128(mins_scales);
            let scales = _mm256_set_m128i(sc128, sc128);
            let mut sumi = [_mm256_setzero_si256(); T];
            let qs = blk.add(16);
            for j in 0..4 {
                let bits = _mm256_loadu_si256(qs.add(32 * j) as *const __m256i);
                let lo = _mm256_and_si256(bits, m4);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
                let s_lo = _mm256_shuffle_epi8(scales, broadcast_i16(2 * j));
                let s_hi = _mm256_shuffle_epi8(scales, broadcast_i16(2 * j + 1));
                for t in 0..T {
                    let q8 = xs[t].get_unchecked(b).qs.as_ptr().add(64 * j);
                    let p_lo = _mm256_madd_epi16(s_lo, _mm256_maddubs_epi16(lo, _mm256_loadu_si256(q8 as *const __m256i)));
                    let p_hi = _mm256_madd_epi16(s_hi, _mm256_maddubs_epi16(hi, _mm256_loadu_si256(q8.add(32) as *const __m256i)));
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p_lo, p_hi));
                }
            }
            for t in 0..T {
                let xb = xs[t].get_unchecked(b);
                let dx = _mm256_broadcast_ss(&xb.d);
                acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, dx), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
                let bsums = _mm256_loadu_si256(xb.bsums.as_ptr() as *const __m256i);
                let prod = _mm256_madd_epi16(mins2, bsums);
                acc_m[t] = _mm256_fmadd_ps(_mm256_mul_ps(neg_dmin, dx), _mm256_cvtepi32_ps(prod), acc_m[t]);
            }
        }
        std::array::from_fn(|t| hsum(acc[t]) + hsum(acc_m[t]))
    }

    /// `T` Q8_K activation rows against one Q6_K weight row. The 6-bit
    /// values are used unsigned (0..64) in `maddubs`; their offset of 32 is
    /// taken off once per block through the activations' 16-value sums.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn dot_q6_k<const T: usize>(w: &[u8], xs: &[&[BlockQ8K]; T]) -> [f32; T] {
        let nb = w.len() / Q6_K_BYTES;
        assert!(xs.iter().all(|x| x.len() >= nb));
        let m4 = _mm256_set1_epi8(0x0F);
        let m2 = _mm256_set1_epi8(3);
        let mut acc = [_mm256_setzero_ps(); T];
        let wp = w.as_ptr();
        for b in 0..nb {
            let blk = wp.add(b * Q6_K_BYTES);
            if T == 1 {
                for line in 0..4 {
                    _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(3 * Q6_K_BYTES + 64 * line) as *const i8);
                }
            }
            let (ql, qh) = (blk, blk.add(128));
            let d = scale_splat(blk.add(208));
            // the 16 scales as i16 lanes (for the offset term)
            let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(blk.add(192) as *const __m128i));
            let mut sumi = [_mm256_setzero_si256(); T];
            for n in 0..2 {
                let bits1 = _mm256_loadu_si256(ql.add(64 * n) as *const __m256i);
                let bits2 = _mm256_loadu_si256(ql.add(64 * n + 32) as *const __m256i);
                let bits_h = _mm256_loadu_si256(qh.add(32 * n) as *const __m256i);
                // bits 4..6 of each value: 2-bit pairs of `bits_h`, shifted up
                macro_rules! high {
                    ($shift:literal) => {
                        _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<$shift>(bits_h), m2))
                    };
                }
                let q6 = [
                    _mm256_or_si256(_mm256_and_si256(bits1, m4), high!(0)),
                    _mm256_or_si256(_mm256_and_si256(bits2, m4), high!(2)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(bits1), m4), high!(4)),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16::<4>(bits2), m4), high!(6)),
                ];
                for (i, wq) in q6.iter().enumerate() {
                    let c = 4 * n + i;
                    // values 32c..32c+16 have scale 2c (low 128-bit half of the
                    // maddubs pairs), 32c+16..32c+32 scale 2c+1 (high half)
                    let sc = |g: usize| _mm_set1_epi16(*(blk.add(192 + g) as *const i8) as i16);
                    let s = _mm256_set_m128i(sc(2 * c + 1), sc(2 * c));
                    for t in 0..T {
                        let q8 = xs[t].get_unchecked(b).qs.as_ptr().add(32 * c);
                        let p = _mm256_maddubs_epi16(*wq, _mm256_loadu_si256(q8 as *const __m256i));
                        sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(s, p));
                    }
                }
            }
            for t in 0..T {
                let xb = xs[t].get_unchecked(b);
                // Σ_g sc_g · 32 · bsum_g: the offset the unsigned values carried
                let bsums = _mm256_loadu_si256(xb.bsums.as_ptr() as *const __m256i);
                let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(sc16, bsums));
                acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(&xb.d)), _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi[t], offset)), acc[t]);
            }
        }
        let mut out = [0f32; T];
        for t in 0..T {
            out[t] = hsum(acc[t]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
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
}
