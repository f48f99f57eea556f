//! Just enough of the GGUF header to label a pulled model: its architecture
//! and context length. Tolerant: anything unexpected gives `None` (the LLM
//! runtime, not this crate, reports broken GGUF files).

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GgufInfo {
    pub architecture: Option<String>,
    pub context_length: Option<usize>,
}

/// Read `general.architecture` and `<arch>.context_length` from a GGUF file.
pub fn read_info(path: &Path) -> Option<GgufInfo> {
    let mut r = BufReader::new(File::open(path).ok()?);
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic).ok()?;
    if &magic != b"GGUF" {
        return None;
    }
    let version = read_u32(&mut r)?;
    if !(2..=3).contains(&version) {
        return None;
    }
    let _tensors = read_u64(&mut r)?;
    let kv_count = read_u64(&mut r)?;
    let mut info = GgufInfo::default();
    let mut contexts: Vec<(String, u64)> = Vec::new();
    for _ in 0..kv_count.min(1 << 20) {
        let key = read_string(&mut r)?;
        let ty = read_u32(&mut r)?;
        if key == "general.architecture" && ty == 8 {
            info.architecture = Some(read_string(&mut r)?);
        } else if key.ends_with(".context_length") && is_int(ty) {
            contexts.push((key, read_int(&mut r, ty)?));
        } else {
            skip_value(&mut r, ty)?;
        }
        if let Some(arch) = &info.architecture {
            if let Some((_, n)) = contexts.iter().find(|(k, _)| *k == format!("{arch}.context_length")) {
                info.context_length = Some(*n as usize);
                break;
            }
        }
    }
    Some(info)
}

fn read_u32(r: &mut impl Read) -> Option<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b).ok()?;
    Some(u32::from_le_bytes(b))
}

fn read_u64(r: &mut impl Read) -> Option<u64> {
    let mut b = [0u8; 8];
    r.read_exact(&mut b).ok()?;
    Some(u64::from_le_bytes(b))
}

fn read_string(r: &mut impl Read) -> Option<String> {
    let len = read_u64(r)?;
    if len > 1 << 26 {
        return None;
    }
    let mut b = vec![0u8; len as usize];
    r.read_exact(&mut b).ok()?;
    String::from_utf8(b).ok()
}

fn is_int(ty: u32) -> bool {
    matches!(ty, 0 | 1 | 2 | 3 | 4 | 5 | 10 | 11)
}

fn read_int(r: &mut impl Read, ty: u32) -> Option<u64> {
    let size = scalar_size(ty)?;
    let mut b = [0u8; 8];
    r.read_exact(&mut b[..size]).ok()?;
    Some(u64::from_le_bytes(b))
}

/// Bytes of a fixed-size GGUF scalar type.
fn scalar_size(ty: u32) -> Option<usize> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => return None,
    })
}

fn skip_value<R: Read + Seek>(r: &mut R, ty: u32) -> Option<()> {
    match ty {
        8 => {
            let len = read_u64(r)?;
            r.seek_relative(i64::try_from(len).ok()?).ok()
        }
        9 => {
            let elem = read_u32(r)?;
            let n = read_u64(r)?;
            if elem == 8 {
                for _ in 0..n {
                    skip_value(r, 8)?;
                }
                Some(())
            } else {
                let total = n.checked_mul(scalar_size(elem)? as u64)?;
                r.seek_relative(i64::try_from(total).ok()?).ok()
            }
        }
        t => {
            let size = scalar_size(t)?;
            r.seek_relative(size as i64).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_architecture_and_context_from_a_tiny_header() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("t.gguf");
        std::fs::write(&p, crate::testing::tiny_gguf("gemma3", 32768)).unwrap();
        let info = read_info(&p).unwrap();
        assert_eq!(info.architecture.as_deref(), Some("gemma3"));
        assert_eq!(info.context_length, Some(32768));
        std::fs::write(&p, b"not a gguf").unwrap();
        assert_eq!(read_info(&p), None);
    }

    #[test]
    fn reads_the_shipped_smollm2_when_installed() {
        let dir = crate::paths::checkout_models_dir(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        let p = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
        if !p.is_file() {
            return;
        }
        let info = read_info(&p).unwrap();
        assert_eq!(info.architecture.as_deref(), Some("llama"));
        assert_eq!(info.context_length, Some(8192));
    }
}
