//! GGUF tensor data memory-mapped instead of copied: on the CPU each weight
//! becomes a candle `QTensor` whose blocks are read in place from the
//! mapping (candle 0.11's `QStorage::Cpu` takes any `QuantizedType`; its
//! own loader reads every tensor into a buffer and then copies that buffer
//! into the tensor, two copies of the largest tensor at once — Gemma's
//! 170 MB token embedding). Pages come in from the page cache as the
//! forward first reads them, are shared with every other process that maps
//! the same file, and can be dropped by the kernel under memory pressure.
//! Other devices upload from the mapping without the intermediate buffer.
//!
//! `TRESOR_MMAP=0` reads the weights into memory instead (candle's reader).
//!
//! Owns the mapping and the zero-copy storage type; never interprets a
//! tensor's meaning (that is `llama.rs` / `gemma.rs`). The file must not be
//! truncated while a model is loaded (the same contract as llama.cpp's
//! mmap; [`crate::gguf::GgufFile::open`] has already checked that every
//! tensor lies inside the file).

use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Seek};
use std::sync::{Arc, Mutex, Weak};

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::k_quants::{self, GgmlType};
use candle_core::quantized::{GgmlDType, QStorage, QTensor, QuantizedType};
use candle_core::{CpuStorage, Device, Result};
use half::f16;
use memmap2::Mmap;

/// The weight mappings alive in this process ([`release`] looks a slice up
/// here), each with the ranges released from it (offset, length).
static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());

struct Live {
    map: Weak<Mmap>,
    released: Vec<(usize, usize)>,
}

/// Lets the pages under `bytes` leave this process's resident set when they lie in a live weight
/// mapping (a weight read once to build a copy in another layout: the repacked Q4_K). A later
/// read maps the file's unchanged contents again from the page cache, since the mapping is
/// read-only and shared; no slice into it is invalidated. Returns false, doing nothing, for any
/// other memory (an owned copy, `TRESOR_MMAP=0`) and off Unix.
pub fn release(bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return false;
    }
    let (start, end) = (bytes.as_ptr() as usize, bytes.as_ptr() as usize + bytes.len());
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    for entry in live.iter_mut() {
        let Some(map) = entry.map.upgrade() else { continue };
        let (ms, me) = (map.as_ptr() as usize, map.as_ptr() as usize + map.len());
        if start >= ms && end <= me {
            entry.released.push((start - ms, bytes.len()));
            return advise_dont_need(&map, start - ms, bytes.len());
        }
    }
    false
}

#[cfg(unix)]
fn advise_dont_need(map: &Mmap, offset: usize, len: usize) -> bool {
    // SAFETY: `map` is a read-only shared file mapping (`Mmap::map`): MADV_DONTNEED only drops
    // its pages from this process, and the next read faults the file's unchanged bytes back in,
    // so every slice into it stays valid and reads the same values.
    unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) }.is_ok()
}

#[cfg(not(unix))]
fn advise_dont_need(_map: &Mmap, _offset: usize, _len: usize) -> bool {
    false
}

/// Where a loader takes its tensors from.
pub trait Tensors {
    fn tensor(&mut self, name: &str, device: &Device) -> Result<QTensor>;
}

/// candle's reader: each tensor read into memory.
pub struct ReadTensors<'a, R> {
    pub content: &'a Content,
    pub reader: &'a mut R,
}

impl<R: Read + Seek> Tensors for ReadTensors<'_, R> {
    fn tensor(&mut self, name: &str, device: &Device) -> Result<QTensor> {
        self.content.tensor(self.reader, name, device)
    }
}

/// Whether weights are mapped (`TRESOR_MMAP` unset or anything but `0`/`false`/`no`/`off`).
pub fn mmap_enabled() -> bool {
    !std::env::var("TRESOR_MMAP").is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "0" | "false" | "no" | "off"))
}

/// A GGUF file mapped read-only, with its parsed header.
pub struct MappedGguf<'a> {
    content: &'a Content,
    map: Arc<Mmap>,
}

