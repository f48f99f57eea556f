//! `tresor events export`: the events as a file the user names — JSON Lines
//! or Parquet — one row per event, every column of [`COLUMNS`] (absent
//! fields null), so a warehouse (DuckDB, pandas, Spark) reads the documented
//! schema. Parquet is written with arrow-rs's `parquet` crate's column
//! writer: one row group, uncompressed, `event_id`, `schema_version`,
//! `ts_ms` and `event_type` required, the rest optional.
//!
//! Owns: the two file formats. Never: writes anywhere but the named path
//! (through a temporary file beside it, renamed when complete).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use parquet::column::writer::ColumnWriter;
use parquet::data_type::ByteArray;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use serde_json::{Map, Value};

use crate::event::{ColumnType, StoredEvent, COLUMNS};
use crate::{Result, TelemetryError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Parquet,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "parquet" => Ok(Format::Parquet),
            _ => Err(format!("--format must be parquet or jsonl, not `{s}`")),
        }
    }
}

const REQUIRED: &[&str] = &["event_id", "schema_version", "ts_ms", "event_type"];

/// Writes `events` to `out`; returns the number of rows.
pub fn export(events: &[StoredEvent], format: Format, out: &Path) -> Result<usize> {
    let io = |source| TelemetryError::Io { path: out.to_path_buf(), source };
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = tempfile_in(dir).map_err(io)?;
    let rows: Vec<Map<String, Value>> = events.iter().map(StoredEvent::row).collect();
    match format {
        Format::Jsonl => {
            let mut w = BufWriter::new(tmp.as_file());
            for r in &rows {
                // the columns in the documented order (a serde_json map would sort them)
                let mut line = String::from("{");
                for (i, c) in COLUMNS.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    line.push_str(&Value::String(c.name.to_string()).to_string());
                    line.push(':');
                    line.push_str(&r.get(c.name).unwrap_or(&Value::Null).to_string());
                }
                line.push_str("}\n");
                w.write_all(line.as_bytes()).map_err(io)?;
            }
            w.flush().map_err(io)?;
        }
        Format::Parquet => write_parquet(&rows, tmp.as_file().try_clone().map_err(io)?).map_err(|e| TelemetryError::Parquet { path: out.to_path_buf(), reason: e.to_string() })?,
    }
    tmp.persist(out).map_err(|e| io(e.error))?;
    Ok(rows.len())
}

fn tempfile_in(dir: &Path) -> std::io::Result<TempOut> {
    let path = dir.join(format!(".tresor-export-{}-{}.tmp", std::process::id(), crate::time::now_ms()));
    let file = File::options().write(true).create_new(true).open(&path)?;
    Ok(TempOut { path, file: Some(file) })
}

/// A file beside the target, removed unless persisted.
struct TempOut {
    path: std::path::PathBuf,
    file: Option<File>,
}

struct PersistError {
    error: std::io::Error,
}

impl TempOut {
    fn as_file(&self) -> &File {
        self.file.as_ref().expect("open until persisted")
    }
    fn persist(mut self, to: &Path) -> std::result::Result<(), PersistError> {
        let f = self.file.take().expect("open until persisted");
        f.sync_all().map_err(|error| PersistError { error })?;
        drop(f);
        std::fs::rename(&self.path, to).map_err(|error| PersistError { error })
    }
}

