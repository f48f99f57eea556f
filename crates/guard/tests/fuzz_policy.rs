//! Issue 19 §5: the policy TOML loader under the mutation fuzzer
//! (`fuzz/mutate.rs`): any text gives a policy or an error naming the file,
//! never a panic. Quick pass in CI; the long run is `scripts/fuzz`.

#[path = "../../../fuzz/mutate.rs"]
mod mutate;

use std::path::Path;

use tresor_guard::policy::{Layer, Policy};

fn check(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for layer in [Layer::Admin, Layer::User] {
        let mut p = Policy::default();
        let _ = p.apply_toml(&text, Path::new("policy.toml"), layer);
    }
}

#[test]
fn policy_toml_survives_the_corpus_and_quick_mutations() {
    mutate::run("policy", 300, false, &check);
}

#[test]
#[ignore]
fn fuzz_policy_long() {
    mutate::run("policy", 0, true, &check);
}
