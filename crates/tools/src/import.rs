//! Imports of the admin's data files into `tools.sqlite`: the price list
//! (`sku,product,price,currency`), the orders (`order_id,customer,status,
//! updated_at`) and the calendar (.ics; every VEVENT is a busy time).
//!
//! Owns: the file formats' validation. A file is read and checked whole
//! before anything is written; then one transaction replaces that table's
//! rows, so a bad file (errors name FILE:LINE) or a killed process leaves
//! the previous data as it was. Never: partial imports, guessing a decimal
//! comma or a currency symbol.

use std::collections::HashSet;
use std::path::Path;

use jiff::civil::Date;
use rusqlite::params;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{DbCtx, Result, ToolError};
use crate::ics;
use crate::store::{OrderRow, PriceRow, ToolStore};

pub const PRICES_HEADER: [&str; 4] = ["sku", "product", "price", "currency"];
pub const ORDERS_HEADER: [&str; 4] = ["order_id", "customer", "status", "updated_at"];

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// prices | orders | calendar
    pub kind: String,
    pub file: String,
    pub rows: usize,
    /// Rows the import replaced.
    pub replaced: usize,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind.as_str() {
            "calendar" => "busy times",
            k => k,
        };
        write!(f, "imported {} {what} from {} (replacing {})", self.rows, self.file, self.replaced)
    }
}

/// Upper case, A–Z and 0–9 only: how SKUs and order ids are compared
/// (`nl 10240`, `NL10240`, `nl-10240` are one id).
pub fn normalise_id(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_uppercase()).collect()
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| ToolError::Io { path: path.to_path_buf(), source })
}

fn bad(path: &Path, line: u64, message: impl Into<String>) -> ToolError {
    ToolError::Import { path: path.to_path_buf(), line, message: message.into() }
}

/// Rows of a CSV with exactly `header`, each with its line number.
fn csv_rows(path: &Path, bytes: &[u8], header: &[&str; 4]) -> Result<Vec<(u64, Vec<String>)>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(bytes);
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(false).from_reader(bytes);
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut first = true;
    loop {
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                let msg = match e.kind() {
                    csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                        format!("{len} fields, expected {expected_len} ({})", header.join(","))
                    }
                    csv::ErrorKind::Utf8 { .. } => "not valid UTF-8 (save the file as UTF-8)".to_string(),
                    _ => e.to_string(),
                };
                return Err(bad(path, line, msg));
            }
        }
        let line = record.position().map_or(0, |p| p.line());
        let fields: Vec<String> = record.iter().map(|f| f.trim().to_string()).collect();
        if first {
            first = false;
            if fields.iter().map(String::as_str).ne(header.iter().copied()) {
                return Err(bad(path, line, format!("header must be exactly `{}`, found `{}`", header.join(","), fields.join(","))));
            }
            continue;
        }
        if fields.len() != header.len() {
            return Err(bad(path, line, format!("{} fields, expected {}", fields.len(), header.len())));
        }
        out.push((line, fields));
    }
    if first {
        return Err(bad(path, 1, format!("empty file: expected the header `{}`", header.join(","))));
    }
    if out.is_empty() {
        return Err(bad(path, 2, "no data rows after the header (an empty list would delete the current data)"));
    }
    Ok(out)
}

/// `1290.00`, `4.5`, `39` — digits, optionally a dot and one or two decimals.
fn valid_price(p: &str) -> bool {
    let (int, frac) = match p.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (p, None),
    };
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| (1..=2).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_currency(c: &str) -> bool {
    c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())
}

/// Checks a price list without writing anything.
pub fn parse_prices(path: &Path, bytes: &[u8]) -> Result<Vec<PriceRow>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (line, f) in csv_rows(path, bytes, &PRICES_HEADER)? {
        let [sku, product, price, currency] = <[String; 4]>::try_from(f).expect("four fields");
        if normalise_id(&sku).is_empty() {
            return Err(bad(path, line, "empty sku"));
        }
        if !seen.insert(normalise_id(&sku)) {
            return Err(bad(path, line, format!("duplicate sku {sku:?}")));
        }
        if product.is_empty() {
            return Err(bad(path, line, "empty product"));
        }
        if !valid_price(&price) {
            return Err(bad(path, line, format!("price {price:?} must be a number with a dot and at most two decimals, e.g. 1290.00")));
        }
        if !valid_currency(&currency) {
            return Err(bad(path, line, format!("currency {currency:?} must be an ISO 4217 code (three capital letters, e.g. EUR)")));
        }
        out.push(PriceRow { sku, product, price, currency });
    }
    Ok(out)
}

