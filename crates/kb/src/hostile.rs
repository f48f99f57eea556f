//! Hostile documents (issue 19 §1): generators of the files an attacker
//! would drop into a folder Tresor ingests, at two scales: `Small` for the
//! tests (seconds), `Full` for `tresor bench hostile` (the sizes the issue
//! names). Each file either ingests correctly or is refused by one of the
//! [`crate::parse::Limits`], naming the limit; nothing hangs or crashes.
//!
//! Owns: the shapes of the hostile inputs. Never: ingests, judges or times
//! them (the tests and `tresor-bench` do).

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Small enough for a unit test, big enough to show each bug.
    Small,
    /// The sizes of issue 19 (tens of MB on disk, gigabytes inflated).
    Full,
}

/// One generated file: its path and what it attacks.
#[derive(Debug, Clone)]
pub struct HostileFile {
    pub path: PathBuf,
    pub name: &'static str,
    pub what: &'static str,
}

fn pick(scale: Scale, small: usize, full: usize) -> usize {
    if scale == Scale::Small {
        small
    } else {
        full
    }
}

fn zlib(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(data).expect("in memory");
    e.finish().expect("in memory")
}

/// A PDF with one page whose content stream carries `[/FlateDecode /FlateDecode]`
/// and inflates to `inflated` bytes (a few hundred KB on disk per GB).
pub fn flate_bomb_pdf(inflated: usize) -> Vec<u8> {
    let mut inner = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    let block = b"BT /F1 12 Tf 72 712 Td (Bombe) Tj ET\n".repeat(1 << 12);
    let mut left = inflated;
    while left > 0 {
        let n = left.min(block.len());
        inner.write_all(&block[..n]).expect("in memory");
        left -= n;
    }
    let twice = zlib(&inner.finish().expect("in memory"), 9);
    let mut pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >> endobj\n".to_vec();
    pdf.extend_from_slice(format!("4 0 obj << /Length {} /Filter [/FlateDecode /FlateDecode] >>\nstream\n", twice.len()).as_bytes());
    pdf.extend_from_slice(&twice);
    pdf.extend_from_slice(b"\nendstream\nendobj\ntrailer << /Root 1 0 R >>\n%%EOF\n");
    pdf
}

/// A DOCX-like zip whose `word/document.xml` nests `depth` elements, with
/// text at the bottom.
pub fn deep_docx(depth: usize) -> Vec<u8> {
    let mut xml = String::from(r#"<w:document xmlns:w="x"><w:body>"#);
    for i in 0..depth {
        // distinct ids keep the part under the zip-bomb ratio limit: deep, not compressible
        xml.push_str(&format!("<w:sdt w:id=\"{}\">", (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40));
    }
    xml.push_str("<w:p><w:r><w:t>Tief verschachtelt.</w:t></w:r></w:p>");
    xml.push_str(&"</w:sdt>".repeat(depth));
    xml.push_str("</w:body></w:document>");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("word/document.xml", opts).expect("in memory");
    zip.write_all(xml.as_bytes()).expect("in memory");
    zip.finish().expect("in memory").into_inner()
}

fn write_repeated(path: &Path, head: &str, unit: &str, bytes: usize, tail: &str) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(head.as_bytes())?;
    let mut n = 0;
    while n < bytes {
        f.write_all(unit.as_bytes())?;
        n += unit.len();
    }
    f.write_all(tail.as_bytes())?;
    f.flush()
}

/// Writes every hostile file into `dir` and returns them.
pub fn write_all(dir: &Path, scale: Scale) -> std::io::Result<Vec<HostileFile>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    let mut add = |name: &'static str, what: &'static str| {
        let path = dir.join(name);
        out.push(HostileFile { path: path.clone(), name, what });
        path
    };
    let depth = 100_000;
    let p = add("deep.html", "HTML nested 100,000 elements deep");
    write_repeated(&p, "<html><body>", "<div>", depth * 5, "<p>Ganz unten steht ein Satz.</p></body></html>")?;

    let p = add("bomb.pdf", "PDF, chained FlateDecode inflating to GBs");
    std::fs::write(&p, flate_bomb_pdf(pick(scale, 300 << 20, 4 << 30)))?;

    let mb = pick(scale, 5, 20) << 20;
    let p = add("paragraph.md", "Markdown, one paragraph of 20 MB");
    write_repeated(&p, "# Ein Absatz\n\n", "Ein sehr langer Absatz ohne Leerzeile geht immer weiter. ", mb, "\n")?;

    let p = add("fence.md", "Markdown, an unclosed code fence of 20 MB");
    write_repeated(&p, "# Code\n\n```\n", "let x = compute(1);\n", mb, "")?;

    let p = add("field.csv", "CSV, one field of 64 MB");
    write_repeated(&p, "name,notes\nx,\"", "feld ", pick(scale, 9 << 20, 64 << 20), "\"\ny,ok\n")?;

    let p = add("nonewline.csv", "CSV, 100 MB without a newline");
    write_repeated(&p, "", "a,b,c,", pick(scale, 9 << 20, 100 << 20), "")?;

    let n = pick(scale, 300_000, 3_000_000);
    let p = add("scalars.json", "JSON, an array of millions of scalars");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p)?);
        f.write_all(b"[")?;
        for i in 0..n {
            write!(f, "{}{i}", if i == 0 { "" } else { "," })?;
        }
        f.write_all(b"]")?;
        f.flush()?;
    }
    let p = add("member.json", "JSON, one member holding millions of scalars");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&p)?);
        f.write_all(b"{\"werte\": [")?;
        for i in 0..n {
            write!(f, "{}{i}", if i == 0 { "" } else { "," })?;
        }
        f.write_all(b"]}")?;
        f.flush()?;
    }

    let p = add("komposita.md", "German words of 200+ letters of known prefixes");
    let word = format!("{}q", "reisekostenabrechnungs".repeat(10));
    write_repeated(&p, "# Komposita\n\nDie Regel lautet: ", &format!("{word} "), pick(scale, 64 << 10, 1 << 20), ".\n")?;

    let p = add("deep.docx", "DOCX-like zip with XML nested 100,000 deep");
    std::fs::write(&p, deep_docx(depth))?;
    Ok(out)
}
