//! Causal attention over the host KV cache (Llama's and Gemma's own
//! forwards): softmax(q·kᵀ·scale)·v per query head, grouped-query heads
//! reading their kv head in place, optional sliding window. Owns the
//! prefill tiling and the AVX2/FMA dot and axpy kernels, over keys and
//! values stored as f32 or f16 ([`KvElem`]: f16 rows are widened to f32 as
//! they are loaded, exactly, so an f16 cache gives the bits of an f32 cache
//! holding the same rounded values); it never allocates per call beyond a
//! thread-local score buffer, and it never touches the cache layout
//! (`(position, kv head, head dim)` rows, written by [`crate::kv`]).

use half::f16;

use crate::pool::{parallel_for, SendPtr};

/// An element of the KV cache: f32, or f16 (half the memory, widened
/// exactly to f32 on load).
pub(crate) trait KvElem: Copy + Send + Sync + 'static {
    fn to_f32(self) -> f32;
    fn from_f32(x: f32) -> Self;
    /// Eight consecutive elements at `p` as f32 lanes.
    /// SAFETY: `p..p + 8` readable; called only inside the AVX2/FMA/F16C kernels.
    #[cfg(target_arch = "x86_64")]
    unsafe fn load8(p: *const Self) -> std::arch::x86_64::__m256;
}

impl KvElem for f32 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f32) -> std::arch::x86_64::__m256 {
        std::arch::x86_64::_mm256_loadu_ps(p)
    }
}

impl KvElem for f16 {
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        f16::from_f32(x)
    }
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn load8(p: *const f16) -> std::arch::x86_64::__m256 {
        use std::arch::x86_64::*;
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }
}

/// One call's inputs: `t` queries (t, nh · hd) at positions
/// `pos..pos + t` over the first `pos + t` cached keys and values
/// (pos + t, nkv · hd); query head `h` reads kv head `h / (nh / nkv)` in
/// place. Scores are scaled by `scale` (1/√hd for Llama); with
/// `window = Some(w)` each query sees only the last `w` positions up to
/// and including its own (a sliding-window layer: the query at position
/// `p` reads keys `p + 1 - w ..= p`).
#[derive(Clone, Copy)]
pub(crate) struct Heads<'a, T: KvElem = f32> {
    pub q: &'a [f32],
    pub k: &'a [T],
    pub v: &'a [T],
    pub t: usize,
    pub pos: usize,
    pub nh: usize,
    pub nkv: usize,
    pub hd: usize,
    pub scale: f32,
    pub window: Option<usize>,
}

/// Causal attention of `a` into `out` (t, nh · hd).
///
/// Prefill (`t ≥ QUERY_BLOCK`) works on tiles: one kv head and
/// `QUERY_BLOCK` consecutive queries of every query head that reads it,
/// so each cached key and value row is loaded once per tile instead of
/// once per (query, head) — at 2,048 tokens the per-row walk over the
/// cache was two thirds of SmolLM2's prefill. Decode keeps one item per
/// head (more items to share out than kv heads). Both give the same bits:
/// the same dot products, max, sum and accumulation order.
pub(crate) fn attend<T: KvElem>(a: &Heads<T>, out: &mut [f32]) {
    if a.t >= QUERY_BLOCK {
        attention_tiled(a, out);
    } else {
        attention_rows(a, out);
    }
}

/// Queries per prefill tile (times the query heads of one kv head: the rows of a tile).
const QUERY_BLOCK: usize = 4;