/// Checks an order list without writing anything.
pub fn parse_orders(path: &Path, bytes: &[u8]) -> Result<Vec<OrderRow>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (line, f) in csv_rows(path, bytes, &ORDERS_HEADER)? {
        let [order_id, customer, status, updated_at] = <[String; 4]>::try_from(f).expect("four fields");
        if normalise_id(&order_id).is_empty() {
            return Err(bad(path, line, "empty order_id"));
        }
        if !seen.insert(normalise_id(&order_id)) {
            return Err(bad(path, line, format!("duplicate order_id {order_id:?}")));
        }
        if status.is_empty() {
            return Err(bad(path, line, "empty status"));
        }
        if updated_at.len() != 10 || updated_at.parse::<Date>().is_err() {
            return Err(bad(path, line, format!("updated_at {updated_at:?} must be an ISO date YYYY-MM-DD")));
        }
        out.push(OrderRow { order_id, customer, status, updated_at });
    }
    Ok(out)
}

fn record_import(tx: &rusqlite::Transaction<'_>, store: &ToolStore, kind: &str, path: &Path, bytes: &[u8], rows: usize) -> Result<()> {
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    tx.execute(
        "INSERT OR REPLACE INTO imports(kind, file, sha256, rows, imported_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![kind, path.display().to_string(), hex::encode(Sha256::digest(bytes)), rows as i64, now],
    )
    .db(store.path())?;
    Ok(())
}

fn report(kind: &str, path: &Path, rows: usize, replaced: usize) -> ImportReport {
    ImportReport { kind: kind.into(), file: path.display().to_string(), rows, replaced }
}

/// Replaces the price list with `path`'s (all or nothing).
pub fn import_prices(store: &ToolStore, path: &Path) -> Result<ImportReport> {
    let bytes = read(path)?;
    let rows = parse_prices(path, &bytes)?;
    let tx = store.write_tx()?;
    let replaced = tx.execute("DELETE FROM prices", []).db(store.path())?;
    {
        let mut ins = tx.prepare("INSERT INTO prices(sku, sku_key, product, price, currency) VALUES (?1, ?2, ?3, ?4, ?5)").db(store.path())?;
        for r in &rows {
            ins.execute(params![r.sku, normalise_id(&r.sku), r.product, r.price, r.currency]).db(store.path())?;
        }
    }
    record_import(&tx, store, "prices", path, &bytes, rows.len())?;
    tx.commit().db(store.path())?;
    Ok(report("prices", path, rows.len(), replaced))
}

/// Replaces the orders with `path`'s (all or nothing).
pub fn import_orders(store: &ToolStore, path: &Path) -> Result<ImportReport> {
    let bytes = read(path)?;
    let rows = parse_orders(path, &bytes)?;
    let tx = store.write_tx()?;
    let replaced = tx.execute("DELETE FROM orders", []).db(store.path())?;
    {
        let mut ins = tx
            .prepare("INSERT INTO orders(order_id, order_key, customer, status, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)")
            .db(store.path())?;
        for r in &rows {
            ins.execute(params![r.order_id, normalise_id(&r.order_id), r.customer, r.status, r.updated_at]).db(store.path())?;
        }
    }
    record_import(&tx, store, "orders", path, &bytes, rows.len())?;
    tx.commit().db(store.path())?;
    Ok(report("orders", path, rows.len(), replaced))
}

/// Checks a calendar without writing anything. Floating times and all-day
/// events are placed in `default_tz` unless the file names X-WR-TIMEZONE.
pub fn parse_calendar(path: &Path, bytes: &[u8], default_tz: &jiff::tz::TimeZone) -> Result<Vec<ics::Event>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
        bad(path, line, "not valid UTF-8 (RFC 5545 files are UTF-8)")
    })?;
    ics::parse(text, default_tz).map_err(|e| bad(path, e.line, e.message))
}

/// Replaces the busy times with the VEVENTs of `path` (all or nothing).
/// Floating times are read in Europe/Berlin unless the file names its zone.
pub fn import_calendar(store: &ToolStore, path: &Path) -> Result<ImportReport> {
    import_calendar_in(store, path, &crate::hours::time_zone("Europe/Berlin")?)
}

/// [`import_calendar`] with the opening hours' zone as the default.
pub fn import_calendar_in(store: &ToolStore, path: &Path, default_tz: &jiff::tz::TimeZone) -> Result<ImportReport> {
    let bytes = read(path)?;
    let events = parse_calendar(path, &bytes, default_tz)?;
    let tx = store.write_tx()?;
    let replaced = tx.execute("DELETE FROM busy", []).db(store.path())?;
    {
        let mut ins = tx
            .prepare("INSERT INTO busy(uid, summary, start, end, all_day, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .db(store.path())?;
        for e in &events {
            ins.execute(params![e.uid, e.summary, e.start.as_second(), e.end.as_second(), e.all_day as i64, e.line as i64])
                .db(store.path())?;
        }
    }
    record_import(&tx, store, "calendar", path, &bytes, events.len())?;
    tx.commit().db(store.path())?;
    Ok(report("calendar", path, events.len(), replaced))
}

#[cfg(test)]
pub(crate) mod tests;
