//! A workspace's knowledge bases as a library: list, default, create,
//! remove, ingest (with progress), re-index, remove one source, rebuild the
//! derived indexes. Every door (CLI, HTTP server, desktop app) changes a
//! knowledge base through here, so every change writes its audit entry
//! whichever door asked, and every ingestion screens chunks with the
//! injection action the admin policy names.
//!
//! Owns: the knowledge-base name rule and folder (`<data_dir>/kb/<name>`),
//! which knowledge base is the default, the audit entries `kb.create` (an
//! explicit create; an ingestion into a new one says `counts.created`),
//! `kb.ingest`, `kb.reindex`, `kb.remove`, `kb.delete`, `kb.rebuild_index`.
//! Never: loads a model (callers pass the embedder: [`crate::open`] picks
//! it), or keeps a knowledge base open between calls (the engine's cache of
//! open stores is the [`crate::Assistant`]'s).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;
use tresor_guard::crypto::WorkspaceKey;
use tresor_guard::policy::PolicyPaths;
use tresor_kb::store::pg::DroppedStore;
use tresor_kb::{DocInfo, IngestOptions, IngestProgress, IngestReport, Kb, StoreKind, TextEmbedder};

use crate::error::{AssistantError, Result};
use crate::policy::audit_kb_change;

/// The knowledge base questions go to when none is named (when it exists).
pub const DEFAULT_KB: &str = "default";

/// Where a data dir keeps knowledge base `name` (the name rule lives here).
pub fn kb_dir(data_dir: &Path, name: &str) -> Result<PathBuf> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(AssistantError::BadKbName(name.to_string()));
    }
    Ok(data_dir.join("kb").join(name))
}

/// Names of the knowledge bases in a data dir, sorted.
pub fn kb_names(data_dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(data_dir.join("kb"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| Kb::exists(&e.path()))
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `default` when it exists in `data_dir`.
pub fn default_kb(data_dir: &Path) -> Option<String> {
    Kb::exists(&data_dir.join("kb").join(DEFAULT_KB)).then(|| DEFAULT_KB.to_string())
}

/// A named knowledge base must exist; none named: the default one when it
/// exists, else none (the model answers alone).
pub fn pick_kb(data_dir: &Path, name: Option<&str>) -> Result<Option<String>> {
    match name {
        Some(n) if Kb::exists(&kb_dir(data_dir, n)?) => Ok(Some(n.to_string())),
        Some(n) => Err(AssistantError::NoSuchKb(n.to_string())),
        None => Ok(default_kb(data_dir)),
    }
}

/// What [`Library::delete`] did.
#[derive(Debug, Clone, Default)]
pub struct Deleted {
    /// Documents the knowledge base held, when they could be counted.
    pub documents: Option<usize>,
    /// PostgreSQL: what was dropped on the server.
    pub dropped: Option<DroppedStore>,
    /// PostgreSQL, forced: why the server's data was left there.
    pub left_on_server: Option<String>,
}

/// One knowledge base as a list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct KbSummary {
    pub name: String,
    /// `embedded` or `postgres`.
    pub store: String,
    pub documents: usize,
    pub chunks: usize,
    pub files: Vec<DocInfo>,
}

/// The knowledge bases of one workspace, opened with its key; `actor` is who
/// the audit log names (an API token id; None: the OS user).
pub struct Library<'a> {
    data_dir: &'a Path,
    workspace: &'a str,
    key: &'a WorkspaceKey,
    actor: Option<&'a str>,
}

