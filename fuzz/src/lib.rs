//! What every fuzz target shares.
//!
//! Owns the panic policy of the targets. Never hides a panic that reaches
//! the target: libfuzzer-sys aborts on one that unwinds out of it.

use std::sync::Once;

use tresor_kb::parse::{parse_file, Format, Limits};

/// libfuzzer-sys installs a panic hook that aborts at the first panic, even one
/// the code under test catches on purpose: Tresor runs pdf-extract and candle's
/// GGUF reader under `catch_unwind` and turns their panics into a typed error
/// (the defence docs/security.md describes). Replace that hook with a silent one
/// so such a contained panic is what it is in production, an error; a panic that
/// escapes the target still aborts (libfuzzer-sys catches it around the target
/// and aborts), and so does every other crash, timeout and out-of-memory.
pub fn contained_panics_are_not_crashes() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        drop(std::panic::take_hook());
        std::panic::set_hook(Box::new(|_| {}));
    });
}

/// One parser target: `bytes` written to a file named `f.<ext>` and parsed as `format` with the
/// built-in limits. A result or a `ParseError` is fine; a panic that escapes, a stack overflow, a
/// hang or an allocation past the RSS limit is a crash.
pub fn parse_as(ext: &str, format: Format, bytes: &[u8]) {
    contained_panics_are_not_crashes();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(format!("f.{ext}"));
    std::fs::write(&p, bytes).unwrap();
    let _ = parse_file(&p, format, &Limits::BUILTIN, &mut |_e| Ok(()));
}
