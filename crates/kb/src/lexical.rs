//! The in-memory BM25 index: per-term postings of the analysed full-text
//! terms (see [`crate::analyze`]), scored exactly as FTS5's `bm25()` scores
//! `chunks_fts` (same k1 = 1.2, b = 0.75, idf, document lengths and column
//! weights), but term-at-a-time over compact postings instead of through
//! FTS5's per-row auxiliary-function calls: at 1M chunks a query costs
//! milliseconds where FTS5 took 100–170 ms.
//!
//! Like the vector index it is a derived cache of SQLite: it is built from
//! the `chunks_fts` rows, kept current by replaying the index log (the
//! store does that), and can always be rebuilt. It only converts to and
//! from bytes; the store seals them with the workspace key before they touch
//! the disk, so this module never writes a file. Format: docs/storage.md.
//!
//! Documents are numbered densely in the order they were added; a removed
//! chunk is a tombstone until [`LexicalIndex::compact`] renumbers. Statistics
//! (rows, total tokens, document frequencies) count live documents only, as
//! FTS5's do.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

const MAGIC: &[u8; 8] = b"TRSRBM25";
const VERSION: u32 = 1;
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// A term's postings: (doc delta, tf in head, tf in body) as LEB128 varints,
/// in increasing doc order.
#[derive(Default, Clone)]
struct Postings {
    bytes: Vec<u8>,
    count: u32,
    last_doc: u32,
}

#[derive(Default)]
pub struct LexicalIndex {
    /// dense doc → chunk id
    ids: Vec<i64>,
    /// dense doc → tokens in head + body (FTS5's row size)
    lens: Vec<u32>,
    live: Vec<bool>,
    by_id: HashMap<i64, u32>,
    terms: HashMap<String, Postings>,
    live_docs: u64,
    live_tokens: u64,
    /// `meta.fts_generation` the index was built from (bumped by `rebuild_fts`).
    pub generation: i64,
    /// Reused score accumulator (dense over docs) and the docs it touched.
    scratch: Mutex<(Vec<f64>, Vec<u32>)>,
}

/// The tokens FTS5's `unicode61 remove_diacritics 2` makes of an analysed
/// column: runs of alphanumeric characters, folded (lowercase, diacritics
/// removed).
pub fn tokens(s: &str) -> impl Iterator<Item = Cow<'_, str>> {
    crate::analyze::words(s).map(|w| {
        if w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
            Cow::Borrowed(w)
        } else {
            Cow::Owned(crate::analyze::fold(w))
        }
    })
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn get_varint(b: &[u8], pos: &mut usize) -> Option<u32> {
    let mut v = 0u32;
    let mut shift = 0;
    loop {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= ((byte & 0x7f) as u32) << shift;
        if byte < 0x80 {
            return Some(v);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// Iterates a term's postings: (doc, tf head, tf body).
fn postings(p: &Postings) -> impl Iterator<Item = (u32, u32, u32)> + '_ {
    let mut pos = 0;
    let mut doc = 0u32;
    let mut left = p.count;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        left -= 1;
        let d = get_varint(&p.bytes, &mut pos)?;
        let h = get_varint(&p.bytes, &mut pos)?;
        let b = get_varint(&p.bytes, &mut pos)?;
        doc += d;
        Some((doc, h, b))
    })
}

impl LexicalIndex {
    pub fn new(generation: i64) -> LexicalIndex {
        LexicalIndex { generation, ..Default::default() }
    }

    /// Live documents (chunks).
    pub fn len(&self) -> usize {
        self.live_docs as usize
    }

    pub fn is_empty(&self) -> bool {
        self.live_docs == 0
    }

    /// Dense slots including tombstones.
    pub fn slots(&self) -> usize {
        self.ids.len()
    }

    pub fn contains(&self, id: i64) -> bool {
        self.by_id.get(&id).is_some_and(|&d| self.live[d as usize])
    }

    /// The row size FTS5 would record for chunk `id` (tokens in head + body).
    pub fn doc_len(&self, id: i64) -> Option<u32> {
        self.by_id.get(&id).filter(|&&d| self.live[d as usize]).map(|&d| self.lens[d as usize])
    }

