//! Bad GGUF input never panics: each case gives a typed error that names the
//! file and what is wrong.

mod common;

use std::path::Path;

use common::{write_gguf, Meta};
use tresor_llm::{Device, LlmError, LlmModel, LoadOptions};

fn load(path: &Path) -> LlmError {
    match LlmModel::load(path, &Device::Cpu, &LoadOptions::default()) {
        Ok(_) => panic!("{} loaded although it is bad", path.display()),
        Err(e) => e,
    }
}

fn f32_tensor(name: &str, n: u64) -> (&str, Vec<u64>, u32, Vec<u8>) {
    (name, vec![n], 0, vec![0u8; n as usize * 4])
}

#[test]
fn empty_and_non_gguf_files() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    let e = load(&empty);
    assert!(matches!(e, LlmError::InvalidGguf { .. }), "{e}");
    assert!(e.to_string().contains("empty.gguf"), "{e}");

    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, b"this is not a model, just some text").unwrap();
    let e = load(&text);
    assert!(e.to_string().contains("missing GGUF magic"), "{e}");

    let missing = dir.path().join("nope.gguf");
    assert!(matches!(load(&missing), LlmError::Io { .. }));
}

#[test]
fn truncated_real_model() {
    let src = common::shipped("SmolLM2-135M-Instruct.Q4_1.gguf");
    let bytes = std::fs::read(&src).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Cut inside the tensor data: the header parses, a tensor runs past the end.
    let cut = dir.path().join("cut-data.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = load(&cut);
    assert!(matches!(e, LlmError::TruncatedGguf { .. }), "{e}");
    assert!(e.to_string().contains("cut-data.gguf") && e.to_string().contains("truncated"), "{e}");

    // Cut inside the metadata.
    let cut = dir.path().join("cut-header.gguf");
    std::fs::write(&cut, &bytes[..4096]).unwrap();
    let e = load(&cut);
    assert!(matches!(e, LlmError::InvalidGguf { .. }), "{e}");

    // Flipped bytes in the header's counts.
    let mut bad = bytes[..1 << 20].to_vec();
    bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let p = dir.path().join("corrupt.gguf");
    std::fs::write(&p, &bad).unwrap();
    let e = load(&p);
    assert!(matches!(e, LlmError::InvalidGguf { .. } | LlmError::TruncatedGguf { .. }), "{e}");
}

#[test]
fn unknown_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("mamba.gguf");
    std::fs::write(&p, write_gguf(&[("general.architecture", Meta::Str("mamba"))], &[f32_tensor("w", 8)])).unwrap();
    let e = load(&p);
    assert!(matches!(e, LlmError::UnsupportedArchitecture { ref arch, .. } if arch == "mamba"), "{e}");
    assert!(e.to_string().contains("mamba.gguf"));
}

#[test]
fn missing_tokenizer_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("notok.gguf");
    std::fs::write(&p, write_gguf(&[("general.architecture", Meta::Str("llama"))], &[f32_tensor("w", 8)])).unwrap();
    let e = load(&p);
    assert!(matches!(e, LlmError::Tokenizer { .. }), "{e}");
    assert!(e.to_string().contains("tokenizer.ggml.model"), "{e}");

    // A tokenizer but no weights the llama loader needs.
    let p = dir.path().join("noweights.gguf");
    let meta = [
        ("general.architecture", Meta::Str("llama")),
        ("tokenizer.ggml.model", Meta::Str("gpt2")),
        ("tokenizer.ggml.tokens", Meta::StrArray(vec!["a", "b", "ab"])),
        ("tokenizer.ggml.merges", Meta::StrArray(vec!["a b"])),
        ("llama.context_length", Meta::U32(128)),
    ];
    std::fs::write(&p, write_gguf(&meta, &[f32_tensor("w", 8)])).unwrap();
    let e = load(&p);
    assert!(matches!(e, LlmError::Load { .. }), "{e}");
}

#[test]
fn quantization_candle_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("iq2.gguf");
    // ggml type 16 is IQ2_XXS.
    let tensors = [("w", vec![256u64], 16u32, vec![0u8; 66])];
    std::fs::write(&p, write_gguf(&[("general.architecture", Meta::Str("llama"))], &tensors)).unwrap();
    let e = load(&p);
    assert!(matches!(e, LlmError::UnsupportedQuantization { .. }), "{e}");
    assert!(e.to_string().contains("iq2.gguf"));
}
