//! The PostgreSQL + pgvector store: a team knowledge base many Tresor
//! clients ingest into and ask at once. Documents, chunks (text after the
//! client's PII redaction, the analysed full-text terms as a `tsvector`, the
//! embedding as a pgvector `vector` with an HNSW index) and the settings live
//! in the schema `tresor_kb` of one database; the kb folder holds only
//! `store.json` (the URL) and `store.key` (the password and the knowledge
//! base's own key, sealed with the workspace key: `local`).
//! Schema, invariants and what the server sees: docs/storage.md.
//!
//! Owns the connection (TLS when the server offers it, rustls with the OS
//! roots), the schema and its settings (`meta`), what the server holds sealed
//! and the form a source path takes on the server ([`PgKb::server_source`]);
//! never the SQL of writes (`write`) or reads and checks (`read`), and never a
//! password on a command line or in a URL.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use postgres::{Client, Config, NoTls};
use sha2::{Digest, Sha256};
use tresor_guard::crypto::WorkspaceKey;
use tresor_guard::redact::Setting;

use crate::error::{KbError, Result};
use crate::index::Quantization;
use crate::store::KbInfo;

pub mod local;
mod read;
mod write;

pub use local::{KEY_FILE, STORE_FILE};
pub use write::PgDocTx;

/// The PostgreSQL schema every table lives in.
const SCHEMA: &str = "tresor_kb";
/// 2: `documents.source_sealed` (the original path of a source the server holds redacted).
pub const PG_SCHEMA_VERSION: i64 = 2;
/// Settings sealed with the knowledge base's key before they reach the server:
/// the pseudonym secret and vault would undo the client's PII redaction.
const SEALED_META: &[&str] = &["pii_pseudonym_secret", "pii_vault"];
/// What a sealed source path is bound to.
const SOURCE_AAD: &[u8] = b"tresor-kb-source";
/// `meta` key recording that the first client created the pgvector extension (so `kb delete` drops it).
const META_EXTENSION: &str = "vector_extension_created";
/// HNSW parameters, the embedded index's (see `crate::index`).
const HNSW_M: usize = 16;
const HNSW_EF_CONSTRUCTION: usize = 128;
const HNSW_EF_SEARCH: usize = 128;
/// Document frequencies are counted up to this many chunks (a term in more
/// gets the idf of this many): bounds the cost of a frequent query term.
pub(crate) const DF_CAP: i64 = 20_000;

/// Parses and vets a store URL: `postgres://USER@HOST:PORT/DB` (or
/// `postgresql://`); a password inside it is refused.
pub fn parse_url(url: &str) -> Result<Config> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(KbError::Invalid("a store URL is postgres://USER@HOST:PORT/DB".into()));
    }
    let cfg = Config::from_str(url).map_err(|e| KbError::Invalid(format!("store URL: {e}")))?;
    if cfg.get_password().is_some() {
        return Err(KbError::Invalid(
            "the store URL holds a password: it would end up in shell history and process lists; \
             remove it from the URL and pass --password-file FILE (Tresor keeps it sealed with the workspace key)"
                .into(),
        ));
    }
    if cfg.get_dbname().is_none() {
        return Err(KbError::Invalid(format!("store `{url}`: name the database (postgres://USER@HOST:PORT/DB)")));
    }
    Ok(cfg)
}

/// A PostgreSQL knowledge base, connected.
pub struct PgKb {
    dir: PathBuf,
    cfg_path: PathBuf,
    url: String,
    key: WorkspaceKey,
    /// The knowledge base's own key (from `store.key`): seals what the server must not read.
    kb_key: WorkspaceKey,
    client: RefCell<Client>,
    /// Document frequencies of query terms (cleared on every write here and after a minute).
    df_cache: RefCell<(Instant, HashMap<String, usize>)>,
    /// The PII redaction setting, as last read (cleared when this client changes it).
    redaction: RefCell<Option<Setting>>,
}

