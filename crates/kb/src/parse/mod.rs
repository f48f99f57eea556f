//! Parsers: files in, a stream of structural blocks out (headings,
//! paragraphs, list items, code, tables, rows, records) with page numbers and
//! character spans. Text formats (Markdown, plain text, CSV, JSONL) are read
//! in bounded pieces, so a 200 MB file never sits in memory whole; HTML, PDF,
//! DOCX and JSON documents are read whole under a size cap ([`Limits`]).

mod docx;
mod html;
mod json;
mod markdown;
mod pdf;
mod table;
mod text;

use std::path::Path;

/// What a parser emits, in document order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The document's title (first one wins).
    Title(String),
    Block(Block),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    Heading(u8),
    Paragraph,
    ListItem,
    /// Preformatted code: never split mid-line.
    Code,
    /// A table, rows separated by newlines, cells by " | "; kept whole when small.
    Table,
    /// One CSV row or JSON record rendered as "key: value" pairs.
    Record,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub kind: BlockKind,
    pub text: String,
    /// 1-based page (PDF only).
    pub page: Option<u32>,
    /// Character span (Unicode scalar values, end exclusive; a leading BOM
    /// not counted): in the file itself for Markdown, plain text, CSV (the
    /// row's lines), JSONL (the line) and JSON (the element or member); in
    /// the extracted text for HTML, PDF and DOCX.
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Text,
    Html,
    Pdf,
    Docx,
    Csv,
    Json,
    Jsonl,
}

impl Format {
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "md" | "markdown" | "mdown" => Format::Markdown,
            "txt" | "text" | "rst" | "log" => Format::Text,
            "html" | "htm" | "xhtml" => Format::Html,
            "pdf" => Format::Pdf,
            "docx" => Format::Docx,
            "csv" | "tsv" => Format::Csv,
            "json" => Format::Json,
            "jsonl" | "ndjson" => Format::Jsonl,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Markdown => "markdown",
            Format::Text => "text",
            Format::Html => "html",
            Format::Pdf => "pdf",
            Format::Docx => "docx",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
        }
    }
}