impl<'a> MappedGguf<'a> {
    pub fn new(file: &File, content: &'a Content) -> std::io::Result<Self> {
        // SAFETY: the mapping is read-only and private to this process's
        // view; the file is a model file the caller opened and validated.
        // Truncating it while mapped is outside the contract (module docs).
        let map = Arc::new(unsafe { Mmap::map(file)? });
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|l| l.map.strong_count() > 0);
        live.push(Live { map: Arc::downgrade(&map), released: Vec::new() });
        Ok(MappedGguf { content, map })
    }

    /// Releases once more every range [`release`]d from this mapping while
    /// the model loaded, merged. A read fault maps the page cache's
    /// neighbouring pages too (fault-around, whole large folios on recent
    /// kernels), so packing one tensor brings back pages of the tensors
    /// around it that were already handed back: ~30 MB over the 112
    /// matrices of a Llama-3.2-1B, measured. Call after the last tensor is
    /// packed; returns the bytes advised.
    pub fn settle(&self) -> usize {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = live.iter_mut().find(|l| l.map.upgrade().is_some_and(|m| Arc::ptr_eq(&m, &self.map))) else {
            return 0;
        };
        let mut ranges = std::mem::take(&mut entry.released);
        ranges.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (off, len) in ranges {
            match merged.last_mut() {
                Some((s, l)) if off <= *s + *l => *l = (*l).max(off + len - *s),
                _ => merged.push((off, len)),
            }
        }
        merged.iter().filter(|(off, len)| advise_dont_need(&self.map, *off, *len)).map(|(_, len)| len).sum()
    }

    /// Bytes of the mapped file.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Tensors for MappedGguf<'_> {
    fn tensor(&mut self, name: &str, device: &Device) -> Result<QTensor> {
        let Some(info) = self.content.tensor_infos.get(name) else {
            candle_core::bail!("cannot find tensor info for {name}")
        };
        let dtype = info.ggml_dtype;
        let elems = info.shape.elem_count();
        if elems % dtype.block_size() != 0 {
            candle_core::bail!("tensor {name}: {elems} elements are not a multiple of the block size {}", dtype.block_size())
        }
        let size = elems / dtype.block_size() * dtype.type_size();
        let start = usize::try_from(self.content.tensor_data_offset.saturating_add(info.offset)).unwrap_or(usize::MAX);
        if start.checked_add(size).is_none_or(|end| end > self.map.len()) {
            candle_core::bail!("tensor {name} needs {size} bytes at offset {start}, the file has {}", self.map.len())
        }
        let dims = info.shape.dims().to_vec();
        if !device.is_cpu() {
            let bytes = &self.map[start..start + size];
            return QTensor::new(QStorage::from_data(Cow::Borrowed(bytes), device, dtype)?, dims);
        }
        use k_quants::{BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8K, BlockQ8_0, BlockQ8_1};
        let m = &self.map;
        let storage: Box<dyn QuantizedType> = match dtype {
            GgmlDType::F32 => mapped::<f32>(m, start, size),
            GgmlDType::F16 => mapped::<f16>(m, start, size),
            GgmlDType::BF16 => mapped::<half::bf16>(m, start, size),
            GgmlDType::Q4_0 => mapped::<BlockQ4_0>(m, start, size),
            GgmlDType::Q4_1 => mapped::<BlockQ4_1>(m, start, size),
            GgmlDType::Q5_0 => mapped::<BlockQ5_0>(m, start, size),
            GgmlDType::Q5_1 => mapped::<BlockQ5_1>(m, start, size),
            GgmlDType::Q8_0 => mapped::<BlockQ8_0>(m, start, size),
            GgmlDType::Q8_1 => mapped::<BlockQ8_1>(m, start, size),
            GgmlDType::Q2K => mapped::<BlockQ2K>(m, start, size),
            GgmlDType::Q3K => mapped::<BlockQ3K>(m, start, size),
            GgmlDType::Q4K => mapped::<BlockQ4K>(m, start, size),
            GgmlDType::Q5K => mapped::<BlockQ5K>(m, start, size),
            GgmlDType::Q6K => mapped::<BlockQ6K>(m, start, size),
            GgmlDType::Q8K => mapped::<BlockQ8K>(m, start, size),
        };
        QTensor::new(QStorage::Cpu(storage), dims)
    }
}

