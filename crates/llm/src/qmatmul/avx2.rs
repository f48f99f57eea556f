//! The x86_64 kernels, one text for three instruction sets: the
//! [`x86_kernels`] macro holds every kernel and is expanded once per tier
//! with that tier's `#[target_feature]` set and its two integer
//! primitives, which the expanding module defines before expanding it:
//! - `dot_i32(u, i)`: Σ u8 × i8 over each group of four bytes as i32
//!   lanes (AVX2: `maddubs` + `madd` with ones; VNNI: one `vpdpbusd`);
//! - `madd_acc(acc, a, b)`: `acc` + the i16 pair products of `a`·`b`
//!   (AVX2: `madd` + `add`; VNNI: one `vpdpwssd`);
//! - `dp_acc(acc, u, i)`: `acc` + `dot_i32(u, i)` (VNNI: one `vpdpbusd`,
//!   exact for any u8; AVX2's `maddubs` saturates its i16 pair sums, so
//!   exact only for u8 values up to 127), with `VNNI` saying which.
//!
//! This file expands it for AVX2 with FMA and F16C; `vnni` for AVX-VNNI
//! and AVX512-VNNI. Every kernel is `unsafe` (the CPU is checked at run
//! time by `dispatch`). Decode multiplies four weight rows with one
//! activation row while prefetching the next four; prefill expands each
//! weight block once for four or eight activation rows, forming four
//! scale products in one multiply. Each equals the scalar reference up
//! to float reassociation. Owns the x86 instruction sequences; never
//! detects the CPU or tiles the work.

/// Which 32-value signed format `dot_q8_0_*::<F>` reads.
pub(crate) const FMT_Q8_0: u8 = 0;
pub(crate) const FMT_Q5_0: u8 = 1;
pub(crate) const FMT_Q4_0: u8 = 2;

