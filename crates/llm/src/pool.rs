//! The work-item helpers on candle's persistent barrier pool, shared by the
//! quantized matmul ([`crate::qmatmul`]), attention and the element-wise
//! steps of Llama's and Gemma's forwards: [`parallel_for`] over item
//! indices, [`parallel_rows`] over runs of whole rows of one output, and
//! [`SendPtr`], the output pointer the items write their disjoint cells
//! through (the BERT forward's rayon jobs use it too). Owns how work is
//! handed to the pool; never decides what the work is or how it is tiled
//! (the callers cut their items).

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

/// An output buffer's base pointer, shared by the work items that write
/// disjoint parts of it. Closures take `&SendPtr` (or call [`SendPtr::get`])
/// rather than capture the raw field, which is neither `Send` nor `Sync`.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr(pub(crate) *mut f32);

// SAFETY: a SendPtr only carries the address across threads; every
// dereference is an `unsafe` block of its user's that proves the work
// items write disjoint cells inside the buffer, and the buffer outlives
// the parallel call (the pool, or rayon, returns only when every item is
// done).
unsafe impl Sync for SendPtr {}
// SAFETY: as for Sync.
unsafe impl Send for SendPtr {}

impl SendPtr {
    pub(crate) fn get(self) -> *mut f32 {
        self.0
    }
}