    /// Adds (or replaces) chunk `id` with its analysed columns.
    pub fn add(&mut self, id: i64, head: &str, body: &str) {
        if self.contains(id) {
            self.remove(id);
        }
        let doc = self.ids.len() as u32;
        let mut tf: HashMap<Cow<'_, str>, (u32, u32)> = HashMap::new();
        let mut len = 0u32;
        for t in tokens(head) {
            tf.entry(t).or_default().0 += 1;
            len += 1;
        }
        for t in tokens(body) {
            tf.entry(t).or_default().1 += 1;
            len += 1;
        }
        for (t, (h, b)) in tf {
            let p = match self.terms.get_mut(t.as_ref()) {
                Some(p) => p,
                None => self.terms.entry(t.into_owned()).or_default(),
            };
            put_varint(&mut p.bytes, doc - p.last_doc);
            put_varint(&mut p.bytes, h);
            put_varint(&mut p.bytes, b);
            p.count += 1;
            p.last_doc = doc;
        }
        self.ids.push(id);
        self.lens.push(len);
        self.live.push(true);
        self.by_id.insert(id, doc);
        self.live_docs += 1;
        self.live_tokens += len as u64;
    }

    /// Tombstones chunk `id` (no-op if absent).
    pub fn remove(&mut self, id: i64) {
        if let Some(d) = self.by_id.remove(&id) {
            let d = d as usize;
            if self.live[d] {
                self.live[d] = false;
                self.live_docs -= 1;
                self.live_tokens -= self.lens[d] as u64;
            }
        }
    }

    /// Share of slots that are tombstones.
    pub fn dead_share(&self) -> f64 {
        if self.ids.is_empty() {
            0.0
        } else {
            1.0 - self.live_docs as f64 / self.ids.len() as f64
        }
    }

    /// Drops tombstones and renumbers the live documents (same order).
    pub fn compact(&mut self) {
        if self.live_docs as usize == self.ids.len() {
            return;
        }
        let mut remap = vec![u32::MAX; self.ids.len()];
        let mut next = 0u32;
        for (d, &l) in self.live.iter().enumerate() {
            if l {
                remap[d] = next;
                next += 1;
            }
        }
        let mut terms = HashMap::with_capacity(self.terms.len());
        for (t, p) in self.terms.drain() {
            let mut q = Postings::default();
            for (d, h, b) in postings(&p) {
                let nd = remap[d as usize];
                if nd != u32::MAX {
                    put_varint(&mut q.bytes, nd - q.last_doc);
                    put_varint(&mut q.bytes, h);
                    put_varint(&mut q.bytes, b);
                    q.count += 1;
                    q.last_doc = nd;
                }
            }
            if q.count > 0 {
                q.bytes.shrink_to_fit();
                terms.insert(t, q);
            }
        }
        self.terms = terms;
        let live = std::mem::take(&mut self.live);
        let mut i = 0;
        self.ids.retain(|_| (live[i], i += 1).0);
        let mut i = 0;
        self.lens.retain(|_| (live[i], i += 1).0);
        self.live = vec![true; self.ids.len()];
        self.by_id = self.ids.iter().enumerate().map(|(d, &id)| (id, d as u32)).collect();
        *self.scratch.lock().expect("scratch") = Default::default();
    }

    /// In how many live chunks `term` (folded or not) occurs.
    pub fn doc_freq(&self, term: &str) -> usize {
        let t = crate::analyze::fold(term);
        let Some(p) = self.terms.get(&t) else { return 0 };
        if self.live_docs as usize == self.ids.len() {
            return p.count as usize;
        }
        postings(p).filter(|(d, _, _)| self.live[*d as usize]).count()
    }

    /// Whether `term` occurs in some live chunk.
    pub fn has_term(&self, term: &str) -> bool {
        let t = crate::analyze::fold(term);
        self.terms.get(&t).is_some_and(|p| postings(p).any(|(d, _, _)| self.live[d as usize]))
    }

