//! The csv parser (`tresor_kb::parse::parse_file`, Format::Csv) on any bytes: a
//! result or a `ParseError`, never a panic, a stack overflow or a hang.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tresor_kb::parse::{parse_file, Format, Limits};

fuzz_target!(|bytes: &[u8]| {
    tresor_fuzz::contained_panics_are_not_crashes();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.csv");
    std::fs::write(&p, bytes).unwrap();
    let _ = parse_file(&p, Format::Csv, &Limits::BUILTIN, &mut |_e| Ok(()));
});
