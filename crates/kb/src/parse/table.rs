//! CSV/TSV, streamed record by record. Each row becomes a record block
//! "Header: value | Header: value", so every chunk of rows carries its
//! header. The delimiter (',' ';' or tab) is sniffed from the first line.

use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{Block, BlockKind, Event, ParseError, Sink};

pub(crate) fn parse(path: &Path, tsv: bool, sink: &mut Sink<'_>) -> Result<(), ParseError> {
    let first = {
        let mut rd = BufReader::new(std::fs::File::open(path)?);
        let mut raw = Vec::new();
        rd.read_until(b'\n', &mut raw)?;
        String::from_utf8_lossy(&raw).into_owned()
    };
    let delim = if tsv {
        b'\t'
    } else {
        let count = |c: char| first.matches(c).count();
        [(b',', count(',')), (b';', count(';')), (b'\t', count('\t'))].into_iter().max_by_key(|x| x.1).map(|x| x.0).unwrap_or(b',')
    };
    let mut rd = csv::ReaderBuilder::new().delimiter(delim).flexible(true).has_headers(false).from_path(path).map_err(csv_err)?;
    let mut rec = csv::ByteRecord::new();
    let mut header: Option<Vec<String>> = None;
    loop {
        let start = rd.position().byte() as usize;
        let more = rd.read_byte_record(&mut rec).map_err(csv_err)?;
        if !more {
            break;
        }
        let mut fields = Vec::with_capacity(rec.len());
        for f in rec.iter() {
            match std::str::from_utf8(f) {
                Ok(s) => fields.push(s.trim().trim_start_matches('\u{feff}').to_string()),
                Err(e) => {
                    let off = start as u64 + e.valid_up_to() as u64;
                    return Err(ParseError::InvalidUtf8 { offset: off });
                }
            }
        }
        let end = rd.position().byte() as usize;
        match &header {
            None => header = Some(fields),
            Some(h) => {
                let text = fields
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| !v.is_empty())
                    .map(|(i, v)| match h.get(i).filter(|k| !k.is_empty()) {
                        Some(k) => format!("{k}: {v}"),
                        None => v.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join(" | ");
                sink(Event::Block(Block { kind: BlockKind::Record, text, page: None, start, end }))?;
            }
        }
    }
    Ok(())
}

fn csv_err(e: csv::Error) -> ParseError {
    match e.kind() {
        csv::ErrorKind::Io(_) => match e.into_kind() {
            csv::ErrorKind::Io(io) => ParseError::Io(io),
            _ => unreachable!(),
        },
        _ => ParseError::Corrupt { format: "CSV", reason: e.to_string() },
    }
}
