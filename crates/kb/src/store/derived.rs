//! The two indexes derived from the database — the usearch HNSW vector
//! index (`vectors-<seq>.usearch`, from `chunks.embedding`) and the BM25
//! index (`bm25-<seq>.idx`, from `chunks_fts`) — through one lifecycle,
//! [`DerivedIndex`]: a sealed file is named after the last index-log entry it
//! contains; loading takes the newest one when the log still reaches back to
//! it and it was built from the current source generation, then replays the
//! log past it; a missing, damaged or stale file is rebuilt from the database
//! in one read transaction; saving writes a sealed file atomically, removes
//! older ones, and compacts the log up to what both indexes hold. What
//! differs between the two is their [`Payload`]: file name, params, how it is
//! built, decoded and encoded, and how it applies one log entry.
//!
//! Owns the derived files (naming, sealing, atomic replacement, stale temp
//! files), the index-log replay and compaction, and `meta.index_compacted_to`;
//! never the payloads' byte formats ([`crate::index`], [`crate::lexical`])
//! nor the source-of-truth tables.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, TransactionBehavior};

use super::schema::{self, meta_i64};
use super::{blob_to_f32s, Embedded};
use crate::error::{DbCtx, IoCtx, KbError, Result};
use crate::index::{Quantization, VectorIndex};
use crate::lexical::LexicalIndex;
use tresor_guard::crypto::WorkspaceKey;

/// What the lifecycle needs of the knowledge base besides the index itself.
pub(super) struct Ctx<'a> {
    dir: &'a Path,
    db: &'a Path,
    conn: &'a mut Connection,
    key: &'a WorkspaceKey,
}

/// One kind of derived index: what the vector and the BM25 index do differently.
pub(super) trait Payload: Sized {
    /// Sealed files are `<STEM>-<seq:020><EXT>`, written through `<STEM>.tmp-<pid>`.
    const STEM: &'static str;
    const EXT: &'static str;
    /// Its name in log messages.
    const WHAT: &'static str;
    /// The columns from index 3 on and the FROM clause over `index_log l`
    /// that [`Payload::apply`] reads (see [`replay_index_log`]).
    const REPLAY: &'static str;
    /// What decoding and building need to know of the database.
    type Params;
    fn params(conn: &Connection, db: &Path, dir: &Path) -> Result<Self::Params>;
    /// The generation of the source rows in the database; an index built
    /// from another one is stale. Only the FTS terms have generations.
    fn source_generation(_conn: &Connection, _db: &Path) -> Result<i64> {
        Ok(0)
    }
    /// The source generation this index was built from.
    fn generation(&self) -> i64 {
        0
    }
    fn decode(bytes: &[u8], params: &Self::Params) -> std::result::Result<Self, String>;
    fn encode(&self) -> std::result::Result<Vec<u8>, String>;
    /// Builds the index from the database, inside the read transaction `conn`.
    fn build(conn: &Connection, db: &Path, dir: &Path, params: &Self::Params, generation: i64) -> Result<Self>;
    /// Applies one log entry: `op` 0 adds chunk `id` (`row` holds the
    /// [`Payload::REPLAY`] columns, NULL when the chunk was deleted since), 1 removes it.
    fn apply(&mut self, op: i64, id: i64, row: &rusqlite::Row<'_>, db: &Path, dir: &Path) -> Result<()>;
    /// Tidies the index before it is saved; true when that changed it.
    fn tidy(&mut self) -> bool {
        false
    }
    /// This kind's index among the knowledge base's two.
    fn pick<'a>(vectors: &'a mut DerivedIndex<VectorIndex>, bm25: &'a mut DerivedIndex<LexicalIndex>) -> &'a mut DerivedIndex<Self>;
}

/// A derived index of the knowledge base, its log position and its state.
pub(super) struct DerivedIndex<P> {
    /// The index, when loaded.
    pub(super) ix: Option<P>,
    /// The last index-log entry it contains.
    seq: i64,
    /// Whether it changed since it was loaded or saved.
    dirty: bool,
    /// Whether it was rebuilt in this process (see [`Kb::save_rebuilt_indexes`]).
    rebuilt: bool,
}

impl<P> Default for DerivedIndex<P> {
    fn default() -> Self {
        DerivedIndex { ix: None, seq: 0, dirty: false, rebuilt: false }
    }
}

fn index_err(dir: &Path, reason: impl ToString) -> KbError {
    KbError::Index { path: dir.to_path_buf(), reason: reason.to_string() }
}

/// `<STEM>-<seq><EXT>` files of the KB directory, by seq.
fn sealed_files<P: Payload>(dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let prefix = format!("{}-", P::STEM);
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).io(dir)? {
        let e = e.io(dir)?;
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(seq) = name.strip_prefix(&prefix).and_then(|s| s.strip_suffix(P::EXT)) {
            if let Ok(seq) = seq.parse::<i64>() {
                v.push((seq, e.path()));
            }
        }
    }
    v.sort();
    Ok(v)
}

