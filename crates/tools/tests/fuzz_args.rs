//! Issue 19 §5: the tool-call argument parser under the mutation fuzzer
//! (`fuzz/mutate.rs`): any `arguments` string gives an object or
//! `InvalidArguments`, never a panic. Quick pass in CI; long run `scripts/fuzz`.

#[path = "../../../fuzz/mutate.rs"]
mod mutate;

use tresor_tools::schema::{canonical, parse_arguments_str};

fn check(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Ok(v) = parse_arguments_str("fuzz", &text) {
        assert!(v.is_object());
        let _ = canonical(&v);
    }
}

#[test]
fn tool_arguments_survive_the_corpus_and_quick_mutations() {
    mutate::run("args", 500, false, &check);
}

#[test]
#[ignore]
fn fuzz_args_long() {
    mutate::run("args", 0, true, &check);
}
