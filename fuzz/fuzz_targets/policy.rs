//! The policy TOML loader on any text, as the admin and the user layer:
//! a policy or an error naming the file, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use tresor_guard::policy::{Layer, Policy};

fuzz_target!(|bytes: &[u8]| {
    tresor_fuzz::contained_panics_are_not_crashes();
    let text = String::from_utf8_lossy(bytes);
    for layer in [Layer::Admin, Layer::User] {
        let mut p = Policy::default();
        let _ = p.apply_toml(&text, Path::new("policy.toml"), layer);
    }
});