/// The blocks at `start..start + size` of the mapping, in place when they
/// are aligned for `T` (GGUF aligns tensor data to 32 bytes by default),
/// else copied once.
fn mapped<T: GgmlType + 'static>(map: &Arc<Mmap>, start: usize, size: usize) -> Box<dyn QuantizedType> {
    let blocks = size / std::mem::size_of::<T>();
    let ptr = map[start..].as_ptr();
    if (ptr as usize) % std::mem::align_of::<T>() == 0 {
        return Box::new(MappedBlocks::<T> { map: map.clone(), start, blocks, owned: None });
    }
    let mut v = vec![T::zeros(); blocks];
    // SAFETY: `v` holds `blocks · size_of::<T>()` = `size` bytes (checked by the caller to lie in the map);
    // GGML block types are plain data, valid for any bytes.
    unsafe { std::ptr::copy_nonoverlapping(ptr, v.as_mut_ptr() as *mut u8, blocks * std::mem::size_of::<T>()) };
    Box::new(v)
}

/// GGML blocks read in place from a mapping (or, once written to by
/// `from_float`, from an owned copy).
struct MappedBlocks<T> {
    map: Arc<Mmap>,
    start: usize,
    blocks: usize,
    owned: Option<Vec<T>>,
}

impl<T: GgmlType> MappedBlocks<T> {
    fn slice(&self) -> &[T] {
        match &self.owned {
            Some(v) => v.as_slice(),
            // SAFETY: `start..start + blocks · size_of::<T>()` lies in the mapping (checked in
            // `Tensors::tensor`), is aligned for `T` (checked in `mapped`) and lives as long as
            // the `Arc`; GGML block types are plain data, valid for any bytes.
            None => unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(self.start) as *const T, self.blocks) },
        }
    }

    fn owned(&mut self) -> &mut Vec<T> {
        if self.owned.is_none() {
            self.owned = Some(self.slice().to_vec());
        }
        self.owned.as_mut().expect("set above")
    }
}