/// The newest sealed file of index `P`: (seq, path).
pub(super) fn latest_file<P: Payload>(dir: &Path) -> Result<Option<(i64, PathBuf)>> {
    Ok(sealed_files::<P>(dir)?.pop())
}

/// Calls `apply(op, chunk_id, row)` for each index-log entry after `since`,
/// in order; `select` is what follows `SELECT l.seq, l.op, l.chunk_id, `
/// (the columns from index 3 on and the FROM clause over `index_log l`).
/// Returns the last seq applied (`since` when there was none).
fn replay_index_log(
    conn: &Connection,
    path: &Path,
    select: &str,
    since: i64,
    mut apply: impl FnMut(i64, i64, &rusqlite::Row<'_>) -> Result<()>,
) -> Result<i64> {
    let sql = format!("SELECT l.seq, l.op, l.chunk_id, {select} WHERE l.seq > ?1 ORDER BY l.seq");
    let mut st = conn.prepare_cached(&sql).db(path)?;
    let mut rows = st.query([since]).db(path)?;
    let mut last = since;
    while let Some(r) = rows.next().db(path)? {
        let seq: i64 = r.get(0).db(path)?;
        apply(r.get(1).db(path)?, r.get(2).db(path)?, r)?;
        last = seq;
    }
    Ok(last)
}

/// Seals `bytes` with the workspace key and writes them as `name`
/// atomically: `<stem>.tmp-<pid>`, fsync, rename, fsync the directory.
fn write_sealed(cx: &Ctx<'_>, bytes: &[u8], stem: &str, name: &str) -> Result<()> {
    let tmp = cx.dir.join(format!("{stem}.tmp-{}", std::process::id()));
    let fin = cx.dir.join(name);
    let sealed = cx.key.seal(bytes, b"");
    std::fs::File::create(&tmp)
        .and_then(|mut f| {
            use std::io::Write;
            f.write_all(&sealed)?;
            f.sync_all()
        })
        .io(&tmp)?;
    std::fs::rename(&tmp, &fin).io(&fin)?;
    if let Ok(d) = std::fs::File::open(cx.dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes `<stem>.tmp-<pid>` files left by processes that died mid-save.
fn remove_stale_temp_files(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = [VectorIndex::STEM, LexicalIndex::STEM]
            .iter()
            .find_map(|stem| name.strip_prefix(stem)?.strip_prefix(".tmp-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = if cfg!(target_os = "linux") { Path::new(&format!("/proc/{pid}")).exists() } else { true };
        if pid != std::process::id() && !alive {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl<P: Payload> DerivedIndex<P> {
    /// Loads the newest sealed file when the log still reaches back to it,
    /// it unseals and decodes, and it was built from the current source
    /// generation, then replays the log past it; else rebuilds.
    fn load(&mut self, cx: &mut Ctx<'_>) -> Result<()> {
        let params = P::params(cx.conn, cx.db, cx.dir)?;
        let compacted = meta_i64(cx.conn, cx.db, "index_compacted_to")?;
        if let Some((seq, path)) = latest_file::<P>(cx.dir)? {
            if seq >= compacted {
                let loaded = cx.key.read_file(&path).map_err(|e| e.to_string()).and_then(|b| P::decode(&b, &params));
                match loaded {
                    Ok(ix) if ix.generation() == P::source_generation(cx.conn, cx.db)? => {
                        self.ix = Some(ix);
                        self.seq = seq;
                        self.dirty = false;
                        return self.catch_up(cx);
                    }
                    Ok(_) => tracing::info!("{} {} predates `kb rebuild-index`; rebuilding", P::WHAT, path.display()),
                    Err(e) => tracing::warn!("{} {} unreadable ({e}); rebuilding from the database", P::WHAT, path.display()),
                }
            }
        }
        self.rebuild(cx)
    }

    /// Rebuilds the index from the database.
    fn rebuild(&mut self, cx: &mut Ctx<'_>) -> Result<()> {
        let (db, dir) = (cx.db, cx.dir);
        // one read transaction: the log position and the source rows agree
        let tx = cx.conn.transaction().db(db)?;
        let params = P::params(&tx, db, dir)?;
        let seq: i64 = tx
            .query_row("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'index_log'), 0)", [], |r| r.get(0))
            .db(db)?;
        let generation = P::source_generation(&tx, db)?;
        let ix = P::build(&tx, db, dir, &params, generation)?;
        tx.commit().db(db)?;
        self.ix = Some(ix);
        self.seq = seq;
        self.dirty = true;
        self.rebuilt = true;
        Ok(())
    }

    /// Applies the index-log entries the loaded index has not seen; reloads
    /// when another process compacted the log past it or the source
    /// generation changed. Nothing to do when it is not loaded.
    fn catch_up(&mut self, cx: &mut Ctx<'_>) -> Result<()> {
        let Some(ix) = self.ix.as_mut() else { return Ok(()) };
        let compacted = meta_i64(cx.conn, cx.db, "index_compacted_to")?;
        if compacted > self.seq || ix.generation() != P::source_generation(cx.conn, cx.db)? {
            // another process saved and compacted past us, or re-analysed the terms: reload
            self.ix = None;
            return self.load(cx);
        }
        let (db, dir) = (cx.db, cx.dir);
        let last = replay_index_log(cx.conn, db, P::REPLAY, self.seq, |op, id, r| ix.apply(op, id, r, db, dir))?;
        self.dirty |= last > self.seq;
        self.seq = last;
        Ok(())
    }

    /// The index, loaded and current.
    fn current(&mut self, cx: &mut Ctx<'_>) -> Result<&P> {
        if self.ix.is_none() {
            self.load(cx)?;
        } else {
            self.catch_up(cx)?;
        }
        Ok(self.ix.as_ref().expect("loaded"))
    }

    /// Writes the index as `<STEM>-<seq><EXT>` when it changed or the newest
    /// file is not at its seq, and removes older files. Returns its seq;
    /// `None` when it is not loaded.
    fn save(&mut self, cx: &Ctx<'_>) -> Result<Option<i64>> {
        let Some(ix) = self.ix.as_mut() else { return Ok(None) };
        let seq = self.seq;
        if ix.tidy() {
            self.dirty = true;
        }
        if self.dirty || !latest_file::<P>(cx.dir)?.is_some_and(|(s, _)| s == seq) {
            // sealed with the workspace key (AEAD) before it touches the disk
            let bytes = ix.encode().map_err(|e| index_err(cx.dir, e))?;
            write_sealed(cx, &bytes, P::STEM, &format!("{}-{seq:020}{}", P::STEM, P::EXT))?;
            for (s, path) in sealed_files::<P>(cx.dir)? {
                if s < seq {
                    let _ = std::fs::remove_file(path);
                }
            }
            self.dirty = false;
        }
        Ok(Some(seq))
    }
}

impl Payload for VectorIndex {
    const STEM: &'static str = "vectors";
    const EXT: &'static str = ".usearch";
    const WHAT: &'static str = "vector index";
    const REPLAY: &'static str = "c.embedding FROM index_log l LEFT JOIN chunks c ON l.op = 0 AND c.id = l.chunk_id";
    /// Dimensions and quantization.
    type Params = (usize, Quantization);

    /// `NoVectors` when no embedder has been bound.
    fn params(conn: &Connection, db: &Path, dir: &Path) -> Result<(usize, Quantization)> {
        let info = schema::info(conn, db)?;
        let Some(dim) = info.dim else { return Err(KbError::NoVectors { path: dir.to_path_buf() }) };
        Ok((dim, Quantization::parse(&info.quantization).unwrap_or(Quantization::F16)))
    }

    fn decode(bytes: &[u8], &(dim, q): &(usize, Quantization)) -> std::result::Result<Self, String> {
        VectorIndex::from_bytes(bytes, dim, q)
    }

    fn encode(&self) -> std::result::Result<Vec<u8>, String> {
        self.to_bytes()
    }

    /// From the stored embeddings, on all cores.
    fn build(conn: &Connection, db: &Path, dir: &Path, &(dim, q): &(usize, Quantization), _generation: i64) -> Result<Self> {
        let ierr = |e: String| index_err(dir, e);
        let n: i64 = conn.query_row("SELECT count(*) FROM chunks", [], |r| r.get(0)).db(db)?;
        let idx = VectorIndex::new(dim, q, n as usize).map_err(ierr)?;
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        idx.reserve_more(n as usize, threads).map_err(ierr)?;
        {
            let mut st = conn.prepare("SELECT id, embedding FROM chunks").db(db)?;
            let mut rows = st.query([]).db(db)?;
            let mut batch: Vec<(u64, Vec<f32>)> = Vec::with_capacity(4096);
            let flush = |batch: &mut Vec<(u64, Vec<f32>)>| -> std::result::Result<(), String> {
                let per = batch.len().div_ceil(threads).max(1);
                std::thread::scope(|s| {
                    let hs: Vec<_> = batch
                        .chunks(per)
                        .map(|part| {
                            let idx = &idx;
                            s.spawn(move || part.iter().try_for_each(|(k, v)| idx.add_unchecked(*k, v)))
                        })
                        .collect();
                    hs.into_iter().try_for_each(|h| h.join().unwrap_or_else(|_| Err("index thread panicked".into())))
                })?;
                batch.clear();
                Ok(())
            };
            while let Some(r) = rows.next().db(db)? {
                let id: i64 = r.get(0).db(db)?;
                let blob: Vec<u8> = r.get(1).db(db)?;
                batch.push((id as u64, blob_to_f32s(&blob)));
                if batch.len() >= 4096 {
                    flush(&mut batch).map_err(ierr)?;
                }
            }
            flush(&mut batch).map_err(ierr)?;
        }
        Ok(idx)
    }

    /// Adds the chunk's stored embedding (replacing any vector under its id) or removes its id.
    fn apply(&mut self, op: i64, id: i64, r: &rusqlite::Row<'_>, db: &Path, dir: &Path) -> Result<()> {
        let res = match (op, r.get::<_, Option<Vec<u8>>>(3).db(db)?) {
            (0, Some(b)) => self.upsert(id as u64, &blob_to_f32s(&b)),
            (0, None) => Ok(()), // deleted since; a later remove entry follows
            _ => self.remove(id as u64),
        };
        res.map_err(|e| index_err(dir, e))
    }

    fn pick<'a>(vectors: &'a mut DerivedIndex<VectorIndex>, _: &'a mut DerivedIndex<LexicalIndex>) -> &'a mut DerivedIndex<Self> {
        vectors
    }
}

impl Payload for LexicalIndex {
    const STEM: &'static str = "bm25";
    const EXT: &'static str = ".idx";
    const WHAT: &'static str = "BM25 index";
    const REPLAY: &'static str = "f.head, f.body FROM index_log l LEFT JOIN chunks_fts f ON l.op = 0 AND f.rowid = l.chunk_id";
    type Params = ();

    fn params(_: &Connection, _: &Path, _: &Path) -> Result<()> {
        Ok(())
    }

    /// `meta.fts_generation`, bumped by every re-analysis of the FTS terms ([`Kb::rebuild_fts`]).
    fn source_generation(conn: &Connection, db: &Path) -> Result<i64> {
        meta_i64(conn, db, "fts_generation")
    }

    fn generation(&self) -> i64 {
        self.generation
    }

    fn decode(bytes: &[u8], _: &()) -> std::result::Result<Self, String> {
        LexicalIndex::from_bytes(bytes)
    }

    fn encode(&self) -> std::result::Result<Vec<u8>, String> {
        Ok(self.to_bytes())
    }

    /// From the `chunks_fts` rows.
    fn build(conn: &Connection, db: &Path, _: &Path, _: &(), generation: i64) -> Result<Self> {
        let mut ix = LexicalIndex::new(generation);
        let mut st = conn.prepare("SELECT rowid, head, body FROM chunks_fts ORDER BY rowid").db(db)?;
        let mut rows = st.query([]).db(db)?;
        while let Some(r) = rows.next().db(db)? {
            let id: i64 = r.get(0).db(db)?;
            let head: String = r.get(1).db(db)?;
            let body: String = r.get(2).db(db)?;
            ix.add(id, &head, &body);
        }
        Ok(ix)
    }

    /// Adds the chunk's `chunks_fts` row or tombstones the chunk.
    fn apply(&mut self, op: i64, id: i64, r: &rusqlite::Row<'_>, db: &Path, _: &Path) -> Result<()> {
        match (op, r.get::<_, Option<String>>(3).db(db)?, r.get::<_, Option<String>>(4).db(db)?) {
            (0, Some(head), Some(body)) => self.add(id, &head, &body),
            (0, _, _) => {} // deleted since; a later remove entry follows
            _ => self.remove(id),
        }
        Ok(())
    }

    /// Compacts when more than 20 % of the slots are removed chunks.
    fn tidy(&mut self) -> bool {
        if self.dead_share() > 0.2 {
            self.compact();
            true
        } else {
            false
        }
    }

    fn pick<'a>(_: &'a mut DerivedIndex<VectorIndex>, bm25: &'a mut DerivedIndex<LexicalIndex>) -> &'a mut DerivedIndex<Self> {
        bm25
    }
}

impl Embedded {
    /// Index `P` of this knowledge base, and the rest of it the lifecycle needs.
    fn derived<P: Payload>(&mut self) -> (Ctx<'_>, &mut DerivedIndex<P>) {
        let Embedded { dir, db_path, conn, key, vectors, bm25 } = self;
        (Ctx { dir, db: db_path, conn, key }, P::pick(vectors, bm25))
    }

    pub(super) fn load<P: Payload>(&mut self) -> Result<()> {
        let (mut cx, d) = self.derived::<P>();
        d.load(&mut cx)
    }

    fn catch_up<P: Payload>(&mut self) -> Result<()> {
        let (mut cx, d) = self.derived::<P>();
        d.catch_up(&mut cx)
    }

    fn rebuild<P: Payload>(&mut self) -> Result<()> {
        let (mut cx, d) = self.derived::<P>();
        d.rebuild(&mut cx)
    }

    fn current<P: Payload>(&mut self) -> Result<&P> {
        let (mut cx, d) = self.derived::<P>();
        d.current(&mut cx)
    }

    fn save<P: Payload>(&mut self) -> Result<Option<i64>> {
        let (cx, d) = self.derived::<P>();
        d.save(&cx)
    }

    /// Loads the vector index (latest file + log replay, or a rebuild from
    /// the stored embeddings). `NoVectors` if no embedder has been bound.
    pub fn index(&mut self) -> Result<&VectorIndex> {
        self.current()
    }

    /// Rebuilds the vector index from the embeddings in SQLite.
    pub fn rebuild_vectors(&mut self) -> Result<()> {
        self.rebuild::<VectorIndex>()
    }

    /// Loads the BM25 index if it is not loaded, else brings it up to date.
    pub fn ensure_lexical(&mut self) -> Result<()> {
        self.current::<LexicalIndex>().map(|_| ())
    }

    /// The BM25 index, loaded and current.
    pub fn lexical(&mut self) -> Result<&LexicalIndex> {
        self.current()
    }

    /// Rebuilds the BM25 index from the `chunks_fts` rows.
    pub fn rebuild_lexical(&mut self) -> Result<()> {
        self.rebuild::<LexicalIndex>()
    }

    /// After a commit: brings the loaded indexes up to date.
    pub fn after_write(&mut self) -> Result<()> {
        self.catch_up::<VectorIndex>()?;
        self.catch_up::<LexicalIndex>()
    }

    /// Loads (or creates) the vector and BM25 indexes so that writes update them.
    pub fn ensure_index(&mut self) -> Result<()> {
        if self.vectors.ix.is_none() {
            self.load::<VectorIndex>()?;
        }
        if self.bm25.ix.is_none() {
            self.load::<LexicalIndex>()?;
        }
        Ok(())
    }

    /// Writes the derived indexes atomically — the vector index as
    /// `vectors-<seq>.usearch` and the BM25 index as `bm25-<seq>.idx`
    /// (each: sealed, temp file, fsync, rename, fsync dir) — removes older
    /// files, then compacts the index log up to the smaller of the two
    /// seqs, so that each file plus the log still gives the current state.
    /// Either index is loaded first when it is not (the log entries it
    /// needs would otherwise be compacted away).
    pub fn save_index(&mut self) -> Result<()> {
        if self.vectors.ix.is_none() && self.info()?.dim.is_some() {
            self.load::<VectorIndex>()?;
        }
        if self.bm25.ix.is_none() {
            self.load::<LexicalIndex>()?;
        }
        self.after_write()?;
        let seqs = [self.save::<VectorIndex>()?, self.save::<LexicalIndex>()?];
        let seq = seqs.into_iter().flatten().min().unwrap_or(i64::MAX);
        remove_stale_temp_files(&self.dir);
        let p = self.db_path.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).db(&p)?;
        tx.execute("DELETE FROM index_log WHERE seq <= ?1", [seq]).db(&p)?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('index_compacted_to', ?1)
             ON CONFLICT(key) DO UPDATE SET value = max(CAST(value AS INTEGER), CAST(?1 AS INTEGER))",
            [seq.to_string()],
        )
        .db(&p)?;
        tx.commit().db(&p)?;
        Ok(())
    }

    /// Saves the indexes when this process had to rebuild one (a missing,
    /// damaged or stale file), so that the next process loads it instead
    /// of rebuilding again. For read paths (search); writers call
    /// [`Kb::save_index`].
    pub fn save_rebuilt_indexes(&mut self) -> Result<()> {
        if self.vectors.rebuilt || self.bm25.rebuilt {
            self.save_index()?;
            self.vectors.rebuilt = false;
            self.bm25.rebuilt = false;
        }
        Ok(())
    }
}