impl<'a> Library<'a> {
    pub fn new(data_dir: &'a Path, workspace: &'a str, key: &'a WorkspaceKey) -> Library<'a> {
        Library { data_dir, workspace, key, actor: None }
    }

    /// The same library, with changes audited as `actor`'s.
    pub fn as_actor(mut self, actor: Option<&'a str>) -> Library<'a> {
        self.actor = actor;
        self
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir
    }

    /// The folder of knowledge base `name` (validated).
    pub fn dir(&self, name: &str) -> Result<PathBuf> {
        kb_dir(self.data_dir, name)
    }

    pub fn names(&self) -> Vec<String> {
        kb_names(self.data_dir)
    }

    pub fn exists(&self, name: &str) -> Result<bool> {
        Ok(Kb::exists(&self.dir(name)?))
    }

    /// See [`pick_kb`].
    pub fn pick(&self, name: Option<&str>) -> Result<Option<String>> {
        pick_kb(self.data_dir, name)
    }

    /// Opens an existing knowledge base.
    pub fn open(&self, name: &str) -> Result<Kb> {
        Ok(Kb::open_existing(&self.dir(name)?, self.key)?)
    }

    /// Creates an empty knowledge base (audited `kb.create`); an existing one is an error.
    pub fn create(&self, name: &str) -> Result<()> {
        let dir = self.dir(name)?;
        if Kb::exists(&dir) {
            return Err(AssistantError::Invalid(format!("knowledge base `{name}` already exists")));
        }
        Kb::open(&dir, self.key)?;
        self.audit("kb.create", name, &[], json!({}))
    }

    /// Creates knowledge base `name` in a PostgreSQL database (a team
    /// knowledge base, audited `kb.create` with `store: postgres`): `url` is
    /// `postgres://USER@HOST:PORT/DB` without a password (one inside is
    /// refused); `password` comes from a file or the keyring at the door and
    /// is kept sealed with the workspace key in the kb folder.
    pub fn create_postgres(&self, name: &str, url: &str, password: Option<&str>) -> Result<()> {
        let dir = self.dir(name)?;
        if Kb::exists(&dir) {
            return Err(AssistantError::Invalid(format!("knowledge base `{name}` already exists")));
        }
        Kb::create_postgres(&dir, self.key, url, password)?;
        self.audit("kb.create", name, &[], json!({ "store": "postgres", "url": url }))
    }

    /// Opens knowledge base `name`, creating it when new, and says whether it
    /// did (the ingestion that follows records it: `kb.ingest` with `counts.created`).
    pub fn open_or_create(&self, name: &str) -> Result<(Kb, bool)> {
        let dir = self.dir(name)?;
        let created = !Kb::exists(&dir);
        Ok((Kb::open(&dir, self.key)?, created))
    }

    /// Every knowledge base with its documents.
    pub fn summaries(&self) -> Result<Vec<KbSummary>> {
        let mut out = Vec::new();
        for name in self.names() {
            let kb = self.open(&name)?;
            let files = kb.list()?;
            out.push(KbSummary { documents: files.len(), chunks: kb.chunk_count()?, store: kb.store_kind().as_str().into(), files, name });
        }
        Ok(out)
    }

    /// Ingests files or folders into knowledge base `name` (created when
    /// new). Chunks are screened with the policy's injection action unless
    /// `opts.injection` is None (screening off).
    pub fn ingest(
        &self,
        name: &str,
        embedder: &dyn TextEmbedder,
        paths: &[PathBuf],
        opts: &IngestOptions,
        progress: &dyn IngestProgress,
    ) -> Result<IngestReport> {
        let (mut kb, created) = self.open_or_create(name)?;
        self.ingest_into(&mut kb, name, created, embedder, paths, opts, progress)
    }

    /// [`Library::ingest`] into a knowledge base the caller already opened
    /// with [`Library::open_or_create`] (to set its quantization first, or to
    /// pick the embedder that built it); `created` is what that returned.
    #[allow(clippy::too_many_arguments)]
    pub fn ingest_into(
        &self,
        kb: &mut Kb,
        name: &str,
        created: bool,
        embedder: &dyn TextEmbedder,
        paths: &[PathBuf],
        opts: &IngestOptions,
        progress: &dyn IngestProgress,
    ) -> Result<IngestReport> {
        let opts = self.screened(opts)?;
        let report = tresor_kb::ingest(kb, embedder, paths, &opts, progress)?;
        let roots: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        let mut c = counts(&report);
        c["created"] = json!(created);
        self.audit("kb.ingest", name, &roots, c)?;
        Ok(report)
    }

    /// Re-reads the folders knowledge base `name`'s documents came from
    /// (changed, new and vanished files), then rebuilds its full-text and
    /// vector indexes.
    pub fn reindex(&self, name: &str, embedder: &dyn TextEmbedder, progress: &dyn IngestProgress) -> Result<IngestReport> {
        let mut kb = self.open(name)?;
        let roots = source_roots(&kb.sources()?);
        let opts = self.screened(&IngestOptions { prune: true, ..IngestOptions::default() })?;
        let report = tresor_kb::ingest(&mut kb, embedder, &roots, &opts, progress)?;
        kb.rebuild_fts()?;
        if kb.info()?.dim.is_some() {
            kb.rebuild_vectors()?;
            kb.save_index()?;
        }
        let roots: Vec<String> = roots.iter().map(|p| p.display().to_string()).collect();
        self.audit("kb.reindex", name, &roots, counts(&report))?;
        Ok(report)
    }

    /// Removes one document (by its source path) from knowledge base `name`.
    pub fn remove_source(&self, name: &str, source: &str) -> Result<usize> {
        let mut kb = self.open(name)?;
        kb.ensure_index().ok();
        let n = kb.remove_source(source)?;
        kb.save_index()?;
        self.audit("kb.remove", name, &[source.to_string()], json!({ "chunks": n }))?;
        Ok(n)
    }

    /// Rebuilds knowledge base `name`'s full-text terms and (when it has
    /// vectors) its vector index from the database. Returns the chunks
    /// re-indexed and whether it has vectors.
    pub fn rebuild_index(&self, name: &str) -> Result<(usize, bool)> {
        let mut kb = self.open(name)?;
        let n = kb.rebuild_fts()?;
        let vectors = kb.info()?.dim.is_some();
        if vectors {
            kb.rebuild_vectors()?;
            kb.save_index()?;
        }
        self.audit("kb.rebuild_index", name, &[], json!({ "chunks": n, "vectors": vectors }))?;
        Ok((n, vectors))
    }

    /// Deletes knowledge base `name`'s store (the original files stay): its folder, and for a
    /// PostgreSQL one first everything it created on the server (one transaction; every client
    /// of that database loses the documents). When the server cannot be reached or refuses,
    /// nothing is deleted unless `force`: then only the folder goes and
    /// [`Deleted::left_on_server`] says why the server's data stayed. Audited `kb.delete`.
    /// The caller must have closed it (the engine: [`crate::Assistant::remove_kb`]).
    pub fn delete(&self, name: &str, force: bool) -> Result<Deleted> {
        let dir = self.dir(name)?;
        if !Kb::exists(&dir) {
            return Err(AssistantError::NoSuchKb(name.to_string()));
        }
        let mut out = Deleted::default();
        if Kb::store_kind_of(&dir) == StoreKind::Postgres {
            match Kb::drop_server_store(&dir, self.key) {
                Ok(d) => {
                    out.documents = d.as_ref().map(|d| d.documents);
                    out.dropped = d;
                }
                Err(e) if force => out.left_on_server = Some(e.to_string()),
                Err(e) => {
                    return Err(AssistantError::Invalid(format!(
                        "knowledge base `{name}`: its data on the server was not dropped ({e}); nothing was deleted. \
                         Retry when the server is reachable, or force it (`tresor kb delete {name} --yes --force`) \
                         to delete only this client's record and leave the data on the server"
                    )))
                }
            }
        } else {
            out.documents = Kb::open_existing(&dir, self.key).and_then(|kb| kb.list()).map(|d| d.len()).ok();
        }
        std::fs::remove_dir_all(&dir).map_err(|source| AssistantError::Io { path: dir.clone(), source })?;
        let server = match (&out.dropped, &out.left_on_server) {
            (Some(_), _) => Some("dropped"),
            (None, Some(_)) => Some("left"),
            (None, None) => None,
        };
        self.audit("kb.delete", name, &[], json!({ "documents": out.documents, "server_data": server }))?;
        Ok(out)
    }

    /// The ingest options with the policy's injection action (screening stays
    /// off when the caller turned it off).
    fn screened(&self, opts: &IngestOptions) -> Result<IngestOptions> {
        let mut opts = opts.clone();
        if opts.injection.is_some() {
            let policy = PolicyPaths::for_data_dir(self.data_dir).load()?;
            opts.injection = Some(crate::firewall::ingest_action(&policy));
        }
        Ok(opts)
    }

    fn audit(&self, event: &str, name: &str, sources: &[String], counts: serde_json::Value) -> Result<()> {
        audit_kb_change(self.data_dir, self.workspace, self.actor, event, name, sources, counts)
    }
}

/// The counts an ingestion's audit entry records.
fn counts(r: &IngestReport) -> serde_json::Value {
    json!({"files": r.files, "added": r.added, "updated": r.updated, "unchanged": r.unchanged,
        "failed": r.failed.len(), "pruned": r.pruned.len(), "chunks": r.chunks, "quarantined": r.quarantined, "dropped": r.dropped})
}

/// The outermost folders holding the sources (a re-index walks each once).
fn source_roots(sources: &[String]) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = sources.iter().filter_map(|s| Path::new(s).parent().map(Path::to_path_buf)).collect();
    roots.sort();
    roots.dedup();
    roots.iter().filter(|r| !roots.iter().any(|o| o != *r && r.starts_with(o))).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_guard::audit::AuditLog;
    use tresor_kb::NoProgress;

    fn key() -> WorkspaceKey {
        WorkspaceKey::from_bytes([3; 32])
    }

    fn events(data: &Path) -> Vec<serde_json::Value> {
        AuditLog::for_data_dir(data).entries(None).unwrap()
    }

    #[test]
    fn names_are_validated_in_one_place() {
        let d = Path::new("/x");
        assert!(kb_dir(d, "handbook").is_ok());
        for bad in ["", "../etc", ".hidden", "a/b", "a\\b"] {
            assert!(matches!(kb_dir(d, bad), Err(AssistantError::BadKbName(_))), "{bad}");
        }
    }

    #[test]
    fn every_change_is_audited_whoever_asks() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let docs = dir.path().join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join("a.md"), "# A\n\nThe cafeteria opens at eight in the morning.\n").unwrap();
        std::fs::write(docs.join("b.md"), "# B\n\nParking permits are issued by the front desk.\n").unwrap();
        let k = key();
        let lib = Library::new(&data, "default", &k).as_actor(Some("token:abc"));
        let emb = tresor_kb::embed::HashEmbedder::new(64);
        assert_eq!(lib.pick(None).unwrap(), None);
        assert!(matches!(lib.pick(Some("handbook")), Err(AssistantError::NoSuchKb(_))));