    /// BM25 of the chunks matching any of `terms` (an OR query), best
    /// first, at most `n`: (chunk id, score), score = −FTS5's bm25() with
    /// column weights `w_head`, `w_body`. `allowed` restricts the result
    /// (not the statistics, as a filtered FTS5 query does not). Ties go to
    /// the lower chunk id.
    pub fn search(&self, terms: &[String], n: usize, w_head: f64, w_body: f64, allowed: Option<&dyn Fn(i64) -> bool>) -> Vec<(i64, f32)> {
        if n == 0 || self.live_docs == 0 {
            return Vec::new();
        }
        let rows = self.live_docs as f64;
        let avgdl = self.live_tokens as f64 / rows;
        // each term is one phrase, as in FTS5's `"a" OR "b"`: two query terms
        // that fold alike ("gerät", "gerat") count twice there, so here too
        let folded: Vec<String> = terms.iter().map(|t| crate::analyze::fold(t)).collect();
        let mut guard = self.scratch.lock().expect("scratch");
        let (acc, touched) = &mut *guard;
        if acc.len() < self.ids.len() {
            acc.resize(self.ids.len(), 0.0);
        }
        let mut hits: Vec<(u32, u32, u32)> = Vec::new();
        for t in &folded {
            let Some(p) = self.terms.get(t) else { continue };
            hits.clear();
            hits.extend(postings(p).filter(|(d, _, _)| self.live[*d as usize]));
            if hits.is_empty() {
                continue;
            }
            let df = hits.len() as f64;
            let mut idf = ((rows - df + 0.5) / (df + 0.5)).ln();
            if idf <= 0.0 {
                idf = 1e-6;
            }
            for &(d, h, b) in &hits {
                let di = d as usize;
                if let Some(ok) = allowed {
                    if !ok(self.ids[di]) {
                        continue;
                    }
                }
                let f = w_head * h as f64 + w_body * b as f64;
                let dl = self.lens[di] as f64;
                let s = idf * (f * (K1 + 1.0)) / (f + K1 * (1.0 - B + B * dl / avgdl));
                if acc[di] == 0.0 {
                    touched.push(d);
                    // a match that scores 0 (zero weights) still matches
                    acc[di] = if s == 0.0 { f64::MIN_POSITIVE } else { s };
                } else {
                    acc[di] += s;
                }
            }
        }
        let mut out: Vec<(i64, f64)> = touched.iter().map(|&d| (self.ids[d as usize], acc[d as usize])).collect();
        for &d in touched.iter() {
            acc[d as usize] = 0.0;
        }
        touched.clear();
        drop(guard);
        let cmp = |a: &(i64, f64), b: &(i64, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if out.len() > n {
            out.select_nth_unstable_by(n - 1, cmp);
            out.truncate(n);
        }
        out.sort_unstable_by(cmp);
        out.into_iter().map(|(id, s)| (id, s as f32)).collect()
    }

    /// Bytes of postings (for stats).
    pub fn postings_bytes(&self) -> usize {
        self.terms.iter().map(|(t, p)| t.len() + p.bytes.len() + 16).sum::<usize>() + self.ids.len() * 17
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.postings_bytes() + 64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&(self.ids.len() as u64).to_le_bytes());
        for d in 0..self.ids.len() {
            out.extend_from_slice(&self.ids[d].to_le_bytes());
            out.extend_from_slice(&self.lens[d].to_le_bytes());
            out.push(self.live[d] as u8);
        }
        out.extend_from_slice(&(self.terms.len() as u64).to_le_bytes());
        for (t, p) in &self.terms {
            out.extend_from_slice(&(t.len() as u32).to_le_bytes());
            out.extend_from_slice(t.as_bytes());
            out.extend_from_slice(&p.count.to_le_bytes());
            out.extend_from_slice(&p.last_doc.to_le_bytes());
            out.extend_from_slice(&(p.bytes.len() as u64).to_le_bytes());
            out.extend_from_slice(&p.bytes);
        }
        out
    }

