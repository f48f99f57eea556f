//! The usearch HNSW index over chunk embeddings (key = chunk id, cosine).
//! A derived cache of the embeddings in SQLite: it can always be rebuilt
//! from them, and is kept consistent by replaying SQLite's index log (see
//! `store` and docs/storage.md). It only converts to and from bytes: the
//! store seals them with the workspace key before they touch the disk
//! (encryption at rest), so this module never writes a file itself.

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantization {
    F32,
    F16,
    I8,
}

impl Quantization {
    pub fn as_str(self) -> &'static str {
        match self {
            Quantization::F32 => "f32",
            Quantization::F16 => "f16",
            Quantization::I8 => "i8",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "f32" => Some(Quantization::F32),
            "f16" => Some(Quantization::F16),
            "i8" => Some(Quantization::I8),
            _ => None,
        }
    }
    fn scalar(self) -> ScalarKind {
        match self {
            Quantization::F32 => ScalarKind::F32,
            Quantization::F16 => ScalarKind::F16,
            Quantization::I8 => ScalarKind::I8,
        }
    }
}

pub struct VectorIndex {
    idx: Index,
    dim: usize,
}

/// HNSW parameters: M=16, efConstruction=128, efSearch=128 (recall@10 ≥ 0.98 at 1M in `bench kb`).
fn options(dim: usize, q: Quantization) -> IndexOptions {
    IndexOptions {
        dimensions: dim,
        metric: MetricKind::Cos,
        quantization: q.scalar(),
        connectivity: 16,
        expansion_add: 128,
        expansion_search: 128,
        multi: false,
    }
}

impl VectorIndex {
    pub fn new(dim: usize, q: Quantization, capacity: usize) -> Result<Self, String> {
        let idx = Index::new(&options(dim, q)).map_err(|e| e.to_string())?;
        idx.reserve(capacity.max(64)).map_err(|e| e.to_string())?;
        Ok(VectorIndex { idx, dim })
    }

    /// An index from what [`VectorIndex::to_bytes`] produced.
    pub fn from_bytes(bytes: &[u8], dim: usize, q: Quantization) -> Result<Self, String> {
        let meta = Index::metadata_from_buffer(bytes).map_err(|e| e.to_string())?;
        if meta.dimensions as usize != dim {
            return Err(format!("index has {} dimensions, knowledge base {dim}", meta.dimensions));
        }
        let idx = Index::new(&options(dim, q)).map_err(|e| e.to_string())?;
        idx.load_from_buffer(bytes).map_err(|e| e.to_string())?;
        if idx.dimensions() != dim {
            return Err(format!("index has {} dimensions, knowledge base {dim}", idx.dimensions()));
        }
        Ok(VectorIndex { idx, dim })
    }

    /// The serialized index (usearch's file format, in memory).
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; self.idx.serialized_length()];
        self.idx.save_to_buffer(&mut buf).map_err(|e| e.to_string())?;
        Ok(buf)
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn len(&self) -> usize {
        self.idx.size()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, key: u64) -> bool {
        self.idx.contains(key)
    }

    /// Makes room for `extra` more vectors, for `threads` concurrent adders.
    pub fn reserve_more(&self, extra: usize, threads: usize) -> Result<(), String> {
        let need = self.idx.size() + extra;
        if need > self.idx.capacity() {
            let cap = need.max(self.idx.capacity() * 3 / 2).max(1024);
            self.idx.reserve_capacity_and_threads(cap, threads.max(1)).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Adds (or replaces) the vector of `key`.
    pub fn upsert(&self, key: u64, v: &[f32]) -> Result<(), String> {
        if v.len() != self.dim {
            return Err(format!("vector of {} dims for a {}-dim index", v.len(), self.dim));
        }
        if self.idx.contains(key) {
            self.idx.remove(key).map_err(|e| e.to_string())?;
        }
        self.reserve_more(1, 1)?;
        self.idx.add(key, v).map_err(|e| e.to_string())
    }

    /// Adds without the contains/reserve checks (bulk builds; call `reserve_more` first).
    pub fn add_unchecked(&self, key: u64, v: &[f32]) -> Result<(), String> {
        self.idx.add(key, v).map_err(|e| e.to_string())
    }

    pub fn remove(&self, key: u64) -> Result<(), String> {
        if self.idx.contains(key) {
            self.idx.remove(key).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    pub fn set_ef_search(&self, ef: usize) {
        self.idx.change_expansion_search(ef);
    }

    /// Approximate k nearest: (key, cosine similarity), best first.
    pub fn search(&self, q: &[f32], k: usize, filter: Option<&dyn Fn(u64) -> bool>) -> Result<Vec<(u64, f32)>, String> {
        if self.idx.size() == 0 || k == 0 {
            return Ok(Vec::new());
        }
        let m = match filter {
            Some(f) => self.idx.filtered_search(q, k, f),
            None => self.idx.search(q, k),
        }
        .map_err(|e| e.to_string())?;
        Ok(m.keys.into_iter().zip(m.distances).map(|(k, d)| (k, 1.0 - d)).collect())
    }

    /// Exact (brute force) k nearest over the quantized vectors.
    pub fn exact_search(&self, q: &[f32], k: usize) -> Result<Vec<(u64, f32)>, String> {
        let m = self.idx.exact_search(q, k).map_err(|e| e.to_string())?;
        Ok(m.keys.into_iter().zip(m.distances).map(|(k, d)| (k, 1.0 - d)).collect())
    }

    pub fn memory_bytes(&self) -> usize {
        self.idx.memory_usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_search_remove_to_from_bytes() {
        let idx = VectorIndex::new(4, Quantization::F16, 8).unwrap();
        idx.upsert(1, &[1.0, 0.0, 0.0, 0.0]).unwrap();
        idx.upsert(2, &[0.0, 1.0, 0.0, 0.0]).unwrap();
        idx.upsert(3, &[0.7, 0.7, 0.0, 0.0]).unwrap();
        idx.upsert(3, &[0.0, 0.0, 1.0, 0.0]).unwrap(); // replace
        assert_eq!(idx.len(), 3);
        let hits = idx.search(&[1.0, 0.1, 0.0, 0.0], 2, None).unwrap();
        assert_eq!(hits[0].0, 1);
        let f = |k: u64| k != 1;
        assert_eq!(idx.search(&[1.0, 0.1, 0.0, 0.0], 1, Some(&f)).unwrap()[0].0, 2);
        idx.remove(2).unwrap();
        let bytes = idx.to_bytes().unwrap();
        let back = VectorIndex::from_bytes(&bytes, 4, Quantization::F16).unwrap();
        assert_eq!(back.len(), 2);
        assert!(back.contains(3) && !back.contains(2));
        assert!(VectorIndex::from_bytes(&bytes, 8, Quantization::F16).is_err());
        assert!(VectorIndex::from_bytes(b"garbage", 4, Quantization::F16).is_err());
    }
}