impl<T: GgmlType + 'static> QuantizedType for MappedBlocks<T> {
    fn dtype(&self) -> GgmlDType {
        T::DTYPE
    }

    fn matmul_t(&self, mkn: (usize, usize, usize), lhs: &[f32], dst: &mut [f32]) -> Result<()> {
        k_quants::matmul(mkn, lhs, self.slice(), dst)
    }

    fn matmul_t_f16(&self, mkn: (usize, usize, usize), lhs: &[f16], dst: &mut [f16]) -> Result<()> {
        k_quants::matmul_f16(mkn, lhs, self.slice(), dst)
    }

    fn embedding(&self, ids: &[u32], rows: usize, hidden: usize) -> Result<CpuStorage> {
        if hidden % T::BLCK_SIZE != 0 {
            candle_core::bail!("quantized embedding hidden size {hidden} is not divisible by block size {}", T::BLCK_SIZE)
        }
        let row_blocks = hidden / T::BLCK_SIZE;
        let data = self.slice();
        if data.len() != rows * row_blocks {
            candle_core::bail!("quantized tensor has {} blocks, expected {}", data.len(), rows * row_blocks)
        }
        let mut out = vec![0f32; ids.len() * hidden];
        for (dst, &row) in out.chunks_exact_mut(hidden).zip(ids) {
            let row = row as usize;
            if row >= rows {
                candle_core::bail!("embedding id {row} is out of range for {rows} rows")
            }
            T::to_float(&data[row * row_blocks..(row + 1) * row_blocks], dst);
        }
        Ok(CpuStorage::F32(out))
    }

    fn dequantize(&self, elem_count: usize) -> Result<CpuStorage> {
        let mut ys = vec![0f32; elem_count];
        T::to_float(self.slice(), &mut ys);
        Ok(CpuStorage::F32(ys))
    }

    fn storage_size_in_bytes(&self) -> usize {
        self.slice().len() * std::mem::size_of::<T>()
    }

    fn as_ptr(&self) -> *const u8 {
        self.slice().as_ptr() as *const u8
    }

    fn block_size(&self) -> usize {
        T::BLCK_SIZE
    }

    fn from_float(&mut self, xs: &[f32]) {
        T::from_float(xs, self.owned())
    }

    fn from_float_imatrix(&mut self, xs: &[f32], imatrix_weights: &[f32], n_per_row: usize) {
        T::from_float_imatrix(xs, self.owned(), imatrix_weights, n_per_row)
    }

    fn size(&self) -> usize {
        self.storage_size_in_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file;
    use candle_core::{Module, Tensor};

    /// A `rows × cols` f32 matrix of `f(i)`, quantized to `d`.
    fn quantized(rows: usize, cols: usize, d: GgmlDType, f: impl Fn(usize) -> f32) -> QTensor {
        QTensor::quantize(&Tensor::from_vec((0..rows * cols).map(f).collect::<Vec<f32>>(), (rows, cols), &Device::Cpu).unwrap(), d).unwrap()
    }

    /// `tensors` written as a GGUF file in `dir`, opened again: the file and its header.
    fn written(dir: &std::path::Path, tensors: &[(&str, &QTensor)]) -> (std::fs::File, gguf_file::Content) {
        let path = dir.join("t.gguf");
        gguf_file::write(&mut std::fs::File::create(&path).unwrap(), &[], tensors).unwrap();
        let mut f = std::fs::File::open(&path).unwrap();
        let ct = gguf_file::Content::read(&mut f).unwrap();
        (f, ct)
    }

    /// Every supported block type, mapped, gives the bytes, the
    /// dequantized values and the matmul of candle's own (copying) reader,
    /// bit for bit; a missing name is an error.
    #[test]
    fn mapped_tensors_equal_read_tensors() {
        let dir = tempfile::tempdir().unwrap();
        let dev = Device::Cpu;
        let (rows, cols) = (8, 256);
        let types = [GgmlDType::F32, GgmlDType::F16, GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q5_0, GgmlDType::Q8_0, GgmlDType::Q4K, GgmlDType::Q5K, GgmlDType::Q6K];
        let tensors: Vec<(String, QTensor)> = types.iter().map(|&d| (format!("{d:?}"), quantized(rows, cols, d, |i| ((i * 37 % 101) as f32 - 50.0) / 40.0))).collect();
        let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let (mut f, ct) = written(dir.path(), &refs);
        let mut mapped = MappedGguf::new(&f, &ct).unwrap();
        let lhs = Tensor::from_vec((0..2 * cols).map(|i| (i as f32 * 0.01).sin()).collect::<Vec<f32>>(), (2, cols), &dev).unwrap();
        for d in types {
            let name = format!("{d:?}");
            let a = mapped.tensor(&name, &dev).unwrap();
            let b = ct.tensor(&mut f, &name, &dev).unwrap();
            assert_eq!(a.dtype(), d);
            assert_eq!(a.shape().dims(), &[rows, cols]);
            assert_eq!(a.data().unwrap(), b.data().unwrap(), "{name}: bytes");
            let (da, db) = (a.dequantize(&dev).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.dequantize(&dev).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap());
            assert_eq!(da, db, "{name}: dequantized");
            let mm = |t: QTensor| candle_core::quantized::QMatMul::from_qtensor(t).unwrap().forward(&lhs).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(mm(a), mm(b), "{name}: matmul");
        }
        assert!(mapped.tensor("missing", &dev).is_err());
    }

    /// A mapped weight's pages can be released and read again unchanged; memory outside every
    /// live mapping is left alone (released pages of an owned copy would read back as zeros).
    #[test]
    fn released_pages_read_back_the_same_and_owned_memory_is_never_released() {
        let dir = tempfile::tempdir().unwrap();
        let dev = Device::Cpu;
        let q = quantized(64, 1024, GgmlDType::Q4K, |i| ((i * 31 % 97) as f32 - 48.0) / 30.0);
        let (f, ct) = written(dir.path(), &[("w", &q)]);
        let mut mapped = MappedGguf::new(&f, &ct).unwrap();
        let t = mapped.tensor("w", &dev).unwrap();
        let before = t.data().unwrap().into_owned();
        let data = t.data().unwrap();
        assert!(matches!(data, Cow::Borrowed(_)), "a mapped tensor lends its bytes");
        assert_eq!(release(&data), cfg!(unix));
        assert_eq!(&*data, &before[..], "read again after the release");
        assert_eq!(mapped.settle(), if cfg!(unix) { data.len() } else { 0 }, "settling releases what was released, once more");
        assert_eq!(&*data, &before[..], "read again after settling");
        assert_eq!(mapped.settle(), 0, "settling forgets the ranges it released");
        let owned = before.clone();
        assert!(!release(&owned), "an owned copy is not in a mapping");
        assert_eq!(owned, before);
        drop(data);
        drop(t);
        drop(mapped);
        assert!(!release(&before));
    }
}
