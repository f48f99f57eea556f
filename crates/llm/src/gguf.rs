//! Opening GGUF files: header and metadata parsing with typed errors, and
//! up-front validation (every tensor lies inside the file, every
//! quantization is one candle can run) so a truncated or corrupt file fails
//! with a message that names it, before any weight is read.
//! Never interprets the model itself; that is `model.rs`.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::GgmlDType;

use crate::error::{LlmError, Result};

/// A parsed GGUF header: metadata and tensor directory, plus the open file.
pub struct GgufFile {
    pub path: PathBuf,
    pub content: Content,
    pub file_size: u64,
    pub reader: BufReader<File>,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|source| LlmError::Io { path: path.to_path_buf(), source })?;
        let file_size = file
            .metadata()
            .map_err(|source| LlmError::Io { path: path.to_path_buf(), source })?
            .len();
        let mut reader = BufReader::new(file);
        let mut magic = [0u8; 4];
        {
            use std::io::{Read, Seek, SeekFrom};
            let n = reader.read(&mut magic).map_err(|source| LlmError::Io { path: path.to_path_buf(), source })?;
            if n < 4 || &magic != b"GGUF" {
                return Err(LlmError::InvalidGguf {
                    path: path.to_path_buf(),
                    reason: if n < 4 {
                        format!("file is only {file_size} bytes")
                    } else {
                        "missing GGUF magic (is this a GGUF model file?)".into()
                    },
                });
            }
            reader
                .seek(SeekFrom::Start(0))
                .map_err(|source| LlmError::Io { path: path.to_path_buf(), source })?;
        }
        // candle's reader bounds counts and strings by the file size; a panic
        // inside it (an alignment of 0 divides by zero) is still only a bad file
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Content::read(&mut reader))).map_err(|_| {
            LlmError::InvalidGguf { path: path.to_path_buf(), reason: "header/metadata unreadable (the reader panicked); the file is corrupt".into() }
        })?;
        let content = read.map_err(|e| {
            let msg = e.to_string();
            match msg.strip_prefix("unknown dtype for tensor ") {
                Some(code) => LlmError::UnsupportedQuantization {
                    path: path.to_path_buf(),
                    tensor: "(one or more)".into(),
                    dtype: format!("ggml type {code} (e.g. an IQ* or TQ* quantization)"),
                },
                None => LlmError::InvalidGguf {
                    path: path.to_path_buf(),
                    reason: format!("header/metadata unreadable ({msg}); the file is probably truncated or corrupt"),
                },
            }
        })?;
        let gguf = GgufFile { path: path.to_path_buf(), content, file_size, reader };
        gguf.validate_tensors()?;
        Ok(gguf)
    }

    fn validate_tensors(&self) -> Result<()> {
        if self.content.tensor_infos.is_empty() {
            return Err(LlmError::InvalidGguf { path: self.path.clone(), reason: "it contains no tensors".into() });
        }
        for (name, info) in &self.content.tensor_infos {
            // element counts multiply in u64 with overflow checked: a header
            // whose dims overflow must not wrap into a small, "valid" size
            let elems = info.shape.dims().iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64)).filter(|&e| e <= self.file_size.saturating_mul(64));
            let Some(elems) = elems.map(|e| e as usize) else {
                return Err(LlmError::InvalidGguf {
                    path: self.path.clone(),
                    reason: format!("tensor `{name}` declares dims {:?}: more elements than the file can hold", info.shape.dims()),
                });
            };
            let block = info.ggml_dtype.block_size();
            if elems % block != 0 {
                return Err(LlmError::InvalidGguf {
                    path: self.path.clone(),
                    reason: format!("tensor `{name}` has {elems} elements, not a multiple of its block size {block}"),
                });
            }
            if !supported_dtype(info.ggml_dtype) {
                return Err(LlmError::UnsupportedQuantization {
                    path: self.path.clone(),
                    tensor: name.clone(),
                    dtype: format!("{:?}", info.ggml_dtype),
                });
            }
            let bytes = ((elems / block) as u64).saturating_mul(info.ggml_dtype.type_size() as u64);
            let end = self.content.tensor_data_offset.saturating_add(info.offset).saturating_add(bytes);
            if end > self.file_size {
                return Err(LlmError::TruncatedGguf {
                    path: self.path.clone(),
                    tensor: name.clone(),
                    needed: end,
                    actual: self.file_size,
                });
            }
        }
        Ok(())
    }

    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    pub fn architecture(&self) -> Result<String> {
        self.get_str("general.architecture")
            .map(str::to_string)
            .ok_or_else(|| LlmError::InvalidGguf {
                path: self.path.clone(),
                reason: "metadata key `general.architecture` is missing".into(),
            })
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.content.metadata.get(key).and_then(|v| v.to_string().ok()).map(String::as_str)
    }

    pub fn get_u32(&self, key: &str) -> Option<u32> {
        self.content.metadata.get(key).and_then(value_as_u64).map(|v| v as u32)
    }

    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.content.metadata.get(key).and_then(|v| v.to_bool().ok())
    }

    /// `{arch}.context_length`, the model's trained context.
    pub fn context_length(&self) -> Option<usize> {
        let arch = self.architecture().ok()?;
        self.get_u32(&format!("{arch}.context_length")).map(|v| v as usize)
    }
}

/// Integer metadata values come in every width; read any of them.
pub fn value_as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::U8(x) => Some(*x as u64),
        Value::I8(x) => u64::try_from(*x).ok(),
        Value::U16(x) => Some(*x as u64),
        Value::I16(x) => u64::try_from(*x).ok(),
        Value::U32(x) => Some(*x as u64),
        Value::I32(x) => u64::try_from(*x).ok(),
        Value::U64(x) => Some(*x),
        Value::I64(x) => u64::try_from(*x).ok(),
        _ => None,
    }
}

/// The quantizations candle's CPU kernels implement.
fn supported_dtype(dtype: GgmlDType) -> bool {
    use GgmlDType::*;
    matches!(dtype, F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q8_1 | Q2K | Q3K | Q4K | Q5K | Q6K | Q8K)
}
