//! The json parser (`tresor_kb::parse::parse_file`, Format::Json) on any bytes: a
//! result or a `ParseError`, never a panic, a stack overflow or a hang.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tresor_kb::parse::Format;

fuzz_target!(|bytes: &[u8]| tresor_fuzz::parse_as("json", Format::Json, bytes));
