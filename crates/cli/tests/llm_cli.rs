//! End-to-end: the real `tresor` binary on the shipped models.

use std::path::PathBuf;
use std::process::Output;

mod common;


fn tresor(args: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    common::tresor_with(home.path(), None).args(args).output().unwrap()
}

fn ok(out: &Output) -> String {
    common::ok_output(out, "tresor")
}

#[test]
fn generate_answers_the_capital_of_france() {
    let out = ok(&tresor(&["generate", "--prompt", "What is the capital of France?", "--temperature", "0"]));
    assert!(out.contains("Paris"), "{out}");
}

#[test]
fn generate_raw_and_json() {
    let prompt = "<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n";
    let out = ok(&tresor(&["generate", "--raw", "--prompt", prompt, "--temperature", "0", "--max-tokens", "8", "--json"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["model"], "smollm2-135m-instruct");
    assert!(v["tokens"].as_array().unwrap().len() <= 8);
    assert!(v["prompt_tokens"].as_u64().unwrap() >= 8);
    assert!(!v["text"].as_str().unwrap().is_empty());
    // Same seed, same text.
    let a = ok(&tresor(&["generate", "--prompt", "Tell me a joke.", "--seed", "5", "--max-tokens", "12"]));
    let b = ok(&tresor(&["generate", "--prompt", "Tell me a joke.", "--seed", "5", "--max-tokens", "12"]));
    assert_eq!(a, b);
}

#[test]
fn tokenize_prints_llama_cpp_ids() {
    let fx: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../llm/tests/fixtures/smollm2_tokenize.json")).unwrap(),
    )
    .unwrap();
    let case = fx["cases"].as_array().unwrap().iter().find(|c| c["text"].as_str().unwrap().contains("<|im_start|>")).unwrap();
    let out = ok(&tresor(&["tokenize", "--json", case["text"].as_str().unwrap()]));
    let ids: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ids, case["ids"]);
    let with_bos = ok(&tresor(&["tokenize", "--bos", "--json", "Hi"]));
    assert!(with_bos.starts_with("[1,"), "{with_bos}");
}

#[test]
fn embed_prints_unit_vectors() {
    // sentence-transformers' cosine for this pair is 0.7689: the f32 path reproduces it, the int8
    // path (the default on CPUs with AVX-512 VNNI) stays close
    for (precision, tolerance) in [("f32", 2e-3), ("auto", 1e-2)] {
        let home = tempfile::tempdir().unwrap();
        let out = common::tresor_with(home.path(), None)
            .env("TRESOR_EMBED_PRECISION", precision)
            .args(["embed", "--json", "The cat sits on the mat.", "A cat is sitting on a rug."])
            .output()
            .unwrap();
        let v: Vec<Vec<f32>> = serde_json::from_str(ok(&out).trim()).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].len(), 384);
        for x in &v {
            let norm: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-3, "{precision}: norm {norm}");
        }
        let cos: f32 = v[0].iter().zip(&v[1]).map(|(a, b)| a * b).sum();
        assert!((cos - 0.7689).abs() < tolerance, "{precision}: {cos}");
    }
}

#[test]
fn bad_model_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.gguf");
    std::fs::write(&bad, b"GGUF\x03\x00\x00\x00garbage").unwrap();
    let out = tresor(&["generate", "--model", bad.to_str().unwrap(), "--prompt", "hi"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.gguf") && err.contains("error:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    let out = tresor(&["generate", "--model", "no-such-model", "--prompt", "hi"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-model"));

    let out = tresor(&["--device", "tpu", "generate", "--prompt", "hi"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tpu"));
}

#[test]
fn bench_llm_reports_the_contract_fields() {
    let out = ok(&tresor(&["--threads", "1", "bench", "llm", "--pp", "32", "--tg", "8", "--rounds", "1", "--no-peer", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in ["model", "threads", "tresor_pp_tps", "tresor_tg_tps", "peer", "peer_pp_tps", "peer_tg_tps", "tresor_rss_mb"] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert!(v["tresor_pp_tps"].as_f64().unwrap() > 0.0);
    assert!(v["tresor_rss_mb"].as_f64().unwrap() > 50.0);
    assert!(v["peer"].is_null());
    assert_eq!(v["threads"], 1);
}

/// The binary's relative relocations are packed as RELR (`crates/cli/build.rs`):
/// as `.rela.dyn` they were 3 MB read at every start, 5.8 MB of the bench
/// worker's peak RSS on SmolLM2. `readelf` comes with the linker (binutils).
#[test]
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn the_binary_packs_its_relative_relocations() {
    let out = std::process::Command::new("readelf").args(["-d", "-S", "-W", env!("CARGO_BIN_EXE_tresor")]).output().expect("readelf (binutils) runs");
    assert!(out.status.success(), "readelf: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(RELR)"), "no DT_RELR entry in the dynamic section");
    let rela = text.lines().find(|l| l.contains(" .rela.dyn ")).and_then(|l| l.split_whitespace().skip_while(|w| *w != "RELA").nth(3)).map(|size| usize::from_str_radix(size, 16).expect("a hex size"));
    assert!(rela.is_some_and(|bytes| bytes < 256 * 1024), ".rela.dyn is still {rela:?} bytes");
}