thread_local! {
    static SCORES: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The first key the query at position `p` (0-based) may see.
fn first_key(p: usize, window: Option<usize>) -> usize {
    window.map_or(0, |w| (p + 1).saturating_sub(w.max(1)))
}

/// Softmax of `s` in place, unnormalised: exp(x − max); returns the sum
/// (masked −∞ entries become 0 and add nothing).
fn softmax_unnormalised(s: &mut [f32]) -> f32 {
    let max = s.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut sum = 0f32;
    for x in s.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    sum
}

fn attention_tiled<T: KvElem>(a: &Heads<T>, out: &mut [f32]) {
    let Heads { q, k, v, t, pos, nh, nkv, hd, scale, window } = *a;
    let group = nh / nkv;
    let kern = Kernel::for_head_dim(hd);
    let blocks = t.div_ceil(QUERY_BLOCK);
    let out_ptr = SendPtr(out.as_mut_ptr());
    parallel_for(blocks * nkv, |item| {
        let out_ptr = &out_ptr;
        let (b, g) = (item / nkv, item % nkv);
        let (i0, i1) = (b * QUERY_BLOCK, ((b + 1) * QUERY_BLOCK).min(t));
        let rows = (i1 - i0) * group;
        // row r: query i0 + r / group of head g · group + r % group
        let row = |r: usize| (i0 + r / group, g * group + r % group);
        let (lo, hi) = (first_key(pos + i0, window), pos + i1);
        let len = hi - lo;
        SCORES.with(|cell| {
            let mut buf = cell.borrow_mut();
            buf.clear();
            buf.resize(rows * (len + hd + 1), 0.0);
            let (s, rest) = buf.split_at_mut(rows * len);
            let (acc, sums) = rest.split_at_mut(rows * hd);
            let qrow = |r: usize| {
                let (i, h) = row(r);
                &q[(i * nh + h) * hd..(i * nh + h + 1) * hd]
            };
            let key = |j: usize| &k[(j * nkv + g) * hd..(j * nkv + g + 1) * hd];
            // two keys against four rows at a time: each query chunk is loaded once for both
            // (an odd last key is paired with itself, its second result dropped)
            for j in (lo..hi).step_by(2) {
                let two = j + 1 < hi;
                let (k0, k1) = (key(j), key(if two { j + 1 } else { j }));
                let mut r = 0;
                while r + 4 <= rows {
                    let d = kern.dot4x2([qrow(r), qrow(r + 1), qrow(r + 2), qrow(r + 3)], [k0, k1]);
                    for (x, (d0, d1)) in d[0].iter().zip(&d[1]).enumerate() {
                        s[(r + x) * len + j - lo] = d0 * scale;
                        if two {
                            s[(r + x) * len + j + 1 - lo] = d1 * scale;
                        }
                    }
                    r += 4;
                }
                for r in r..rows {
                    s[r * len + j - lo] = kern.dot(qrow(r), k0) * scale;
                    if two {
                        s[r * len + j + 1 - lo] = kern.dot(qrow(r), k1) * scale;
                    }
                }
            }
            // causal and window masks: only the tile's first and last keys are masked for some rows
            for r in 0..rows {
                let p = pos + row(r).0;
                let first = first_key(p, window);
                for j in (lo..first.min(hi)).chain(p + 1..hi) {
                    s[r * len + j - lo] = f32::NEG_INFINITY;
                }
            }
            for (sum, sr) in sums.iter_mut().zip(s.chunks_exact_mut(len)) {
                *sum = softmax_unnormalised(sr);
            }
            // blocks of keys whose values stay in L1 while every row of the tile reads them
            const KEYS: usize = 64;
            for jb in (lo..hi).step_by(KEYS) {
                let je = (jb + KEYS).min(hi);
                let w = |r: usize| &s[r * len + jb - lo..r * len + je - lo];
                let vb = &v[(jb * nkv + g) * hd..];
                // two rows at a time: each value chunk is loaded (and widened) once for both
                let mut pairs = acc.chunks_exact_mut(2 * hd);
                for (p, two) in pairs.by_ref().enumerate() {
                    let (d0, d1) = two.split_at_mut(hd);
                    kern.weighted_sum2([w(2 * p), w(2 * p + 1)], vb, nkv * hd, [d0, d1]);
                }
                let last = pairs.into_remainder();
                if !last.is_empty() {
                    kern.weighted_sum(w(rows - 1), vb, nkv * hd, last);
                }
            }
            for (r, src) in acc.chunks_exact(hd).enumerate() {
                let (i, h) = row(r);
                let inv = 1.0 / sums[r];
                // SAFETY: every (query, head) slice of `out` belongs to one tile.
                let dst = unsafe { std::slice::from_raw_parts_mut(out_ptr.0.add((i * nh + h) * hd), hd) };
                for (d, x) in dst.iter_mut().zip(src) {
                    *d = x * inv;
                }
            }
        });
    });
}

/// One item per (query, head): decode's few queries.
fn attention_rows<T: KvElem>(a: &Heads<T>, out: &mut [f32]) {
    let Heads { q, k, v, t, pos, nh, nkv, hd, scale, window } = *a;
    let group = nh / nkv;
    let kern = Kernel::for_head_dim(hd);
    let out_ptr = SendPtr(out.as_mut_ptr());
    parallel_for(t * nh, |item| {
        let out_ptr = &out_ptr;
        let (i, h) = (item / nh, item % nh);
        let g = h / group;
        let qv = &q[(i * nh + h) * hd..(i * nh + h + 1) * hd];
        let n = pos + i + 1;
        let first = first_key(pos + i, window);
        // SAFETY: every (query, head) slice of `out` belongs to one item.
        let dst = unsafe { std::slice::from_raw_parts_mut(out_ptr.0.add((i * nh + h) * hd), hd) };
        SCORES.with(|cell| {
            let mut s = cell.borrow_mut();
            s.clear();
            s.extend((first..n).map(|j| kern.dot(qv, &k[(j * nkv + g) * hd..(j * nkv + g + 1) * hd]) * scale));
            let sum = softmax_unnormalised(&mut s);
            dst.fill(0.0);
            kern.weighted_sum(&s, &v[(first * nkv + g) * hd..], nkv * hd, dst);
            let inv = 1.0 / sum;
            dst.iter_mut().for_each(|x| *x *= inv);
        });
    });
}

/// The dot/axpy kernels: AVX2 with FMA (and F16C, for f16 caches) where the CPU has them and the head
/// dimension is a multiple of 8, else portable. The tiled and per-head
/// paths use the same one, so they agree bit for bit.
#[derive(Clone, Copy)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    fn for_head_dim(hd: usize) -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            let avx2 = *AVX2.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c"));
            if avx2 && hd % 8 == 0 {
                return Kernel::Avx2;
            }
        }
        let _ = hd;
        Kernel::Portable
    }

    #[inline]
    fn dot<T: KvElem>(self, a: &[f32], b: &[T]) -> f32 {
        match self {
            Kernel::Portable => dot(a, b),
            // SAFETY: chosen only when the CPU has AVX2 and FMA; lengths are equal multiples of 8.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { avx2::dot(a, b) },
        }
    }

    /// Four rows against two keys: `[key][row]`, each the bits of `dot`.
    #[inline]
    fn dot4x2<T: KvElem>(self, q: [&[f32]; 4], k: [&[T]; 2]) -> [[f32; 4]; 2] {
        match self {
            Kernel::Portable => k.map(|k| q.map(|r| dot(r, k))),
            // SAFETY: as in `dot`.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { avx2::dot4x2(q, k) },
        }
    }

    /// [`Kernel::weighted_sum`] for two rows of weights over the same
    /// values, each row's bits those of `weighted_sum`.
    #[inline]
    fn weighted_sum2<T: KvElem>(self, w: [&[f32]; 2], v: &[T], stride: usize, dst: [&mut [f32]; 2]) {
        match self {
            Kernel::Portable => {
                let [d0, d1] = dst;
                self.weighted_sum(w[0], v, stride, d0);
                self.weighted_sum(w[1], v, stride, d1);
            }
            // SAFETY: as in `weighted_sum`; both rows have as many weights and dims.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { avx2::weighted_sum2(w, v, stride, dst) },
        }
    }

    /// `dst += Σⱼ w[j] · v[j · stride ..][.. dst.len()]`, in order of j
    /// (the bits of one `axpy` per key; the sums stay in registers).
    #[inline]
    fn weighted_sum<T: KvElem>(self, w: &[f32], v: &[T], stride: usize, dst: &mut [f32]) {
        match self {
            Kernel::Portable => {
                let hd = dst.len();
                for (j, &wj) in w.iter().enumerate() {
                    axpy(wj, &v[j * stride..j * stride + hd], dst);
                }
            }
            // SAFETY: as in `dot`; `v` holds `w.len()` rows of `stride` (the last may end after `dst.len()`).
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => unsafe { avx2::weighted_sum(w, v, stride, dst) },
        }
    }
}