/// Why a file could not be parsed. The file is skipped and reported; the
/// rest of an ingest goes on.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("empty file")]
    Empty,
    #[error("no text found (a scanned PDF without text layer, or only markup)")]
    NoText,
    #[error("not valid UTF-8 (first bad byte at offset {offset}); convert the file to UTF-8")]
    InvalidUtf8 { offset: u64 },
    #[error("encrypted PDF: remove the password protection to ingest it")]
    EncryptedPdf,
    #[error("corrupt or unreadable {format}: {reason}")]
    Corrupt { format: &'static str, reason: String },
    #[error("rejected as a possible zip bomb: {0} (limits: TRESOR_MAX_DOCX_PART, TRESOR_MAX_DOCX_TOTAL, TRESOR_MAX_DOCX_RATIO)")]
    ZipBomb(String),
    #[error("{format} file of {size} bytes is larger than the {limit} byte limit for this format (raise it with the environment variable TRESOR_MAX_WHOLE_FILE=BYTES)")]
    TooLarge { format: &'static str, size: u64, limit: u64 },
    /// A hostile-input limit ([`Limits`]): the file is refused, the rest of an ingest goes on.
    #[error("{what}: over the limit of {limit} {unit} (raise it with the environment variable {var})")]
    OverLimit { what: String, limit: u64, unit: &'static str, var: &'static str },
    #[error("unsupported file type (supported: md, txt, html, pdf, docx, csv, tsv, json, jsonl)")]
    Unsupported,
    #[error("read error: {0}")]
    Io(#[from] std::io::Error),
    /// The consumer of the blocks failed (embedding or storage); not a parse problem.
    #[error("{0}")]
    Sink(String),
}

/// Size caps for the formats that are read whole or decompressed: the
/// defences against hostile documents (docs/security.md). `Limits::default()`
/// is [`Limits::BUILTIN`] with each field overridable by its environment
/// variable (bytes), so every door (CLI, server, desktop) honours the same
/// setting, and a refusal names the variable that changes it.
#[derive(Debug, Clone)]
pub struct Limits {
    /// HTML, PDF, JSON (not JSONL) files larger than this are refused (`TRESOR_MAX_WHOLE_FILE`).
    pub max_whole_file: u64,
    /// DOCX: the largest uncompressed size of one part, and of all parts
    /// (`TRESOR_MAX_DOCX_PART`, `TRESOR_MAX_DOCX_TOTAL`).
    pub max_docx_part: u64,
    pub max_docx_total: u64,
    /// DOCX: the largest uncompressed/compressed ratio of a part.
    pub max_docx_ratio: u64,
    /// PDF: what all Flate streams of one document may inflate to together,
    /// filter chains followed (`TRESOR_MAX_PDF_INFLATED`).
    pub max_pdf_inflated: u64,
    /// Markdown: the longest stretch without a blank line (one paragraph, an
    /// unclosed code fence) parsed as one piece; longer ones are cut at a line
    /// (`TRESOR_MAX_MARKDOWN_SEGMENT`).
    pub max_markdown_segment: u64,
    /// The largest single block (a paragraph, a CSV row, a JSON record, a
    /// code block) in bytes; a file with a bigger one is refused
    /// (`TRESOR_MAX_BLOCK`). A real paragraph is a few KB; a 64 MB CSV field
    /// is an attack or an export gone wrong, and would take an hour to embed.
    pub max_block: u64,
    /// HTML: the deepest element nesting parsed (`TRESOR_MAX_HTML_DEPTH`);
    /// html5ever's tree builder is quadratic in it.
    pub max_html_depth: u64,
    /// PDF: the most pages read (`TRESOR_MAX_PDF_PAGES`; pdf-extract's page
    /// walk is quadratic in them). See `pdf_budget.rs`.
    pub max_pdf_pages: u64,
    /// PDF: the decoded page content interpreted, counted every time a stream
    /// or form XObject is drawn (`TRESOR_MAX_PDF_WORK`, bytes).
    pub max_pdf_work: u64,
    /// PDF: content operators interpreted, counted per draw (`TRESOR_MAX_PDF_OPERATORS`).
    pub max_pdf_operators: u64,
    /// PDF: form XObjects nested in one another (`TRESOR_MAX_PDF_FORM_DEPTH`);
    /// a form that draws itself is over any depth.
    pub max_pdf_form_depth: u64,
}

impl Limits {
    pub const BUILTIN: Limits = Limits {
        max_whole_file: 256 << 20,
        max_docx_part: 64 << 20,
        max_docx_total: 256 << 20,
        max_docx_ratio: 200,
        max_pdf_inflated: 256 << 20,
        max_markdown_segment: 4 << 20,
        max_block: 8 << 20,
        max_html_depth: 4096,
        max_pdf_pages: 5_000,
        max_pdf_work: 256 << 20,
        max_pdf_operators: 20_000_000,
        max_pdf_form_depth: 32,
    };

    /// The built-in limits with each `TRESOR_MAX_*` variable that is set (a
    /// byte count) taking its place; an unreadable value is ignored with a warning.
    pub fn from_env() -> Limits {
        let mut l = Limits::BUILTIN;
        for (var, field) in [
            ("TRESOR_MAX_WHOLE_FILE", &mut l.max_whole_file),
            ("TRESOR_MAX_DOCX_PART", &mut l.max_docx_part),
            ("TRESOR_MAX_DOCX_TOTAL", &mut l.max_docx_total),
            ("TRESOR_MAX_DOCX_RATIO", &mut l.max_docx_ratio),
            ("TRESOR_MAX_PDF_INFLATED", &mut l.max_pdf_inflated),
            ("TRESOR_MAX_MARKDOWN_SEGMENT", &mut l.max_markdown_segment),
            ("TRESOR_MAX_BLOCK", &mut l.max_block),
            ("TRESOR_MAX_HTML_DEPTH", &mut l.max_html_depth),
            ("TRESOR_MAX_PDF_PAGES", &mut l.max_pdf_pages),
            ("TRESOR_MAX_PDF_WORK", &mut l.max_pdf_work),
            ("TRESOR_MAX_PDF_OPERATORS", &mut l.max_pdf_operators),
            ("TRESOR_MAX_PDF_FORM_DEPTH", &mut l.max_pdf_form_depth),
        ] {
            if let Ok(v) = std::env::var(var) {
                match v.trim().parse::<u64>() {
                    Ok(n) if n > 0 => *field = n,
                    _ => tracing::warn!("{var}={v:?} is not a positive byte count; keeping {}", *field),
                }
            }
        }
        l
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_env()
    }
}

/// The consumer of a parser's events; an error stops the parse.
pub type Sink<'a> = dyn FnMut(Event) -> Result<(), ParseError> + 'a;

/// Parses `path` as `format`, feeding events to `sink` in document order.
pub fn parse_file(path: &Path, format: Format, limits: &Limits, sink: &mut Sink<'_>) -> Result<(), ParseError> {
    let size = std::fs::metadata(path)?.len();
    if size == 0 {
        return Err(ParseError::Empty);
    }
    let mut emitted = 0usize;
    let mut counting = |ev: Event| {
        if let Event::Block(b) = &ev {
            if b.text.trim().is_empty() {
                return Ok(());
            }
            if b.text.len() as u64 > limits.max_block {
                return Err(over_block(b.text.len(), limits));
            }
            emitted += 1;
        }
        sink(ev)
    };
    let whole = |fmt: &'static str| -> Result<Vec<u8>, ParseError> {
        if size > limits.max_whole_file {
            return Err(ParseError::TooLarge { format: fmt, size, limit: limits.max_whole_file });
        }
        Ok(std::fs::read(path)?)
    };
    match format {
        Format::Markdown => markdown::parse(std::fs::File::open(path)?, limits, &mut counting)?,
        Format::Text => text::parse_plain(std::fs::File::open(path)?, &mut counting)?,
        Format::Csv => {
            let tsv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tsv"));
            table::parse(path, tsv, limits, &mut counting)?
        }
        Format::Jsonl => json::parse_lines(std::fs::File::open(path)?, &mut counting)?,
        Format::Json => json::parse_whole(&whole("JSON")?, &mut counting)?,
        Format::Html => html::parse(&whole("HTML")?, limits.max_html_depth as usize, &mut counting)?,
        Format::Pdf => pdf::parse(&whole("PDF")?, limits, &mut counting)?,
        Format::Docx => docx::parse(path, limits, &mut counting)?,
    }
    if emitted == 0 {
        return Err(ParseError::NoText);
    }
    Ok(())
}

/// The refusal of a block over [`Limits::max_block`].
pub(crate) fn over_block(bytes: usize, limits: &Limits) -> ParseError {
    ParseError::OverLimit {
        what: format!("one paragraph or record of {bytes} bytes without a break"),
        limit: limits.max_block,
        unit: "bytes",
        var: "TRESOR_MAX_BLOCK",
    }
}

/// Parses a whole file into memory (tests and small files).
pub fn parse_to_vec(path: &Path, format: Format) -> Result<Vec<Event>, ParseError> {
    let mut v = Vec::new();
    parse_file(path, format, &Limits::default(), &mut |e| {
        v.push(e);
        Ok(())
    })?;
    Ok(v)
}

/// Collapses runs of whitespace to single spaces and trims.
pub(crate) fn squash(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for w in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// Helpers for the parsers' tests: the blocks a parser emits, and the file text a block's span names.
#[cfg(test)]
pub(crate) mod test_util {
    use super::{Block, Event, ParseError, Sink};

    /// The blocks `parse` emits into its sink (other events dropped).
    pub fn blocks(parse: impl FnOnce(&mut Sink<'_>) -> Result<(), ParseError>) -> Vec<Block> {
        let mut out = Vec::new();
        parse(&mut |e| {
            if let Event::Block(b) = e {
                out.push(b);
            }
            Ok(())
        })
        .unwrap();
        out
    }

    /// The file's characters in a block's span (what a reader of the metadata does); a BOM is not counted.
    pub fn span(content: &str, b: &Block) -> String {
        content.trim_start_matches('\u{feff}').chars().skip(b.start).take(b.end - b.start).collect()
    }
}
