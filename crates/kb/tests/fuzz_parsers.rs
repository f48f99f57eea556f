//! Issue 19 §5: the document parsers under the mutation fuzzer
//! (`fuzz/mutate.rs`). A parse may fail with any `ParseError`; it must not
//! panic, overflow the stack or hang. The quick pass runs in CI; the long
//! run is `scripts/fuzz` (ignored tests).

#[path = "../../../fuzz/mutate.rs"]
mod mutate;

use tresor_kb::parse::{parse_file, Format, Limits};

fn check(ext: &'static str, format: Format) -> impl Fn(&[u8]) {
    move |bytes: &[u8]| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(format!("f.{ext}"));
        std::fs::write(&p, bytes).unwrap();
        let _ = parse_file(&p, format, &Limits::BUILTIN, &mut |_e| Ok(()));
    }
}

const TARGETS: &[(&str, &str, Format)] = &[
    ("md", "md", Format::Markdown),
    ("html", "html", Format::Html),
    ("csv", "csv", Format::Csv),
    ("json", "json", Format::Json),
    ("jsonl", "jsonl", Format::Jsonl),
    ("txt", "txt", Format::Text),
    ("pdf", "pdf", Format::Pdf),
    ("docx", "docx", Format::Docx),
];

#[test]
fn parsers_survive_the_corpus_and_quick_mutations() {
    for (target, ext, format) in TARGETS {
        mutate::run(target, 40, false, &check(ext, *format));
    }
}

/// `scripts/fuzz` runs this with TRESOR_FUZZ_TARGET and TRESOR_FUZZ_SECONDS.
#[test]
#[ignore]
fn fuzz_parsers_long() {
    let only = std::env::var("TRESOR_FUZZ_TARGET").ok();
    for (target, ext, format) in TARGETS {
        if only.as_deref().is_none_or(|o| o == *target) {
            mutate::run(target, 0, true, &check(ext, *format));
        }
    }
}
