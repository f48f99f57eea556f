//! Issue 19 §5: malformed GGUF headers (huge tensor/kv counts, huge
//! strings, overflowing element counts, zero heads, an alignment of 0) give
//! typed errors, never a panic, an abort or an allocation sized by the
//! header. Plus a seeded mutation sweep over a small valid header (the
//! stable stand-in for the fuzz target `scripts/fuzz gguf` runs longer).
//! Before the fix: zero heads divided by zero (panic) in the llama loader,
//! and an alignment of 0 panicked inside candle's reader.

mod common;

use std::path::Path;

use common::{write_gguf, Meta};
use tresor_llm::gguf::GgufFile;
use tresor_llm::{Device, LlmModel, LoadOptions};

fn f32_tensor(name: &str, n: u64) -> (&str, Vec<u64>, u32, Vec<u8>) {
    (name, vec![n], 0, vec![0u8; n as usize * 4])
}

/// Loads `bytes` as a model on a thread: Err(message) is the expected outcome.
fn load_bytes(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    match std::panic::catch_unwind(|| LlmModel::load(&p, &Device::Cpu, &LoadOptions::default())) {
        Err(_) => panic!("{name}: loading panicked"),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
    }
}

fn llama_meta(heads: u32, kv: u32, blocks: u32) -> Vec<(&'static str, Meta<'static>)> {
    vec![
        ("general.architecture", Meta::Str("llama")),
        ("tokenizer.ggml.model", Meta::Str("gpt2")),
        ("tokenizer.ggml.tokens", Meta::StrArray(vec!["a", "b", "ab"])),
        ("tokenizer.ggml.merges", Meta::StrArray(vec!["a b"])),
        ("llama.context_length", Meta::U32(128)),
        ("llama.attention.head_count", Meta::U32(heads)),
        ("llama.attention.head_count_kv", Meta::U32(kv)),
        ("llama.block_count", Meta::U32(blocks)),
        ("llama.embedding_length", Meta::U32(8)),
    ]
}

#[test]
fn malformed_headers_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = write_gguf(&llama_meta(2, 1, 1), &[f32_tensor("token_embd.weight", 24)]);
    // counts at offsets 8 (tensors) and 16 (kv pairs)
    for (at, name) in [(8, "tensors"), (16, "kv")] {
        for v in [u64::MAX, 1 << 40, 1 << 20] {
            let mut b = good.clone();
            b[at..at + 8].copy_from_slice(&v.to_le_bytes());
            assert!(load_bytes(d, &format!("{name}-{v}.gguf"), &b).is_err());
        }
    }
    // a string (the first key) claiming 2^62 bytes
    let mut b = good.clone();
    b[24..32].copy_from_slice(&(1u64 << 62).to_le_bytes());
    assert!(load_bytes(d, "string.gguf", &b).is_err());
    // zero heads, zero kv heads, heads not a multiple, 4 billion blocks
    for (h, kv, blocks) in [(0, 0, 1), (2, 0, 1), (3, 2, 1), (2, 1, u32::MAX)] {
        let b = write_gguf(&llama_meta(h, kv, blocks), &[f32_tensor("token_embd.weight", 24)]);
        let e = load_bytes(d, &format!("shape-{h}-{kv}-{blocks}.gguf"), &b).unwrap_err();
        assert!(e.contains("heads") || e.contains("block_count"), "{e}");
    }
    // element counts that overflow u64 and ones far past the file size
    for dims in [vec![1u64 << 40, 1 << 40], vec![u64::MAX, 2], vec![1 << 33]] {
        let b = write_gguf(&llama_meta(2, 1, 1), &[("token_embd.weight", dims.clone(), 0, vec![0u8; 96])]);
        let e = load_bytes(d, "dims.gguf", &b).unwrap_err();
        assert!(e.contains("elements") || e.contains("truncated") || e.contains("needs"), "{dims:?}: {e}");
    }
    // an alignment of 0 (candle divides by it)
    let mut meta = llama_meta(2, 1, 1);
    meta.push(("general.alignment", Meta::U32(0)));
    assert!(load_bytes(d, "align.gguf", &write_gguf(&meta, &[f32_tensor("token_embd.weight", 24)])).is_err());
}

/// Seeded byte mutations of a valid header: every one opens or fails cleanly.
#[test]
fn mutated_headers_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_gguf(&llama_meta(2, 1, 1), &[f32_tensor("token_embd.weight", 24)]);
    let p = dir.path().join("m.gguf");
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..1500 {
        let mut b = good.clone();
        for _ in 0..(1 + next() % 4) {
            let i = (next() % b.len() as u64) as usize;
            b[i] = match next() % 4 {
                0 => 0xFF,
                1 => 0,
                _ => next() as u8,
            };
        }
        if next() % 8 == 0 {
            b.truncate((next() % b.len() as u64) as usize);
        }
        std::fs::write(&p, &b).unwrap();
        let r = std::panic::catch_unwind(|| GgufFile::open(&p).map(|_| ()));
        assert!(r.is_ok(), "panicked on a mutated header: {:?}", &b[..b.len().min(64)]);
    }
}

#[path = "../../../fuzz/mutate.rs"]
mod mutate;

fn open_bytes(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.gguf");
    std::fs::write(&p, bytes).unwrap();
    if let Ok(g) = GgufFile::open(&p) {
        let _ = tresor_llm::GgufTokenizer::from_gguf(&g);
    }
}

/// `scripts/fuzz gguf`: the header reader and tokenizer builder under the
/// mutation fuzzer for TRESOR_FUZZ_SECONDS.
#[test]
#[ignore]
fn fuzz_gguf_long() {
    mutate::run("gguf", 0, true, &open_bytes);
}