impl Drop for TempOut {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The Parquet schema of [`COLUMNS`].
pub fn parquet_schema() -> String {
    let mut s = String::from("message tresor_event {\n");
    for c in COLUMNS {
        let rep = if REQUIRED.contains(&c.name) { "REQUIRED" } else { "OPTIONAL" };
        let ty = match c.ty {
            ColumnType::Int64 => "INT64",
            ColumnType::Int32 => "INT32",
            ColumnType::Double => "DOUBLE",
            ColumnType::Bool => "BOOLEAN",
            ColumnType::Utf8 => "BYTE_ARRAY",
        };
        let ann = if c.ty == ColumnType::Utf8 { " (UTF8)" } else { "" };
        s.push_str(&format!("  {rep} {ty} {}{ann};\n", c.name));
    }
    s.push('}');
    s
}

fn write_parquet(rows: &[Map<String, Value>], file: File) -> std::result::Result<(), parquet::errors::ParquetError> {
    let schema = Arc::new(parse_message_type(&parquet_schema())?);
    let props = Arc::new(WriterProperties::builder().set_created_by("tresor".into()).build());
    let mut writer = SerializedFileWriter::new(file, schema, props)?;
    let mut rg = writer.next_row_group()?;
    let mut i = 0;
    while let Some(mut col) = rg.next_column()? {
        let c = &COLUMNS[i];
        i += 1;
        let vals: Vec<&Value> = rows.iter().map(|r| r.get(c.name).unwrap_or(&Value::Null)).collect();
        let def: Vec<i16> = vals.iter().map(|v| (!v.is_null()) as i16).collect();
        let def = if REQUIRED.contains(&c.name) { None } else { Some(&def[..]) };
        match col.untyped() {
            ColumnWriter::Int64ColumnWriter(w) => {
                let v: Vec<i64> = vals.iter().filter_map(|v| v.as_i64()).collect();
                w.write_batch(&v, def, None)?;
            }
            ColumnWriter::Int32ColumnWriter(w) => {
                let v: Vec<i32> = vals.iter().filter_map(|v| v.as_i64().map(|x| x as i32)).collect();
                w.write_batch(&v, def, None)?;
            }
            ColumnWriter::DoubleColumnWriter(w) => {
                let v: Vec<f64> = vals.iter().filter_map(|v| v.as_f64()).collect();
                w.write_batch(&v, def, None)?;
            }
            ColumnWriter::BoolColumnWriter(w) => {
                let v: Vec<bool> = vals.iter().filter_map(|v| v.as_bool()).collect();
                w.write_batch(&v, def, None)?;
            }
            ColumnWriter::ByteArrayColumnWriter(w) => {
                let v: Vec<ByteArray> = vals.iter().filter_map(|v| v.as_str().map(|s| ByteArray::from(s.as_bytes().to_vec()))).collect();
                w.write_batch(&v, def, None)?;
            }
            _ => unreachable!("the schema has no other column types"),
        }
        col.close()?;
    }
    rg.close()?;
    writer.close()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventKind, Feedback, Message};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    #[test]
    fn parquet_and_jsonl_hold_every_event() {
        let ev = |id, kind| StoredEvent { event_id: id, schema_version: 1, event: Event { ts_ms: 1000 + id, conversation_id: Some(7), message_id: None, kb: None, kind } };
        let events = vec![
            ev(1, EventKind::ConversationStarted { channel: "local".into() }),
            ev(2, EventKind::Message(Message { model: "m".into(), ttft_ms: 12.5, cache_hit: true, tokens_in: 40, ..Default::default() })),
            ev(3, EventKind::Feedback(Feedback { thumbs: Some(-1), csat: Some(2), comment: None })),
        ];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.parquet");
        assert_eq!(export(&events, Format::Parquet, &p).unwrap(), 3);
        let r = SerializedFileReader::new(File::open(&p).unwrap()).unwrap();
        assert_eq!(r.metadata().file_metadata().num_rows(), 3);
        let rows: Vec<String> = r.get_row_iter(None).unwrap().map(|r| r.unwrap().to_string()).collect();
        assert!(rows[1].contains("event_type: \"message\"") && rows[1].contains("ttft_ms: 12.5") && rows[1].contains("cache_hit: true"), "{}", rows[1]);
        assert!(rows[2].contains("thumbs: -1") && rows[2].contains("ttft_ms: null"), "{}", rows[2]);
        let j = dir.path().join("e.jsonl");
        export(&events, Format::Jsonl, &j).unwrap();
        let text = std::fs::read_to_string(&j).unwrap();
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2]["csat"], 2);
        assert_eq!(lines[0]["channel"], "local");
        assert!(text.starts_with("{\"event_id\":1,\"schema_version\":1,\"ts_ms\":1001,\"event_type\":"), "{text}");
        // no temporary file left beside it
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