    /// Parses [`LexicalIndex::to_bytes`]; checks every posting list decodes
    /// within bounds, so a damaged file is refused rather than misread.
    pub fn from_bytes(b: &[u8]) -> std::result::Result<LexicalIndex, String> {
        let mut r = Reader { b, pos: 0 };
        if r.take(8)? != MAGIC {
            return Err("not a Tresor BM25 index".into());
        }
        let v = r.u32()?;
        if v != VERSION {
            return Err(format!("BM25 index format {v}, this build reads {VERSION}"));
        }
        let generation = r.u64()? as i64;
        let n = r.u64()? as usize;
        if n > b.len() / 13 {
            return Err("document count exceeds the file".into());
        }
        let mut ix = LexicalIndex::new(generation);
        ix.ids.reserve(n);
        ix.lens.reserve(n);
        ix.live.reserve(n);
        for d in 0..n {
            let id = r.u64()? as i64;
            let len = r.u32()?;
            let live = r.take(1)?[0] != 0;
            ix.ids.push(id);
            ix.lens.push(len);
            ix.live.push(live);
            if live {
                if ix.by_id.insert(id, d as u32).is_some() {
                    return Err(format!("chunk {id} is live twice"));
                }
                ix.live_docs += 1;
                ix.live_tokens += len as u64;
            }
        }
        let nt = r.u64()? as usize;
        if nt > b.len() {
            return Err("term count exceeds the file".into());
        }
        ix.terms.reserve(nt);
        for _ in 0..nt {
            let tl = r.u32()? as usize;
            let t = std::str::from_utf8(r.take(tl)?).map_err(|_| "term is not UTF-8")?.to_string();
            let count = r.u32()?;
            let last_doc = r.u32()?;
            let nb = r.u64()? as usize;
            let p = Postings { bytes: r.take(nb)?.to_vec(), count, last_doc };
            let (mut seen, mut last) = (0u32, None);
            for (d, _, _) in postings(&p) {
                if d as usize >= n || last.is_some_and(|l| d <= l) && seen > 0 {
                    return Err(format!("postings of `{t}` out of order or range"));
                }
                last = Some(d);
                seen += 1;
            }
            if seen != count || last != Some(last_doc) {
                return Err(format!("postings of `{t}` truncated"));
            }
            ix.terms.insert(t, p);
        }
        if r.pos != b.len() {
            return Err("trailing bytes after the BM25 index".into());
        }
        Ok(ix)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or("BM25 index truncated")?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LexicalIndex {
        let mut ix = LexicalIndex::new(3);
        ix.add(10, "handbuch urlaub", "jed mitarbeit hat 30 tag urlaub");
        ix.add(11, "it sicher", "passwort sind geheim passwort");
        ix.add(12, "", "urlaub urlaub urlaub antrag");
        ix
    }

    #[test]
    fn scores_by_bm25_and_breaks_ties_by_id() {
        let ix = sample();
        let r = ix.search(&["urlaub".into()], 10, 0.5, 1.0, None);
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), vec![12, 10]);
        assert!(r[0].1 > r[1].1);
        let both = ix.search(&["passwort".into(), "urlaub".into()], 1, 1.0, 1.0, None);
        assert_eq!(both.len(), 1);
        assert!(ix.search(&["nichts".into()], 5, 1.0, 1.0, None).is_empty());
        let only_10 = |id: i64| id == 10;
        assert_eq!(ix.search(&["urlaub".into()], 5, 1.0, 1.0, Some(&only_10)).iter().map(|x| x.0).collect::<Vec<_>>(), vec![10]);
    }

    #[test]
    fn removal_changes_statistics_and_compaction_keeps_results() {
        let mut ix = sample();
        assert_eq!(ix.doc_freq("urlaub"), 2);
        ix.remove(12);
        assert_eq!(ix.doc_freq("urlaub"), 1);
        assert!(!ix.has_term("antrag"));
        assert!(ix.has_term("Urlaub"));
        let before = ix.search(&["urlaub".into(), "passwort".into()], 5, 0.5, 1.0, None);
        ix.compact();
        assert_eq!(ix.slots(), 2);
        assert_eq!(ix.search(&["urlaub".into(), "passwort".into()], 5, 0.5, 1.0, None), before);
        ix.add(13, "", "urlaub");
        assert_eq!(ix.doc_freq("urlaub"), 2);
    }

    #[test]
    fn bytes_round_trip_and_damage_is_refused() {
        let mut ix = sample();
        ix.remove(11);
        let b = ix.to_bytes();
        let back = LexicalIndex::from_bytes(&b).unwrap();
        assert_eq!(back.generation, 3);
        assert_eq!(back.len(), 2);
        let q = ["urlaub".to_string(), "passwort".to_string()];
        assert_eq!(back.search(&q, 5, 0.5, 1.0, None), ix.search(&q, 5, 0.5, 1.0, None));
        for cut in [0, 5, 20, b.len() / 2, b.len() - 1] {
            assert!(LexicalIndex::from_bytes(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = b.clone();
        flipped[8] ^= 0xff;
        assert!(LexicalIndex::from_bytes(&flipped).is_err());
    }

    #[test]
    fn tokens_fold_like_unicode61() {
        let t: Vec<String> = tokens("Gerät café-bar 30 straße").map(|c| c.into_owned()).collect();
        assert_eq!(t, vec!["gerat", "cafe", "bar", "30", "straße"]);
    }
}