/// Dot product in eight lanes (vectorizes without reassociation).
#[inline]
fn dot<T: KvElem>(a: &[f32], b: &[T]) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y.to_f32()).sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l].to_f32();
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `y += a · x`.
#[inline]
fn axpy<T: KvElem>(a: f32, x: &[T], y: &mut [f32]) {
    for (yv, xv) in y.iter_mut().zip(x) {
        *yv += a * xv.to_f32();
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::KvElem;

    /// The eight lanes folded to four (low half + high half).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn fold(v: __m256) -> __m128 {
        _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot<T: KvElem>(a: &[f32], b: &[T]) -> f32 {
        debug_assert!(a.len() == b.len() && a.len() % 8 == 0);
        let mut acc = _mm256_setzero_ps();
        for c in (0..a.len()).step_by(8) {
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(a.as_ptr().add(c)), T::load8(b.as_ptr().add(c)), acc);
        }
        // the same pairing as each lane of `reduce4`
        let l = fold(acc);
        let h = _mm_hadd_ps(l, l);
        _mm_cvtss_f32(_mm_hadd_ps(h, h))
    }

    /// Four accumulators' sums, each paired as `dot`'s.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn reduce4(a: [__m256; 4]) -> [f32; 4] {
        let h01 = _mm_hadd_ps(fold(a[0]), fold(a[1]));
        let h23 = _mm_hadd_ps(fold(a[2]), fold(a[3]));
        let mut out = [0f32; 4];
        _mm_storeu_ps(out.as_mut_ptr(), _mm_hadd_ps(h01, h23));
        out
    }

    /// Four rows against two keys: eight independent FMA chains (four, for one
    /// key, are latency-bound on a 256-wide head), each query chunk loaded once.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4x2<T: KvElem>(q: [&[f32]; 4], k: [&[T]; 2]) -> [[f32; 4]; 2] {
        let n = k[0].len();
        debug_assert!(q.iter().all(|r| r.len() == n) && k[1].len() == n && n.is_multiple_of(8));
        let mut a = [[_mm256_setzero_ps(); 4]; 2];
        for c in (0..n).step_by(8) {
            let k0 = T::load8(k[0].as_ptr().add(c));
            let k1 = T::load8(k[1].as_ptr().add(c));
            for r in 0..4 {
                let qv = _mm256_loadu_ps(q[r].as_ptr().add(c));
                a[0][r] = _mm256_fmadd_ps(qv, k0, a[0][r]);
                a[1][r] = _mm256_fmadd_ps(qv, k1, a[1][r]);
            }
        }
        [reduce4(a[0]), reduce4(a[1])]
    }

    /// Eight-register slices of 64 dims (a last slice of 8·m): each is
    /// summed over all keys in registers (one FMA per key and lane, in key
    /// order), then stored once.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn weighted_sum<T: KvElem>(w: &[f32], v: &[T], stride: usize, dst: &mut [f32]) {
        let hd = dst.len();
        debug_assert!(hd % 8 == 0 && (w.is_empty() || v.len() >= (w.len() - 1) * stride + hd));
        let mut d0 = 0;
        while d0 < hd {
            let lanes = ((hd - d0) / 8).min(8);
            let mut acc = [_mm256_setzero_ps(); 8];
            for (l, a) in acc.iter_mut().enumerate().take(lanes) {
                *a = _mm256_loadu_ps(dst.as_ptr().add(d0 + 8 * l));
            }
            for (j, &wj) in w.iter().enumerate() {
                let wv = _mm256_set1_ps(wj);
                let row = v.as_ptr().add(j * stride + d0);
                for (l, a) in acc.iter_mut().enumerate().take(lanes) {
                    *a = _mm256_fmadd_ps(wv, T::load8(row.add(8 * l)), *a);
                }
            }
            for (l, a) in acc.iter().enumerate().take(lanes) {
                _mm256_storeu_ps(dst.as_mut_ptr().add(d0 + 8 * l), *a);
            }
            d0 += 8 * lanes;
        }
    }

    /// `weighted_sum` for two rows of weights in slices of 32 dims (eight
    /// accumulators): each value chunk is loaded and widened once for both
    /// rows; per lane the same FMAs in the same key order, so each row's
    /// bits are `weighted_sum`'s.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn weighted_sum2<T: KvElem>(w: [&[f32]; 2], v: &[T], stride: usize, mut dst: [&mut [f32]; 2]) {
        let (hd, keys) = (dst[0].len(), w[0].len());
        debug_assert!(hd.is_multiple_of(8) && dst[1].len() == hd && w[1].len() == keys && (keys == 0 || v.len() >= (keys - 1) * stride + hd));
        let mut d0 = 0;
        while d0 < hd {
            let lanes = ((hd - d0) / 8).min(4);
            let mut acc = [[_mm256_setzero_ps(); 4]; 2];
            for (a, d) in acc.iter_mut().zip(&dst) {
                for (l, x) in a.iter_mut().enumerate().take(lanes) {
                    *x = _mm256_loadu_ps(d.as_ptr().add(d0 + 8 * l));
                }
            }
            for j in 0..keys {
                let (w0, w1) = (_mm256_set1_ps(*w[0].get_unchecked(j)), _mm256_set1_ps(*w[1].get_unchecked(j)));
                let row = v.as_ptr().add(j * stride + d0);
                let [a0, a1] = &mut acc;
                for (l, (x0, x1)) in a0.iter_mut().zip(a1.iter_mut()).enumerate().take(lanes) {
                    let x = T::load8(row.add(8 * l));
                    *x0 = _mm256_fmadd_ps(w0, x, *x0);
                    *x1 = _mm256_fmadd_ps(w1, x, *x1);
                }
            }
            for (a, d) in acc.iter().zip(dst.iter_mut()) {
                for (l, x) in a.iter().enumerate().take(lanes) {
                    _mm256_storeu_ps(d.as_mut_ptr().add(d0 + 8 * l), *x);
                }
            }
            d0 += 8 * lanes;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiled_prefill_attention_gives_the_per_head_bits() {
        let mut rng = crate::synthetic::XorShift::new(0x9e37_79b9_7f4a_7c15);
        let mut rnd = move || rng.next_f32() - 0.5;
        // GQA 6 query heads over 2 kv heads; a prefix in the cache; a ragged last tile
        for (t, pos, window) in [(9, 0, None), (13, 5, None), (11, 7, Some(6)), (4, 0, Some(1))] {
            let (nh, nkv, hd) = (6, 2, 16);
            let q: Vec<f32> = (0..t * nh * hd).map(|_| rnd()).collect();
            let k: Vec<f32> = (0..(pos + t) * nkv * hd).map(|_| rnd()).collect();
            let v: Vec<f32> = (0..(pos + t) * nkv * hd).map(|_| rnd()).collect();
            let (mut a, mut b) = (vec![0f32; t * nh * hd], vec![1f32; t * nh * hd]);
            let heads = Heads { q: &q, k: &k, v: &v, t, pos, nh, nkv, hd, scale: 0.25, window };
            attention_rows(&heads, &mut a);
            attention_tiled(&heads, &mut b);
            assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "t {t} pos {pos} window {window:?}");
        }
    }

    #[test]
    fn kernels_agree_with_the_portable_dot_and_axpy() {
        let a: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..64).map(|i| (i as f32 * 0.11).cos()).collect();
        let c: Vec<f32> = (0..64).map(|i| (i as f32 * 0.23).sin() - 0.1).collect();
        let kern = Kernel::for_head_dim(64);
        assert!((kern.dot(&a, &b) - dot(&a, &b)).abs() < 1e-5);
        // the shapes of the tiled path give the bits of the per-head `dot`
        let d42 = kern.dot4x2([&a, &b, &c, &a], [&b, &c]);
        for (key, kv) in [&b, &c].into_iter().enumerate() {
            for (r, q) in [&a, &b, &c, &a].into_iter().enumerate() {
                assert_eq!(d42[key][r].to_bits(), kern.dot(q, kv).to_bits(), "dot4x2 key {key} row {r}");
            }
        }
        // three keys of 24 dims in rows of 40 (another head's values between them)
        let v: Vec<f32> = (0..120).map(|i| (i as f32 * 0.05).sin()).collect();
        let (w0, w1) = ([0.5, -0.25, 0.0], [0.125, 0.75, -0.5]);
        let (mut y1, mut y2) = (b[..24].to_vec(), b[..24].to_vec());
        Kernel::for_head_dim(24).weighted_sum(&w0, &v, 40, &mut y1);
        Kernel::Portable.weighted_sum(&w0, &v, 40, &mut y2);
        assert!(y1.iter().zip(&y2).all(|(x, y)| (x - y).abs() <= 1e-6), "{y1:?} {y2:?}");
        // two rows at once: each row's bits those of one `weighted_sum`
        for hd in [24, 40] {
            let kern = Kernel::for_head_dim(hd);
            let (mut one0, mut one1) = (a[..hd].to_vec(), c[..hd].to_vec());
            kern.weighted_sum(&w0, &v, 40, &mut one0);
            kern.weighted_sum(&w1, &v, 40, &mut one1);
            let (mut two0, mut two1) = (a[..hd].to_vec(), c[..hd].to_vec());
            kern.weighted_sum2([&w0, &w1], &v, 40, [&mut two0, &mut two1]);
            assert!(one0.iter().zip(&two0).chain(one1.iter().zip(&two1)).all(|(x, y)| x.to_bits() == y.to_bits()), "hd {hd}");
        }
    }

    /// An f16 cache gives the bits of an f32 cache holding the same values
    /// rounded to f16 (widening is exact; the kernels are the same), in the
    /// tiled and the per-head paths and on the portable kernel; against the
    /// unrounded f32 cache it differs only by the rounding: f16 keeps 11
    /// significant bits (relative error ≤ 2⁻¹¹ per value), and over these
    /// unit-scale inputs the outputs stay within 2e-3 absolute.
    #[test]
    fn f16_cache_is_the_f32_path_on_rounded_values() {
        let mut rng = crate::synthetic::XorShift::new(0x51_7cc1_b727_220a);
        let mut rnd = move || (rng.next_f32() - 0.5) * 2.0;
        for (t, pos, window, hd) in [(9, 0, None, 16), (1, 12, None, 16), (11, 7, Some(6), 16), (5, 3, None, 12)] {
            let (nh, nkv) = (6, 2);
            let q: Vec<f32> = (0..t * nh * hd).map(|_| rnd()).collect();
            let k: Vec<f32> = (0..(pos + t) * nkv * hd).map(|_| rnd()).collect();
            let v: Vec<f32> = (0..(pos + t) * nkv * hd).map(|_| rnd()).collect();
            let (k16, v16): (Vec<f16>, Vec<f16>) = (k.iter().map(|&x| f16::from_f32(x)).collect(), v.iter().map(|&x| f16::from_f32(x)).collect());
            let (kr, vr): (Vec<f32>, Vec<f32>) = (k16.iter().map(|x| x.to_f32()).collect(), v16.iter().map(|x| x.to_f32()).collect());
            let n = t * nh * hd;
            let run = |k: &[f32], v: &[f32]| {
                let mut out = vec![0f32; n];
                attend(&Heads { q: &q, k, v, t, pos, nh, nkv, hd, scale: 0.25, window }, &mut out);
                out
            };
            let (exact, rounded) = (run(&k, &v), run(&kr, &vr));
            let mut half = vec![0f32; n];
            attend(&Heads { q: &q, k: &k16, v: &v16, t, pos, nh, nkv, hd, scale: 0.25, window }, &mut half);
            assert!(half.iter().zip(&rounded).all(|(x, y)| x.to_bits() == y.to_bits()), "t {t} pos {pos} hd {hd}: f16 cache is not the rounded f32 path");
            let err = half.iter().zip(&exact).fold(0f32, |e, (x, y)| e.max((x - y).abs()));
            assert!(err <= 2e-3, "t {t} pos {pos} hd {hd}: f16 cache off the f32 path by {err}");
            assert!(err > 0.0, "the inputs must not be representable in f16 (else this test shows nothing)");
        }
        // the portable kernel widens the same way
        let q: Vec<f32> = (0..16).map(|i| (i as f32 * 0.3).sin()).collect();
        let k: Vec<f16> = (0..16).map(|i| f16::from_f32((i as f32 * 0.7).cos())).collect();
        let kr: Vec<f32> = k.iter().map(|x| x.to_f32()).collect();
        assert_eq!(Kernel::Portable.dot(&q, &k).to_bits(), Kernel::Portable.dot(&q, &kr).to_bits());
        assert_eq!(Kernel::for_head_dim(16).dot(&q, &k).to_bits(), Kernel::for_head_dim(16).dot(&q, &kr).to_bits());
    }
}