/// What `kb delete` removed from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedStore {
    pub url: String,
    pub documents: usize,
    pub chunks: usize,
    /// The pgvector extension went too (Tresor had created it and nothing else used it).
    pub extension: bool,
}

/// The server form of `source` under redaction `setting` ([`PgKb::server_source`]); None when
/// it is the path itself.
fn server_form(source: &str, setting: Setting, kb_key: &WorkspaceKey) -> Option<String> {
    let setting = match setting {
        Setting::Off => return None,
        Setting::Pseudonym => Setting::Mask,
        s => s,
    };
    let red = tresor_guard::redact::apply(source, setting, None);
    if red == source {
        return None;
    }
    let mut h = Sha256::new();
    h.update(&kb_key.subkey("tresor-kb-source-tag")[..]);
    h.update(source.as_bytes());
    let digest = hex::encode(h.finalize());
    let tag = &digest[..12];
    let name_at = red.rfind('/').map_or(0, |i| i + 1);
    Some(match red[name_at..].rfind('.').filter(|&i| i > 0) {
        Some(dot) => format!("{}~{tag}{}", &red[..name_at + dot], &red[name_at + dot..]),
        None => format!("{red}~{tag}"),
    })
}

fn err(url: &str, what: &str, e: impl std::fmt::Display) -> KbError {
    KbError::Store { store: url.to_string(), reason: format!("{what}: {e}") }
}

/// A postgres error with its server-side detail (the Display of
/// `postgres::Error` is only "db error").
pub(crate) fn pg_reason(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {}", d.code().code(), d.message()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(x) = src {
                s.push_str(&format!(": {x}"));
                src = x.source();
            }
            s
        }
    }
}