/// Every x86 kernel, expanded under the target features `$feat`; `$dol`
/// must be `$` (it spells the inner macros' own metavariables).
macro_rules! x86_kernels {
    ($dol:tt, $feat:literal) => {
        use crate::qmatmul::{BlockQ8, BlockQ8K, Quad, Scales4, Q4_0_BYTES, Q4_1_BYTES, Q4_K_BYTES, Q5_0_BYTES, Q5_K_BYTES, Q6_K_BYTES, Q8_0_BYTES};
        use crate::qmatmul::avx2::{FMT_Q4_0 as Q4_0_FMT, FMT_Q5_0 as Q5_0_FMT, FMT_Q8_0 as Q8_0_FMT};

        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn hsum(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            let s = _mm_add_ss(s, _mm_movehdup_ps(s));
            _mm_cvtss_f32(s)
        }

        /// A block's f16 scale (and, for Q4_1, its f16 minimum right after it)
        /// as f32 lanes `[d, m, _, _]`.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn scales(blk: *const u8) -> __m128 {
            _mm_cvtph_ps(_mm_cvtsi32_si128(std::ptr::read_unaligned(blk as *const i32)))
        }

        /// An activation block's `[d, s, 0, 0]` (adjacent f32 fields).
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn act_scales(xb: &BlockQ8) -> __m128 {
            _mm_castsi128_ps(_mm_loadl_epi64(&xb.d as *const f32 as *const __m128i))
        }

        /// The 32 nibbles of a Q4_1 block as bytes (elements 0..16 from the low
        /// nibbles, 16..32 from the high ones).
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn nibbles(blk: *const u8, low: __m128i) -> __m256i {
            nibbles_at(blk.add(4), low)
        }

        /// The 32 nibbles of the 16 bytes at `qs` as bytes (as `nibbles`).
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn nibbles_at(qs: *const u8, low: __m128i) -> __m256i {
            let packed = _mm_loadu_si128(qs as *const __m128i);
            let lo = _mm_and_si128(packed, low);
            let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
            _mm256_set_m128i(hi, lo)
        }

        /// Σ u8 × i8 over 32 bytes as 8 f32 lanes.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn dot_u8_i8(u: __m256i, i: __m256i, _ones: __m256i) -> __m256 {
            _mm256_cvtepi32_ps(dot_i32(u, i))
        }

        /// Q4_1 block product: `prod = [d·dx, m·sx]`; the integer dot scaled by
        /// lane 0 goes into `acc`, lane 1 (the minimum's term) into `mins`.
        macro_rules! q4_1_step {
            ($dol dm:expr, $dol wq:expr, $dol xb:expr, $dol xq:expr, $dol acc:ident, $dol mins:ident, $dol ones:expr) => {{
                let prod = _mm_mul_ps($dol dm, act_scales($dol xb));
                $dol acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(prod), dot_u8_i8($dol wq, $dol xq, $dol ones), $dol acc);
                $dol mins = _mm_add_ps($dol mins, prod);
            }};
        }

        /// `hsum(acc) + mins[1]` for Q4_1.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn finish_q4_1(acc: __m256, mins: __m128) -> f32 {
            hsum(acc) + _mm_cvtss_f32(_mm_movehdup_ps(mins))
        }

        /// Decode streams weights from memory four rows at a time; the rows
        /// of a matrix are contiguous, so while one group is multiplied the
        /// next group's bytes (`next`, proportionally to the progress `off`)
        /// are prefetched. Prefetching never faults, past the end included.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn prefetch_next(next: *const u8, off: usize) {
            _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(off) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(off + 64) as *const i8);
        }

        /// Four Q4_1 weight rows against one activation row (decode).
        #[target_feature(enable = $feat)]
        pub(in crate::qmatmul) unsafe fn dot_q4_1_r4(ws: &[&[u8]; 4], x: &[BlockQ8]) -> [f32; 4] {
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
        #[target_feature(enable = $feat)]
        unsafe fn scale_products(d: __m256, sc: &Scales4) -> __m256 {
            _mm256_mul_ps(d, _mm256_broadcast_ps(&*(sc.d.as_ptr() as *const __m128)))
        }

        macro_rules! lane {
            ($dol v:expr, $dol i:literal) => {
                _mm256_shuffle_ps::<{ $dol i * 0x55 }>($dol v, $dol v)
            };
        }

        /// One Q4_1 weight row against four activation rows (prefill): the
        /// block's four scale products in one multiply, its minimum's four
        /// terms (`m · s`) in one more.
        #[target_feature(enable = $feat)]
        pub(in crate::qmatmul) unsafe fn dot_q4_1_x4(w: &[u8], quad: &Quad<BlockQ8>) -> [f32; 4] {
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
                    ($dol xp:expr, $dol acc:ident, $dol i:literal) => {{
                        let xq = _mm256_loadu_si256((*$dol xp.add(b)).qs.as_ptr() as *const __m256i);
                        $dol acc = _mm256_fmadd_ps(lane!(dd, $dol i), dot_u8_i8(wq, xq, ones), $dol acc);
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
        /// `prod` is the two blocks' scale product in every lane.
        macro_rules! q8_0_step {
            ($dol prod:expr, $dol wq:expr, $dol wabs:expr, $dol xb:expr, $dol acc:expr, $dol ones:expr) => {{
                let xq = _mm256_loadu_si256($dol xb.qs.as_ptr() as *const __m256i);
                $dol acc = _mm256_fmadd_ps($dol prod, dot_u8_i8($dol wabs, _mm256_sign_epi8(xq, $dol wq), $dol ones), $dol acc);
            }};
        }

        /// The f16 at `p` as f32 in all eight lanes. A one-lane conversion
        /// (`_mm_cvtph_ps` of `_mm_cvtsi32_si128`, only lane 0 used) let LLVM
        /// load the half with `vpinsrw` *into* a live register, often an
        /// accumulator: a false dependency that chained every block's scale
        /// to the previous block's last FMA, and Q8_0 prefill ran at ~5 cycles
        /// per 32 values. A broadcast writes the whole register.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn scale_splat(p: *const u8) -> __m256 {
            _mm256_cvtph_ps(_mm_set1_epi16(std::ptr::read_unaligned(p as *const i16)))
        }

        /// The 32 signed weights of a Q8_0 block (`F = FMT_Q8_0`), a Q5_0 block
        /// (`FMT_Q5_0`: nibbles, and 0xF0 or-ed in where the block's high bit is
        /// clear, which is `nibble + 16·bit − 16` as i8, as ggml does it) or a
        /// Q4_0 block (`FMT_Q4_0`: nibbles − 8).
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn weights_8<const F: u8>(blk: *const u8) -> __m256i {
            if F == Q8_0_FMT {
                return _mm256_loadu_si256(blk.add(2) as *const __m256i);
            }
            if F == Q4_0_FMT {
                let q = nibbles_at(blk.add(2), _mm_set1_epi8(0x0F));
                return _mm256_sub_epi8(q, _mm256_set1_epi8(8));
            }
            let qh = std::ptr::read_unaligned(blk.add(2) as *const u32);
            let q = nibbles(blk.add(2), _mm_set1_epi8(0x0F)); // nibbles() skips 4 bytes: qs at 6
            // byte j = 0xFF where bit j of qh is set
            let spread = _mm256_shuffle_epi8(_mm256_set1_epi32(qh as i32), _mm256_set_epi64x(0x0303_0303_0303_0303, 0x0202_0202_0202_0202, 0x0101_0101_0101_0101, 0));
            let bit_set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe)), _mm256_set1_epi64x(-1));
            _mm256_or_si256(q, _mm256_andnot_si256(bit_set, _mm256_set1_epi8(0xF0u8 as i8)))
        }

        /// Bytes of one block of a 32-value signed format.
        const fn fmt_bytes(f: u8) -> usize {
            match f {
                Q8_0_FMT => Q8_0_BYTES,
                Q5_0_FMT => Q5_0_BYTES,
                _ => Q4_0_BYTES,
            }
        }

        /// Four Q8_0 (or Q5_0, Q4_0) weight rows against one activation row (decode).
        #[target_feature(enable = $feat)]
        pub(in crate::qmatmul) unsafe fn dot_q8_0_r4<const F: u8>(ws: &[&[u8]; 4], x: &[BlockQ8]) -> [f32; 4] {
            let bytes = fmt_bytes(F);
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
                    ($dol p:expr, $dol acc:ident) => {{
                        let blk = $dol p.add(o);
                        let wq = weights_8::<F>(blk);
                        q8_0_step!(_mm256_mul_ps(scale_splat(blk), dx), wq, _mm256_sign_epi8(wq, wq), xb, $dol acc, ones);
                    }};
                }
                row!(p0, a0);
                row!(p1, a1);
                row!(p2, a2);
                row!(p3, a3);
            }
            [hsum(a0), hsum(a1), hsum(a2), hsum(a3)]
        }

        /// One Q8_0 (or Q5_0, Q4_0) weight row against four activation rows
        /// (prefill): the block's four scale products in one multiply.
        #[target_feature(enable = $feat)]
        pub(in crate::qmatmul) unsafe fn dot_q8_0_x4<const F: u8>(w: &[u8], quad: &Quad<BlockQ8>) -> [f32; 4] {
            let xs = &quad.rows;
            let bytes = fmt_bytes(F);
            let nb = w.len() / bytes;
            assert!(xs.iter().all(|x| x.len() >= nb) && quad.d.len() >= nb);
            let ones = _mm256_set1_epi16(1);
            let (mut a0, mut a1, mut a2, mut a3) = (_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps());
            let (x0, x1, x2, x3) = (xs[0].as_ptr(), xs[1].as_ptr(), xs[2].as_ptr(), xs[3].as_ptr());
            let wp = w.as_ptr();
            for b in 0..nb {
                let blk = wp.add(b * bytes);
                let wq = weights_8::<F>(blk);
                let wabs = _mm256_sign_epi8(wq, wq);
                let dd = scale_products(scale_splat(blk), quad.d.get_unchecked(b));
                q8_0_step!(lane!(dd, 0), wq, wabs, &*x0.add(b), a0, ones);
                q8_0_step!(lane!(dd, 1), wq, wabs, &*x1.add(b), a1, ones);
                q8_0_step!(lane!(dd, 2), wq, wabs, &*x2.add(b), a2, ones);
                q8_0_step!(lane!(dd, 3), wq, wabs, &*x3.add(b), a3, ones);
            }
            [hsum(a0), hsum(a1), hsum(a2), hsum(a3)]
        }

        /// One Q8_0 (or Q5_0, Q4_0) weight row against eight activation rows (two
        /// groups of four, prefill): each weight block expanded once for all
        /// eight.
        #[target_feature(enable = $feat)]
        pub(in crate::qmatmul) unsafe fn dot_q8_0_x8<const F: u8>(w: &[u8], quads: &[Quad<BlockQ8>; 2]) -> [f32; 8] {
            let bytes = fmt_bytes(F);
            let nb = w.len() / bytes;
            assert!(quads.iter().all(|q| q.rows.iter().all(|x| x.len() >= nb) && q.d.len() >= nb));
            let ones = _mm256_set1_epi16(1);
            let mut acc = [_mm256_setzero_ps(); 8];
            let xp: [*const BlockQ8; 8] = std::array::from_fn(|i| quads[i / 4].rows[i % 4].as_ptr());
            let wp = w.as_ptr();
            for b in 0..nb {
                let blk = wp.add(b * bytes);
                let wq = weights_8::<F>(blk);
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
        #[target_feature(enable = $feat)]
        unsafe fn broadcast_i16(i: usize) -> __m256i {
            _mm256_loadu_si256(BROADCAST_I16.as_ptr().add(i) as *const __m256i)
        }

        /// `T` Q8_K activation rows against one Q4_K (or, `Q5`, Q5_K) weight
        /// row: each block's nibbles (and Q5_K's fifth bits) and scales are
        /// unpacked once and multiplied with all `T` rows (prefill: T = 4 or 8;
        /// decode: T = 1). Q5_K is Q4_K with 32 bytes of high bits before the
        /// nibbles: bit `2j` of byte `l` is value `64j + l`'s fifth bit, bit
        /// `2j + 1` value `64j + 32 + l`'s.
        #[target_feature(enable = $feat)]
        pub(in crate::qmatmul) unsafe fn dot_q4_k<const T: usize, const Q5: bool>(w: &[u8], xs: &[&[BlockQ8K]; T]) -> [f32; T] {
            let bytes = if Q5 { Q5_K_BYTES } else { Q4_K_BYTES };
            let nb = w.len() / bytes;
            assert!(xs.iter().all(|x| x.len() >= nb));
            let m4 = _mm256_set1_epi8(0x0F);
            let mut acc = [_mm256_setzero_ps(); T];
            let mut acc_m = [_mm256_setzero_ps(); T];
            let wp = w.as_ptr();
            for b in 0..nb {
                let blk = wp.add(b * bytes);
                if T == 1 {
                    _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(3 * bytes) as *const i8);
                    _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(3 * bytes + 64) as *const i8);
                    _mm_prefetch::<_MM_HINT_T0>(blk.wrapping_add(3 * bytes + 128) as *const i8);
                }
                let (d, neg_dmin) = (scale_splat(blk), _mm256_sub_ps(_mm256_setzero_ps(), scale_splat(blk.add(2))));
                let u = crate::qmatmul::scalar::q4_k_scales(std::slice::from_raw_parts(blk.add(4), 12));
                let packed = _mm_set_epi32(u[3] as i32, u[2] as i32, u[1] as i32, u[0] as i32);
                let mins_scales = _mm256_cvtepu8_epi16(packed);
                // each sub-block's minimum twice: it multiplies the two 16-value
                // sums of its 32 activations in one `madd`
                let mins2 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(packed, packed));
                let sc128 = _mm256_castsi256_si128(mins_scales);
                let scales = _mm256_set_m128i(sc128, sc128);
                let mut sumi = [_mm256_setzero_si256(); T];
                let qs = blk.add(if Q5 { 48 } else { 16 });
                let qh = if Q5 { _mm256_loadu_si256(blk.add(16) as *const __m256i) } else { _mm256_setzero_si256() };
                for j in 0..4 {
                    let bits = _mm256_loadu_si256(qs.add(32 * j) as *const __m256i);
                    let mut lo = _mm256_and_si256(bits, m4);
                    let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
                    if Q5 {
                        // bit 2j (2j + 1) of each qh byte to bit 0 (shifting the
                        // 16-bit lanes: bit 0 of each byte comes from its own byte
                        // as 2j + 1 < 8), kept alone, then moved to bit 4
                        let one = _mm256_set1_epi8(1);
                        let h_lo = _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j as i32)), one));
                        let h_hi = _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j as i32 + 1)), one));
                        lo = _mm256_or_si256(lo, h_lo);
                        hi = _mm256_or_si256(hi, h_hi);
                    }
                    let s_lo = _mm256_shuffle_epi8(scales, broadcast_i16(2 * j));
                    let s_hi = _mm256_shuffle_epi8(scales, broadcast_i16(2 * j + 1));
                    for t in 0..T {
                        let q8 = xs[t].get_unchecked(b).qs.as_ptr().add(64 * j);
                        let p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256(q8 as *const __m256i));
                        let p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256(q8.add(32) as *const __m256i));
                        sumi[t] = madd_acc(madd_acc(sumi[t], s_lo, p_lo), s_hi, p_hi);
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
        #[target_feature(enable = $feat)]
        pub(in crate::qmatmul) unsafe fn dot_q6_k<const T: usize>(w: &[u8], xs: &[&[BlockQ8K]; T]) -> [f32; T] {
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
                        ($dol shift:literal) => {
                            _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<$dol shift>(bits_h), m2))
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
                            sumi[t] = madd_acc(sumi[t], s, p);
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

        /// The scales of eight rows (`u8` each, at `p`) as i16 pairs: lanes
        /// `2r` and `2r + 1` hold row `r`'s, the two i16 products of row `r`'s
        /// four bytes that `maddubs` leaves there.
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn row_pairs(p: *const u8) -> __m256i {
            let v = _mm256_cvtepu8_epi32(_mm_loadl_epi64(p as *const __m128i));
            _mm256_or_si256(v, _mm256_slli_epi32::<16>(v))
        }

        /// `T` Q8_K activation rows against eight Q4_K weight rows repacked
        /// into one group per block (`crate::qmatmul::packed`), as
        /// `[token][row]`. Each 256-bit load holds four bytes of each row;
        /// the activations' matching four bytes are broadcast, so the integer
        /// products land in lane `r` for row `r`; each sub-block's sum is
        /// scaled once (not per four values), and the float steps (scale,
        /// minimum term) run once per eight rows. Per token the
        /// steps are the same whatever `T`: a row's result is the same bit
        /// for bit in decode (`T` = 1) and prefill.
        #[target_feature(enable = $feat)]
        pub(in crate::qmatmul) unsafe fn gemm_q4_k_8x<const T: usize>(pk: &[u8], xs: &[&[BlockQ8K]; T]) -> [[f32; 8]; T] {
            use crate::qmatmul::packed::{GROUP_BYTES, OFF_D, OFF_DMIN, OFF_MINS, OFF_QS, OFF_SCALES};
            let nb = pk.len() / GROUP_BYTES;
            assert!(pk.len() == nb * GROUP_BYTES && xs.iter().all(|x| x.len() >= nb));
            let m4 = _mm256_set1_epi8(0x0F);
            let mut acc = [_mm256_setzero_ps(); T];
            let mut acc_m = [_mm256_setzero_ps(); T];
            let pp = pk.as_ptr();
            for b in 0..nb {
                let g = pp.add(b * GROUP_BYTES);
                let d = _mm256_cvtph_ps(_mm_loadu_si128(g.add(OFF_D) as *const __m128i));
                let neg_dmin = _mm256_sub_ps(_mm256_setzero_ps(), _mm256_cvtph_ps(_mm_loadu_si128(g.add(OFF_DMIN) as *const __m128i)));
                let mut sumi = [_mm256_setzero_si256(); T];
                for j in 0..4 {
                    // A sub-block's 32 products per row are summed unscaled,
                    // then times the row's scale once per sub-block. With
                    // VNNI, `vpdpbusd` takes the nibbles as they are (u8 ≤
                    // 15) into i32; without, `maddubs` pairs (|·| ≤ 2 · 15 ·
                    // 128) are added as i16, eight of them at most 30,720.
                    // Either way the same exact integer sum.
                    let (s_lo, s_hi) = if VNNI {
                        (
                            _mm256_cvtepu8_epi32(_mm_loadl_epi64(g.add(OFF_SCALES + 16 * j) as *const __m128i)),
                            _mm256_cvtepu8_epi32(_mm_loadl_epi64(g.add(OFF_SCALES + 16 * j + 8) as *const __m128i)),
                        )
                    } else {
                        (row_pairs(g.add(OFF_SCALES + 16 * j)), row_pairs(g.add(OFF_SCALES + 16 * j + 8)))
                    };
                    let mut dot_lo = [_mm256_setzero_si256(); T];
                    let mut dot_hi = [_mm256_setzero_si256(); T];
                    for c in 0..8 {
                        // no software prefetch in decode: the groups stream
                        // in order and the hardware prefetcher keeps up; one
                        // two groups ahead cost 5-10 % of the 1B's decode
                        let at = OFF_QS + 32 * (8 * j + c);
                        let bits = _mm256_loadu_si256(g.add(at) as *const __m256i);
                        let lo = _mm256_and_si256(bits, m4);
                        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4);
                        for t in 0..T {
                            let q8 = xs[t].get_unchecked(b).qs.as_ptr().add(64 * j + 4 * c);
                            let x_lo = _mm256_set1_epi32(std::ptr::read_unaligned(q8 as *const i32));
                            let x_hi = _mm256_set1_epi32(std::ptr::read_unaligned(q8.add(32) as *const i32));
                            if VNNI {
                                dot_lo[t] = dp_acc(dot_lo[t], lo, x_lo);
                                dot_hi[t] = dp_acc(dot_hi[t], hi, x_hi);
                            } else {
                                dot_lo[t] = _mm256_add_epi16(dot_lo[t], _mm256_maddubs_epi16(lo, x_lo));
                                dot_hi[t] = _mm256_add_epi16(dot_hi[t], _mm256_maddubs_epi16(hi, x_hi));
                            }
                        }
                    }
                    for t in 0..T {
                        sumi[t] = if VNNI {
                            _mm256_add_epi32(sumi[t], _mm256_add_epi32(_mm256_mullo_epi32(dot_lo[t], s_lo), _mm256_mullo_epi32(dot_hi[t], s_hi)))
                        } else {
                            madd_acc(madd_acc(sumi[t], s_lo, dot_lo[t]), s_hi, dot_hi[t])
                        };
                    }
                }
                // the rows' minimums of sub-blocks 2q and 2q + 1 as i16 pairs per lane
                let mut mins = [_mm256_setzero_si256(); 4];
                for (q, mq) in mins.iter_mut().enumerate() {
                    *mq = _mm256_cvtepu8_epi16(_mm_loadu_si128(g.add(OFF_MINS + 16 * q) as *const __m128i));
                }
                for t in 0..T {
                    let xb = xs[t].get_unchecked(b);
                    let dx = _mm256_broadcast_ss(&xb.d);
                    acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, dx), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
                    let bs = &xb.bsums;
                    let mut msum = _mm256_setzero_si256();
                    for (q, mq) in mins.iter().enumerate() {
                        // the activations' sums over sub-blocks 2q and 2q + 1 (|Σ| ≤ 32 · 127)
                        let s0 = bs[4 * q].wrapping_add(bs[4 * q + 1]) as u16 as u32;
                        let s1 = bs[4 * q + 2].wrapping_add(bs[4 * q + 3]) as u16 as u32;
                        msum = madd_acc(msum, *mq, _mm256_set1_epi32((s0 | (s1 << 16)) as i32));
                    }
                    acc_m[t] = _mm256_fmadd_ps(_mm256_mul_ps(neg_dmin, dx), _mm256_cvtepi32_ps(msum), acc_m[t]);
                }
            }
            let mut out = [[0f32; 8]; T];
            for t in 0..T {
                _mm256_storeu_ps(out[t].as_mut_ptr(), _mm256_add_ps(acc[t], acc_m[t]));
            }
            out
        }

        /// Q5_0's fifth bits of pieces `c` (bit `4 + c` of each byte, shifted
        /// right by `R` = c) and `c + 4` (bit `c`, shifted left by `L` =
        /// 4 − c), each at bit 4 (`crate::qmatmul::packed32`'s layout).
        #[inline]
        #[target_feature(enable = $feat)]
        unsafe fn q5_fifth<const R: i32, const L: i32>(qh: __m256i) -> (__m256i, __m256i) {
            let bit4 = _mm256_set1_epi8(0x10);
            (_mm256_and_si256(_mm256_srli_epi16::<R>(qh), bit4), _mm256_and_si256(_mm256_slli_epi16::<L>(qh), bit4))
        }

        /// `T` activation rows against eight Q8_0 (`F = FMT_Q8_0`), Q5_0 or
        /// Q4_0 weight rows repacked into one group per block
        /// (`crate::qmatmul::packed32`), as `[token][row]`; `sums[t][b]` is
        /// Σ qs of token `t`'s block `b`. Each 256-bit register holds four
        /// values of each of the eight rows as `w + offset` (u8); the token's
        /// four matching bytes are broadcast and one `dp_acc` leaves row `r`'s
        /// products in lane `r`; the offset's share, `offset · Σ qs`, is taken
        /// off in integers (exact), and the float steps run once per eight
        /// rows. Without VNNI, Q8_0 goes back to signed bytes and the sign
        /// trick (`maddubs` would saturate on `w + 128`); the integer sums are
        /// the same. Per token the steps are the same whatever `T`: a row's
        /// result is the same bit for bit in decode (`T` = 1) and prefill, and
        /// on every tier.
        #[target_feature(enable = $feat)]
        pub(in crate::qmatmul) unsafe fn gemm_q32_8x<const F: u8, const T: usize>(pk: &[u8], xs: &[&[BlockQ8]; T], sums: &[&[i32]; T]) -> [[f32; 8]; T] {
            use crate::qmatmul::packed32::{GROUP_Q4_0, GROUP_Q5_0, GROUP_Q8_0, OFF_D, OFF_QH};
            let (gb, offset) = match F {
                Q8_0_FMT => (GROUP_Q8_0, if VNNI { 128 } else { 0 }),
                Q5_0_FMT => (GROUP_Q5_0, 16),
                _ => (GROUP_Q4_0, 8),
            };
            let nb = pk.len() / gb;
            assert!(pk.len() == nb * gb && xs.iter().all(|x| x.len() >= nb) && sums.iter().all(|s| s.len() >= nb));
            let m4 = _mm256_set1_epi8(0x0F);
            let flip = _mm256_set1_epi8(0x80u8 as i8);
            let mut acc = [_mm256_setzero_ps(); T];
            let pp = pk.as_ptr();
            for b in 0..nb {
                let g = pp.add(b * gb);
                if T == 1 {
                    // decode streams the groups from memory
                    for line in (0..gb).step_by(64) {
                        _mm_prefetch::<_MM_HINT_T0>(g.wrapping_add(2 * gb + line) as *const i8);
                    }
                }
                let d = _mm256_cvtph_ps(_mm_loadu_si128(g.add(OFF_D) as *const __m128i));
                let mut sumi = [_mm256_setzero_si256(); T];
                // piece p (values 4p..4p+4 of every row) as u8 against each token's bytes 4p..4p+4
                macro_rules! piece {
                    ($dol p:expr, $dol u:expr) => {{
                        let u = $dol u;
                        if F == Q8_0_FMT && !VNNI {
                            let w = _mm256_xor_si256(u, flip);
                            let wabs = _mm256_sign_epi8(w, w);
                            for t in 0..T {
                                let q8 = xs[t].get_unchecked(b).qs.as_ptr().add(4 * $dol p);
                                let x = _mm256_set1_epi32(std::ptr::read_unaligned(q8 as *const i32));
                                sumi[t] = dp_acc(sumi[t], wabs, _mm256_sign_epi8(x, w));
                            }
                        } else {
                            for t in 0..T {
                                let q8 = xs[t].get_unchecked(b).qs.as_ptr().add(4 * $dol p);
                                let x = _mm256_set1_epi32(std::ptr::read_unaligned(q8 as *const i32));
                                sumi[t] = dp_acc(sumi[t], u, x);
                            }
                        }
                    }};
                }
                if F == Q8_0_FMT {
                    for p in 0..8 {
                        piece!(p, _mm256_loadu_si256(g.add(16 + 32 * p) as *const __m256i));
                    }
                } else {
                    let qs = g.add(if F == Q5_0_FMT { 48 } else { 16 });
                    let qh = if F == Q5_0_FMT { _mm256_loadu_si256(g.add(OFF_QH) as *const __m256i) } else { _mm256_setzero_si256() };
                    macro_rules! nibbles {
                        ($dol c:literal, $dol r:literal, $dol l:literal) => {{
                            let bits = _mm256_loadu_si256(qs.add(32 * $dol c) as *const __m256i);
                            let (mut lo, mut hi) = (_mm256_and_si256(bits, m4), _mm256_and_si256(_mm256_srli_epi16::<4>(bits), m4));
                            if F == Q5_0_FMT {
                                let (h_lo, h_hi) = q5_fifth::<$dol r, $dol l>(qh);
                                lo = _mm256_or_si256(lo, h_lo);
                                hi = _mm256_or_si256(hi, h_hi);
                            }
                            piece!($dol c, lo);
                            piece!($dol c + 4, hi);
                        }};
                    }
                    nibbles!(0, 0, 4);
                    nibbles!(1, 1, 3);
                    nibbles!(2, 2, 2);
                    nibbles!(3, 3, 1);
                }
                for t in 0..T {
                    let xb = xs[t].get_unchecked(b);
                    let mut s = sumi[t];
                    if offset != 0 {
                        s = _mm256_sub_epi32(s, _mm256_set1_epi32(offset * *sums[t].get_unchecked(b)));
                    }
                    acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_broadcast_ss(&xb.d)), _mm256_cvtepi32_ps(s), acc[t]);
                }
            }
            let mut out = [[0f32; 8]; T];
            for t in 0..T {
                _mm256_storeu_ps(out[t].as_mut_ptr(), acc[t]);
            }
            out
        }
    };
}
pub(crate) use x86_kernels;

use std::arch::x86_64::*;

/// Σ u8 × i8 per four bytes: `maddubs` (i16 pairs) and `madd` with ones.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_i32(u: __m256i, i: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, i), _mm256_set1_epi16(1))
}

/// `acc` + the pair products of two i16 vectors.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
}

/// `acc` + [`dot_i32`]: exact only where no byte pair's products overflow
/// `maddubs`'s i16 (u8 values up to 127 against any i8).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dp_acc(acc: __m256i, u: __m256i, i: __m256i) -> __m256i {
    _mm256_add_epi32(acc, dot_i32(u, i))
}

/// Whether this tier's `dp_acc` takes any u8 (`vpdpbusd`).
const VNNI: bool = false;

x86_kernels!($, "avx2,fma,f16c");
