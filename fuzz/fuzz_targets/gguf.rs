//! The GGUF header reader and the tokenizer built from it on any bytes:
//! an error for a malformed header (huge counts, overflowing sizes), never
//! an abort or an allocation the file's size does not justify.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tresor_llm::gguf::GgufFile;

fuzz_target!(|bytes: &[u8]| {
    tresor_fuzz::contained_panics_are_not_crashes();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.gguf");
    std::fs::write(&p, bytes).unwrap();
    if let Ok(g) = GgufFile::open(&p) {
        let _ = tresor_llm::GgufTokenizer::from_gguf(&g);
    }
});