fn tls() -> tokio_postgres_rustls::MakeRustlsConnect {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

/// Connects: TLS when the server offers it (`sslmode=prefer`, the default;
/// `?sslmode=require` in the URL insists, `disable` never tries).
fn connect(url: &str, password: Option<&str>) -> Result<Client> {
    let mut cfg = parse_url(url)?;
    if let Some(p) = password {
        cfg.password(p);
    }
    cfg.connect_timeout(Duration::from_secs(10));
    cfg.application_name("tresor");
    let r = match cfg.get_ssl_mode() {
        postgres::config::SslMode::Disable => cfg.connect(NoTls),
        _ => cfg.connect(tls()),
    };
    let mut client = r.map_err(|e| err(url, "cannot connect", pg_reason(&e)))?;
    client
        .batch_execute(&format!("SET search_path = {SCHEMA}, public; SET hnsw.ef_search = {HNSW_EF_SEARCH}"))
        .or_else(|_| client.batch_execute(&format!("SET search_path = {SCHEMA}, public")))
        .map_err(|e| err(url, "session settings", pg_reason(&e)))?;
    // pgvector ≥ 0.8: a filtered kNN keeps scanning until it has enough rows
    let _ = client.batch_execute("SET hnsw.iterative_scan = relaxed_order");
    Ok(client)
}

const DDL: &str = r#"
CREATE TABLE tresor_kb.meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE tresor_kb.documents(
    id          BIGSERIAL PRIMARY KEY,
    source      TEXT NOT NULL UNIQUE,
    source_sealed BYTEA,
    title       TEXT NOT NULL,
    format      TEXT NOT NULL,
    lang        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    mtime       BIGINT NOT NULL,
    chunks      BIGINT NOT NULL,
    ingested_at BIGINT NOT NULL
);
CREATE TABLE tresor_kb.chunks(
    id         BIGSERIAL PRIMARY KEY,
    doc_id     BIGINT NOT NULL REFERENCES tresor_kb.documents(id) ON DELETE CASCADE,
    ord        INTEGER NOT NULL,
    heading    TEXT NOT NULL,
    page       INTEGER,
    char_start BIGINT NOT NULL,
    char_end   BIGINT NOT NULL,
    lang       TEXT NOT NULL,
    tokens     INTEGER NOT NULL,
    text       TEXT NOT NULL,
    embedding  vector NOT NULL,
    fts        tsvector NOT NULL,
    UNIQUE(doc_id, ord)
);
CREATE INDEX chunks_fts ON tresor_kb.chunks USING gin(fts);
CREATE TABLE tresor_kb.quarantine(
    id         BIGSERIAL PRIMARY KEY,
    doc_id     BIGINT NOT NULL REFERENCES tresor_kb.documents(id) ON DELETE CASCADE,
    ord        INTEGER NOT NULL,
    heading    TEXT NOT NULL,
    page       INTEGER,
    text       TEXT NOT NULL,
    score      REAL NOT NULL,
    reasons    TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX quarantine_doc ON tresor_kb.quarantine(doc_id);
"#;

/// Advisory lock ids (one namespace for Tresor's schema changes).
const LOCK_SCHEMA: i64 = 0x7472_6573_6f72_0001;

impl PgKb {
    /// Whether `dir` names a PostgreSQL store.
    pub fn configured(dir: &Path) -> bool {
        local::configured(dir)
    }

    /// Creates the kb folder's `store.json` and `store.key` for `url` after connecting and
    /// creating the schema (so a wrong URL or password leaves nothing behind).
    pub fn create(dir: &Path, key: &WorkspaceKey, url: &str, password: Option<&str>) -> Result<PgKb> {
        if Self::configured(dir) || crate::store::Embedded::exists(dir) {
            return Err(KbError::Invalid(format!("{} already holds a knowledge base", dir.display())));
        }
        parse_url(url)?;
        let client = connect(url, password)?;
        // the key the folder will hold is the one `local::create` derives; connect first, write after
        let mut kb = PgKb::with_client(dir, key, WorkspaceKey::ephemeral(), url, client);
        kb.migrate()?;
        kb.kb_key = local::create(dir, key, url, password)?;
        Ok(kb)
    }

    /// Connects to the store `dir/store.json` names.
    pub fn open(dir: &Path, key: &WorkspaceKey) -> Result<PgKb> {
        let l = local::read(dir, key)?;
        let client = connect(&l.url, l.password.as_deref())?;
        let mut kb = PgKb::with_client(dir, key, l.kb_key, &l.url, client);
        kb.migrate()?;
        Ok(kb)
    }

    fn with_client(dir: &Path, key: &WorkspaceKey, kb_key: WorkspaceKey, url: &str, client: Client) -> PgKb {
        PgKb {
            dir: dir.to_path_buf(),
            cfg_path: dir.join(STORE_FILE),
            url: url.to_string(),
            key: key.clone(),
            kb_key,
            client: RefCell::new(client),
            df_cache: RefCell::new((Instant::now(), HashMap::new())),
            redaction: RefCell::new(None),
        }
    }

    /// Drops everything the knowledge base in `dir` created on its server, in one transaction:
    /// the schema `tresor_kb` (tables, indexes, settings) and the pgvector extension when Tresor
    /// created it and nothing else uses it. The kb folder is left to the caller. Every client
    /// of that database loses the documents (they are one store).
    pub fn drop_store(dir: &Path, key: &WorkspaceKey) -> Result<DroppedStore> {
        let l = local::read(dir, key)?;
        let url = l.url;
        let mut c = connect(&url, l.password.as_deref())?;
        let x = |what: &str| {
            let url = url.clone();
            let what = what.to_string();
            move |e: postgres::Error| err(&url, &what, pg_reason(&e))
        };
        let mut tx = c.transaction().map_err(x("begin"))?;
        // other clients' open transactions hold locks on the tables: wait a while, not forever
        tx.batch_execute("SET LOCAL lock_timeout = '30s'").map_err(x("lock timeout"))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_SCHEMA]).map_err(x("lock"))?;
        let exists: bool = tx.query_one("SELECT to_regclass('tresor_kb.meta') IS NOT NULL", &[]).map_err(x("schema"))?.get(0);
        if !exists {
            tx.commit().map_err(x("commit"))?;
            return Ok(DroppedStore { url, documents: 0, chunks: 0, extension: false });
        }
        let count = |tx: &mut postgres::Transaction<'_>, sql: &str| -> Result<usize> {
            Ok(tx.query_one(sql, &[]).map_err(x("counting"))?.get::<_, i64>(0) as usize)
        };
        let documents = count(&mut tx, "SELECT count(*) FROM tresor_kb.documents")?;
        let chunks = count(&mut tx, "SELECT count(*) FROM tresor_kb.chunks")?;
        let ours = tx
            .query_opt("SELECT value FROM tresor_kb.meta WHERE key = $1", &[&META_EXTENSION])
            .map_err(x("meta"))?
            .is_some();
        tx.batch_execute(&format!("DROP SCHEMA {SCHEMA} CASCADE")).map_err(x("dropping the schema tresor_kb"))?;
        let mut extension = false;
        if ours {
            // RESTRICT: kept when anything else in the database uses it
            let mut sp = tx.transaction().map_err(x("savepoint"))?;
            if sp.batch_execute("DROP EXTENSION IF EXISTS vector RESTRICT").is_ok() {
                sp.commit().map_err(x("savepoint"))?;
                extension = true;
            }
        }
        tx.commit().map_err(x("commit"))?;
        Ok(DroppedStore { url, documents, chunks, extension })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn db_path(&self) -> &Path {
        &self.cfg_path
    }

    pub fn key(&self) -> &WorkspaceKey {
        &self.key
    }

    pub(crate) fn e(&self, what: &str, e: postgres::Error) -> KbError {
        err(&self.url, what, pg_reason(&e))
    }

    /// Creates the extension and schema once (under an advisory lock, so
    /// clients opening a fresh database together do not race).
    fn migrate(&mut self) -> Result<()> {
        let url = self.url.clone();
        let c = self.client.get_mut();
        let mut tx = c.transaction().map_err(|e| err(&url, "begin", pg_reason(&e)))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_SCHEMA]).map_err(|e| err(&url, "lock", pg_reason(&e)))?;
        let exists: bool = tx
            .query_one("SELECT to_regclass('tresor_kb.meta') IS NOT NULL", &[])
            .map_err(|e| err(&url, "schema", pg_reason(&e)))?
            .get(0);
        if exists {
            let v: Option<String> = tx
                .query_opt("SELECT value FROM tresor_kb.meta WHERE key = 'schema_version'", &[])
                .map_err(|e| err(&url, "schema", pg_reason(&e)))?
                .map(|r| r.get(0));
            let v: i64 = v.and_then(|v| v.parse().ok()).unwrap_or(0);
            if v > PG_SCHEMA_VERSION {
                return Err(KbError::SchemaTooNew { path: PathBuf::from(&url), found: v, supported: PG_SCHEMA_VERSION });
            }
            if v < 2 {
                tx.batch_execute(
                    "ALTER TABLE tresor_kb.documents ADD COLUMN IF NOT EXISTS source_sealed BYTEA;
                     UPDATE tresor_kb.meta SET value = '2' WHERE key = 'schema_version'",
                )
                .map_err(|e| err(&url, "schema version 2", pg_reason(&e)))?;
            }
            return tx.commit().map_err(|e| err(&url, "commit", pg_reason(&e)));
        }
        let had_extension: bool = tx
            .query_one("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector')", &[])
            .map_err(|e| err(&url, "schema", pg_reason(&e)))?
            .get(0);
        tx.batch_execute("CREATE EXTENSION IF NOT EXISTS vector").map_err(|e| {
            err(&url, "the pgvector extension is not available (a superuser must run CREATE EXTENSION vector in this database)", pg_reason(&e))
        })?;
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {SCHEMA}; {DDL}")).map_err(|e| err(&url, "creating the schema", pg_reason(&e)))?;
        let now = crate::store::now().to_string();
        let mut settings = vec![("schema_version", PG_SCHEMA_VERSION.to_string()), ("created_at", now), ("quantization", "f32".to_string())];
        if !had_extension {
            settings.push((META_EXTENSION, "true".to_string()));
        }
        for (k, v) in settings {
            tx.execute("INSERT INTO tresor_kb.meta(key, value) VALUES ($1, $2)", &[&k, &v]).map_err(|e| err(&url, "meta", pg_reason(&e)))?;
        }
        tx.commit().map_err(|e| err(&url, "commit", pg_reason(&e)))
    }

    fn meta_raw(&self, key: &str) -> Result<Option<String>> {
        let r = self
            .client
            .borrow_mut()
            .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
            .map_err(|e| self.e("reading settings", e))?;
        Ok(r.map(|r| r.get(0)))
    }

    fn set_meta_raw(&self, key: &str, value: &str) -> Result<()> {
        self.client
            .borrow_mut()
            .execute("INSERT INTO meta(key, value) VALUES ($1, $2) ON CONFLICT(key) DO UPDATE SET value = EXCLUDED.value", &[&key, &value])
            .map_err(|e| self.e("writing settings", e))?;
        Ok(())
    }

    /// A setting; the pseudonym secret and vault are unsealed here (the server holds them
    /// sealed with the knowledge base's key). One sealed with the workspace key itself (before
    /// `store.key`) is unsealed with it and sealed again with the knowledge base's key.
    pub fn meta_value(&self, key: &str) -> Result<Option<String>> {
        let Some(v) = self.meta_raw(key)? else { return Ok(None) };
        if !SEALED_META.contains(&key) {
            return Ok(Some(v));
        }
        let sealed = hex::decode(&v).map_err(|e| KbError::Invalid(format!("setting {key}: {e}")))?;
        let plain = match self.kb_key.unseal(&sealed, key.as_bytes(), &self.cfg_path) {
            Ok(p) => p,
            Err(e) => match self.key.unseal(&sealed, key.as_bytes(), &self.cfg_path) {
                Ok(p) => {
                    self.set_meta_raw(key, &hex::encode(self.kb_key.seal(&p, key.as_bytes())))?;
                    p
                }
                Err(_) => return Err(e.into()),
            },
        };
        Ok(Some(String::from_utf8(plain).map_err(|_| KbError::Invalid(format!("setting {key} is not UTF-8")))?))
    }

    pub fn set_meta_value(&self, key: &str, value: &str) -> Result<()> {
        if key == crate::pii::SETTING_KEY {
            *self.redaction.borrow_mut() = None;
        }
        if SEALED_META.contains(&key) {
            return self.set_meta_raw(key, &hex::encode(self.kb_key.seal(value.as_bytes(), key.as_bytes())));
        }
        self.set_meta_raw(key, value)
    }

    /// The knowledge base's PII redaction setting (read once per handle, `off` when unset).
    fn redaction(&self) -> Result<Setting> {
        if let Some(s) = *self.redaction.borrow() {
            return Ok(s);
        }
        let s = match self.meta_raw(crate::pii::SETTING_KEY)? {
            None => Setting::Off,
            Some(v) => v.parse().map_err(|e: tresor_guard::redact::RedactError| KbError::Invalid(e.to_string()))?,
        };
        *self.redaction.borrow_mut() = Some(s);
        Ok(s)
    }

    /// The form `source` (a path as ingested) takes on the server, and the original sealed with
    /// the knowledge base's key when the two differ. With PII redaction on, the path is redacted
    /// like chunk text (`mask` for `pseudonym` too: the original travels sealed, not in the
    /// vault); when that changes it, a tag keyed by the knowledge base's key goes before the
    /// extension (`[EMAIL]~1f2e3d4c5b6a.md`), so two paths that redact alike stay two documents
    /// and the same path always finds its document again. Unchanged paths stay as they are.
    pub(crate) fn server_source(&self, source: &str) -> Result<(String, Option<Vec<u8>>)> {
        Ok(match server_form(source, self.redaction()?, &self.kb_key) {
            None => (source.to_string(), None),
            Some(form) => (form, Some(self.kb_key.seal(source.as_bytes(), SOURCE_AAD))),
        })
    }

    /// The source to show for a stored one: the original path when this client can unseal it
    /// (it, or a client with the same knowledge base key, ingested it), else the server's form.
    pub(crate) fn shown_source(&self, server: String, sealed: Option<&[u8]>) -> String {
        sealed
            .and_then(|b| self.kb_key.unseal(b, SOURCE_AAD, &self.cfg_path).ok())
            .and_then(|p| String::from_utf8(p).ok())
            .unwrap_or(server)
    }

    pub fn info(&self) -> Result<KbInfo> {
        Ok(KbInfo {
            schema_version: PG_SCHEMA_VERSION,
            embedder: self.meta_raw("embedder")?,
            dim: self.meta_raw("dim")?.and_then(|d| d.parse().ok()),
            quantization: "f32".into(),
        })
    }

    pub fn quantization(&self) -> Result<Quantization> {
        Ok(Quantization::F32)
    }

    /// pgvector's `vector` is f32; other quantizations are refused.
    pub fn set_quantization(&mut self, q: Quantization) -> Result<()> {
        if q == Quantization::F32 {
            return Ok(());
        }
        Err(KbError::Invalid(format!("a PostgreSQL knowledge base stores f32 vectors (pgvector); --quantization {} is for the embedded store", q.as_str())))
    }

    /// Records the embedder on first use (fixing the vector column's
    /// dimensions and building its HNSW index); refuses a different one later.
    pub fn bind_embedder(&mut self, model_id: &str, dim: usize) -> Result<()> {
        let check = |info: KbInfo, dir: &Path| match (&info.embedder, info.dim) {
            (Some(e), Some(d)) if e == model_id && d == dim => Ok(true),
            (Some(e), d) => Err(KbError::EmbedderMismatch {
                path: dir.to_path_buf(),
                built: e.clone(),
                built_dim: d.unwrap_or(0),
                requested: model_id.to_string(),
                requested_dim: dim,
            }),
            (None, _) => Ok(false),
        };
        if check(self.info()?, &self.dir)? {
            return Ok(());
        }
        let url = self.url.clone();
        let c = self.client.get_mut();
        let mut tx = c.transaction().map_err(|e| err(&url, "begin", pg_reason(&e)))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_SCHEMA]).map_err(|e| err(&url, "lock", pg_reason(&e)))?;
        let bound: Option<String> =
            tx.query_opt("SELECT value FROM meta WHERE key = 'embedder'", &[]).map_err(|e| err(&url, "meta", pg_reason(&e)))?.map(|r| r.get(0));
        if bound.is_none() {
            tx.batch_execute(&format!(
                "ALTER TABLE chunks ALTER COLUMN embedding TYPE vector({dim});
                 CREATE INDEX IF NOT EXISTS chunks_hnsw ON chunks USING hnsw (embedding vector_cosine_ops)
                   WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION});"
            ))
            .map_err(|e| err(&url, "creating the vector index", pg_reason(&e)))?;
            let d = dim.to_string();
            for (k, v) in [("embedder", model_id), ("dim", d.as_str())] {
                tx.execute("INSERT INTO meta(key, value) VALUES ($1, $2) ON CONFLICT(key) DO UPDATE SET value = EXCLUDED.value", &[&k, &v])
                    .map_err(|e| err(&url, "meta", pg_reason(&e)))?;
            }
        }
        tx.commit().map_err(|e| err(&url, "commit", pg_reason(&e)))?;
        // another client may have bound a different embedder first
        check(self.info()?, &self.dir).map(|_| ())
    }

    /// Rebuilds the HNSW index in the server (creates it when a bulk load dropped it).
    pub fn rebuild_vectors(&mut self) -> Result<()> {
        if self.info()?.dim.is_none() {
            return Ok(());
        }
        self.client
            .get_mut()
            .batch_execute(&format!(
                "DROP INDEX IF EXISTS chunks_hnsw;
                 CREATE INDEX chunks_hnsw ON chunks USING hnsw (embedding vector_cosine_ops) WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
            ))
            .map_err(|e| err(&self.url, "rebuilding the vector index", pg_reason(&e)))
    }

    pub(crate) fn forget_terms(&self) {
        let mut c = self.df_cache.borrow_mut();
        c.0 = Instant::now();
        c.1.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_pii_get_a_keyed_server_form_and_others_stay() {
        let k = WorkspaceKey::from_bytes([3u8; 32]);
        let a = "/home/u/docs/max.mustermann@example.com/vertrag.md";
        let b = "/home/u/docs/jana.schulz@example.org/vertrag.md";
        let fa = server_form(a, Setting::Mask, &k).unwrap();
        let fb = server_form(b, Setting::Mask, &k).unwrap();
        assert!(fa.starts_with("/home/u/docs/[EMAIL]/vertrag~") && fa.ends_with(".md") && !fa.contains("mustermann"), "{fa}");
        assert_ne!(fa, fb, "two paths that mask alike stay two documents");
        assert_eq!(server_form(a, Setting::Mask, &k), Some(fa.clone()), "the same path finds its document again");
        assert_eq!(server_form(a, Setting::Pseudonym, &k), Some(fa.clone()), "pseudonym masks paths (the original travels sealed)");
        assert_ne!(server_form(a, Setting::Mask, &WorkspaceKey::from_bytes([4u8; 32])), Some(fa), "the tag is keyed");
        assert_eq!(server_form("/srv/kb/max.mustermann@example.com", Setting::Drop, &k).map(|f| f.contains("mustermann")), Some(false));
        assert_eq!(server_form(a, Setting::Off, &k), None);
        assert_eq!(server_form("/home/u/docs/handbook.md", Setting::Mask, &k), None);
    }

    #[test]
    fn urls_with_passwords_are_refused_and_others_parsed() {
        let e = parse_url("postgres://alice:s3cret@db.example:5432/kb").unwrap_err().to_string();
        assert!(e.contains("password") && !e.contains("s3cret"), "{e}");
        assert!(parse_url("postgres://alice@db.example:5432/kb?password=s3cret").is_err());
        assert!(parse_url("mysql://alice@db/kb").is_err());
        assert!(parse_url("postgres://alice@db.example:5432").is_err());
        let c = parse_url("postgres://alice@db.example:5432/kb").unwrap();
        assert_eq!(c.get_user(), Some("alice"));
        assert_eq!(c.get_dbname(), Some("kb"));
    }
}