        let r = lib.ingest("default", &emb, &[docs.clone()], &IngestOptions::default(), &NoProgress).unwrap();
        assert_eq!(r.added, 2);
        assert_eq!(lib.pick(None).unwrap().as_deref(), Some("default"));
        assert_eq!(lib.summaries().unwrap()[0].documents, 2);

        std::fs::remove_file(docs.join("b.md")).unwrap();
        let r = lib.reindex("default", &emb, &NoProgress).unwrap();
        assert_eq!(r.pruned.len(), 1);
        let src = docs.join("a.md").display().to_string();
        assert!(lib.remove_source("default", &src).unwrap() > 0);
        assert_eq!(lib.rebuild_index("default").unwrap().1, true);
        let d = lib.delete("default", false).unwrap();
        assert_eq!((d.documents, d.dropped.is_none(), d.left_on_server.is_none()), (Some(0), true, true));
        assert!(lib.names().is_empty());
        assert!(matches!(lib.delete("default", false), Err(AssistantError::NoSuchKb(_))));

        lib.create("empty").unwrap();
        assert!(matches!(lib.create("empty"), Err(AssistantError::Invalid(_))));
        let ev = events(&data);
        let names: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
        assert_eq!(names, ["kb.ingest", "kb.reindex", "kb.remove", "kb.rebuild_index", "kb.delete", "kb.create"]);
        assert_eq!(ev[0]["data"]["counts"]["created"], true);
        assert!(ev[..5].iter().all(|e| e["data"]["kb"] == "default" && e["actor"] == "token:abc"), "{ev:?}");
        assert_eq!(ev[0]["data"]["counts"]["added"], 2);
    }
}
