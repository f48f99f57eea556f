//! The tool-call argument parser on any `arguments` string: an object or
//! `InvalidArguments`, never a panic; what parses canonicalises.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tresor_tools::schema::{canonical, parse_arguments_str};

fuzz_target!(|bytes: &[u8]| {
    tresor_fuzz::contained_panics_are_not_crashes();
    let text = String::from_utf8_lossy(bytes);
    if let Ok(v) = parse_arguments_str("fuzz", &text) {
        assert!(v.is_object());
        let _ = canonical(&v);
    }
});