/// Creates database `name` on the server of `url` (benchmarks: a fresh
/// database per scale); returns its URL. `name` is letters, digits and `_`.
pub fn create_database(url: &str, password: Option<&str>, name: &str) -> Result<String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(KbError::Invalid(format!("database name `{name}`: letters, digits and _ only")));
    }
    let mut c = connect(url, password)?;
    let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"));
    c.batch_execute(&format!("CREATE DATABASE {name}")).map_err(|e| err(url, "create database", pg_reason(&e)))?;
    database_url(url, name)
}

/// `url` (`postgres://USER@HOST:PORT/DB[?…]`) with its database replaced by `name`.
pub fn database_url(url: &str, name: &str) -> Result<String> {
    let base = url.split('?').next().unwrap_or(url);
    let (server, _) = base.rsplit_once('/').ok_or_else(|| KbError::Invalid(format!("store `{url}`: no database")))?;
    Ok(format!("{server}/{name}"))
}

/// Drops database `name` on the server of `url` (the benchmarks' scratch databases).
pub fn drop_database(url: &str, password: Option<&str>, name: &str) -> Result<()> {
    let mut c = connect(url, password)?;
    c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).map_err(|e| err(url, "drop database", pg_reason(&e)))
}

impl PgKb {
    /// Drops the HNSW index before a bulk load ([`PgKb::rebuild_vectors`]
    /// builds it again, much faster than inserting into it row by row).
    pub fn begin_bulk_load(&mut self) -> Result<()> {
        self.client.get_mut().batch_execute("DROP INDEX IF EXISTS chunks_hnsw").map_err(|e| err(&self.url, "drop index", pg_reason(&e)))
    }
}
