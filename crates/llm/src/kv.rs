//! The host KV cache of one layer of Tresor's own forwards (Llama's and
//! Gemma's): keys and values as `(position, kv head, head dim)` rows, in
//! f16 by default, as llama.cpp's, or f32 with `TRESOR_KV=f32` (f16 is half
//! the memory: Gemma-3-270M at 32k positions holds 18 layers × 2 × 256
//! values per position, 600 MB in f32). Measured before it became the
//! default (2026-12-07): next-token distributions within a mean KL
//! divergence of 0.006 nats of the f32 cache's on Gemma-3-270M and 0.0035 on
//! SmolLM2, every greedy token the same (`f16_kv_cache_matches_f32` in
//! `gemma`, `llama`) — the size of the change any harmless reordering of a
//! kernel's sums makes — and `tresor eval answers` on the EN and DE fit
//! splits with the same reference, citation and refusal figures (token F1
//! +0.009 EN, −0.015 DE; 3 of 49 answers worded differently). An f16 cache
//! rounds each key and value once, when
//! it is stored (what llama.cpp's default f16 cache does); attention then
//! widens the rows exactly (see [`crate::attention`]).
//!
//! Owns: the element type, growth (amortised doubling, up to what was
//! written) and writes at a position. Never: computes attention itself or
//! decides how many positions the model may use (that is the caller's
//! `max_positions`).

use half::f16;

use crate::attention::{attend, Heads, KvElem};

/// The element type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvType {
    F16,
    F32,
}

impl KvType {
    /// `TRESOR_KV` (`f16` or `f32`; unset: f16). An unknown value is an
    /// error that names the variable, not a silent default.
    pub fn from_env() -> Result<KvType, String> {
        match std::env::var("TRESOR_KV") {
            Err(_) => Ok(KvType::F16),
            Ok(v) => KvType::parse(&v),
        }
    }

    pub fn parse(v: &str) -> Result<KvType, String> {
        match v.trim().to_ascii_lowercase().as_str() {
            "" | "f16" => Ok(KvType::F16),
            "f32" => Ok(KvType::F32),
            other => Err(format!("TRESOR_KV={other}: expected f16 or f32")),
        }
    }

    /// Bytes per cached value.
    pub fn bytes(self) -> usize {
        match self {
            KvType::F16 => 2,
            KvType::F32 => 4,
        }
    }
}

enum Buf {
    F16(Vec<f16>),
    F32(Vec<f32>),
}

/// Keys and values of one layer.
pub(crate) struct LayerKv {
    k: Buf,
    v: Buf,
}

/// The shape of one attention call over a [`LayerKv`].
#[derive(Clone, Copy)]
pub(crate) struct Query<'a> {
    pub q: &'a [f32],
    pub t: usize,
    pub pos: usize,
    pub nh: usize,
    pub nkv: usize,
    pub hd: usize,
    pub scale: f32,
    pub window: Option<usize>,
}

fn store<T: KvElem>(cache: &mut Vec<T>, new: &[f32], pos: usize, kvd: usize) {
    let end = pos * kvd + new.len();
    if cache.len() < end {
        cache.resize(end, T::from_f32(0.0));
    }
    for (d, s) in cache[pos * kvd..end].iter_mut().zip(new) {
        *d = T::from_f32(*s);
    }
}

impl LayerKv {
    pub(crate) fn new(kind: KvType) -> Self {
        match kind {
            KvType::F16 => LayerKv { k: Buf::F16(Vec::new()), v: Buf::F16(Vec::new()) },
            KvType::F32 => LayerKv { k: Buf::F32(Vec::new()), v: Buf::F32(Vec::new()) },
        }
    }

    /// Writes `t` rows of keys and values (each `(t, kvd)`) at position `pos`.
    pub(crate) fn store(&mut self, k: &[f32], v: &[f32], pos: usize, kvd: usize) {
        for (buf, new) in [(&mut self.k, k), (&mut self.v, v)] {
            match buf {
                Buf::F16(c) => store(c, new, pos, kvd),
                Buf::F32(c) => store(c, new, pos, kvd),
            }
        }
    }

    /// Causal attention of `a` over the first `a.pos + a.t` cached positions, into `out` (t, nh · hd).
    pub(crate) fn attend(&self, a: Query, out: &mut [f32]) {
        let n = (a.pos + a.t) * a.nkv * a.hd;
        let Query { q, t, pos, nh, nkv, hd, scale, window } = a;
        match (&self.k, &self.v) {
            (Buf::F16(k), Buf::F16(v)) => attend(&Heads { q, k: &k[..n], v: &v[..n], t, pos, nh, nkv, hd, scale, window }, out),
            (Buf::F32(k), Buf::F32(v)) => attend(&Heads { q, k: &k[..n], v: &v[..n], t, pos, nh, nkv, hd, scale, window }, out),
            _ => unreachable!("keys and values are made with one type in LayerKv::new"),
        }
    }

    /// Bytes held (capacity), for the memory report.
    pub(crate) fn bytes(&self) -> usize {
        let b = |x: &Buf| match x {
            Buf::F16(c) => c.capacity() * 2,
            Buf::F32(c) => c.capacity() * 4,
        };
        b(&self.k) + b(&self.v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tresor_kv_values() {
        assert_eq!(KvType::parse("f32"), Ok(KvType::F32));
        assert_eq!(KvType::parse(" F16 "), Ok(KvType::F16));
        assert_eq!(KvType::parse(""), Ok(KvType::F16));
        assert!(KvType::parse("q8").unwrap_err().contains("TRESOR_KV"));
    }

    #[test]
    fn stores_at_positions_and_rounds_once() {
        let kvd = 8;
        let (mut a, mut b) = (LayerKv::new(KvType::F16), LayerKv::new(KvType::F32));
        let rows: Vec<f32> = (0..3 * kvd).map(|i| i as f32 * 0.1 + 0.01).collect();
        for c in [&mut a, &mut b] {
            c.store(&rows, &rows, 0, kvd);
            // overwrite position 1 onwards (a shared prefix of 1, then new tokens)
            c.store(&rows[..2 * kvd], &rows[..2 * kvd], 1, kvd);
        }
        let (Buf::F16(k16), Buf::F32(k32)) = (&a.k, &b.k) else { panic!("types") };
        assert_eq!(k32.len(), 3 * kvd);
        assert_eq!(&k32[kvd..], &rows[..2 * kvd]);
        assert!(k16.iter().zip(k32).all(|(h, f)| h.to_f32() == f16::from_f32(*f).to_f32()));
        assert_eq!(a.bytes() * 2, b.bytes());
    }
}
