//! A big text file is parsed in bounded memory (its own test binary, so no
//! other test shares the process whose peak memory it measures).

use std::io::Write;

#[test]
fn big_text_files_stream_in_bounded_memory() {
    fn peak_kb() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
            .unwrap_or(0)
    }
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("big.md");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
        let para = "Ein langer Absatz über Reisekosten, Urlaub und die IT-Sicherheit im Unternehmen. ".repeat(12);
        let mut i = 0;
        while f.get_ref().metadata().unwrap().len() < 96 << 20 {
            writeln!(f, "## Abschnitt {i}\n\n{para}\n").unwrap();
            i += 1;
        }
        f.flush().unwrap();
    }
    if peak_kb() == 0 {
        return; // no /proc: nothing to measure
    }
    let before = peak_kb();
    let mut blocks = 0usize;
    tresor_kb::parse::parse_file(&p, tresor_kb::parse::Format::Markdown, &Default::default(), &mut |_e| {
        blocks += 1;
        Ok(())
    })
    .unwrap();
    let grew_mb = (peak_kb().saturating_sub(before)) / 1024;
    assert!(blocks > 100_000);
    assert!(grew_mb < 48, "parsing a 96 MB file raised peak memory by {grew_mb} MB");
}
