//! Gold sets an admin writes from their own documents (`tresor eval goldset
//! add|import|list|candidates`): JSONL in the format the retrieval and
//! answer evals read (shared/eval/rag_goldset_dev's: `id`, `question`,
//! `answer`, `answers`, `answerable`, `answer_spans[{text,start_in_file}]`,
//! `source_file`, `reference_context`, `lang`), so a gold set written here
//! runs in `tresor eval retrieval|answers|suite|judge` as it is.
//!
//! Every item is checked against the documents before it is written: the
//! source file must exist under the docs folder and contain the answer span
//! verbatim (its offset is recorded in code points, like the dev set's).
//! Writes are whole-file and atomic (temp file, rename): a bad item or a
//! killed run loses nothing. Candidates come from the workspace's feedback
//! events: answers rated thumbs-up (or CSAT ≥ 4), with their question and
//! cited sources from the thread store, for the admin to trim to a span and
//! import.
//!
//! Owns: the gold file, its checks and the candidate query. Never: edits an
//! item in place, or adds a candidate to a gold file by itself.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Span {
    pub text: String,
    /// Offset in code points in the source file.
    pub start_in_file: usize,
}

/// One gold item (a line of the gold file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GoldEntry {
    pub id: String,
    pub question: String,
    pub answer: Option<String>,
    #[serde(default)]
    pub answers: Vec<String>,
    pub answerable: bool,
    #[serde(default)]
    pub answer_spans: Vec<Span>,
    /// Relative to the docs folder; None when unanswerable.
    pub source_file: Option<String>,
    /// The paragraph of the source that holds the span (the judge's passage).
    #[serde(default)]
    pub reference_context: Option<String>,
    pub lang: String,
}

/// What an admin gives for one item.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    #[serde(default)]
    pub id: Option<String>,
    pub question: String,
    /// The expected source, relative to the docs folder (or absolute, under it).
    #[serde(default)]
    pub source_file: Option<String>,
    /// The expected answer span: verbatim text of the source.
    #[serde(default, alias = "answer_span")]
    pub answer: Option<String>,
    #[serde(default)]
    pub lang: Option<String>,
    /// Default true; false: the documents do not answer it (a refusal is right).
    #[serde(default)]
    pub answerable: Option<bool>,
}

/// Reads a gold file; a missing file is an empty set, a bad line an error naming FILE:LINE.
pub fn read(path: &Path) -> Result<Vec<GoldEntry>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        out.push(serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?);
    }
    Ok(out)
}

fn norm_q(q: &str) -> String {
    q.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// The source path relative to `docs` (an absolute path must lie under it).
fn relative_source(docs: &Path, source: &str) -> Result<String, String> {
    let p = Path::new(source);
    if p.is_absolute() {
        let docs_abs = docs.canonicalize().map_err(|e| format!("{}: {e}", docs.display()))?;
        let src = p.canonicalize().map_err(|e| format!("source {source}: {e}"))?;
        return src
            .strip_prefix(&docs_abs)
            .map(|r| r.to_string_lossy().into_owned())
            .map_err(|_| format!("source {source} is not under the docs folder {}", docs.display()));
    }
    Ok(source.to_string())
}

/// The paragraph (blank-line separated) of `text` around byte range `a..b`.
fn paragraph(text: &str, a: usize, b: usize) -> String {
    let start = text[..a].rfind("\n\n").map(|i| i + 2).unwrap_or(0);
    let end = text[b..].find("\n\n").map(|i| b + i).unwrap_or(text.len());
    text[start..end].trim().to_string()
}

/// Checks a new item against the documents and the items already there and
/// makes its gold entry.
pub fn make_entry(item: &NewItem, docs: &Path, existing: &[GoldEntry]) -> Result<GoldEntry, String> {
    let q = item.question.trim();
    if q.is_empty() {
        return Err("the question is empty".into());
    }
    if let Some(e) = existing.iter().find(|e| norm_q(&e.question) == norm_q(q)) {
        return Err(format!("the question is already in the gold set as {}", e.id));
    }
    let id = match &item.id {
        Some(id) if existing.iter().any(|e| &e.id == id) => return Err(format!("id {id} is already taken")),
        Some(id) => id.clone(),
        None => {
            let n = existing.len() + 1;
            (n..).map(|k| format!("gold-{k:03}")).find(|c| !existing.iter().any(|e| &e.id == c)).unwrap_or_default()
        }
    };
    let lang = match &item.lang {
        Some(l) => tresor_text::Lang::parse(l).ok_or_else(|| format!("language `{l}`: expected de or en"))?,
        None => tresor_text::language(q),
    }
    .as_str()
    .to_string();
    let answerable = item.answerable.unwrap_or(true);
    if !answerable {
        if item.answer.is_some() || item.source_file.is_some() {
            return Err("an unanswerable item has no source and no answer".into());
        }
        return Ok(GoldEntry { id, question: q.into(), answer: None, answers: vec![], answerable, answer_spans: vec![], source_file: None, reference_context: None, lang });
    }
    let source = item.source_file.as_deref().ok_or("an answerable item needs its expected source file")?;
    let answer = item.answer.as_deref().map(str::trim).filter(|a| !a.is_empty()).ok_or("an answerable item needs its expected answer span")?;
    let rel = relative_source(docs, source)?;
    let file = docs.join(&rel);
    let text = std::fs::read_to_string(&file).map_err(|e| format!("source {}: {e}", file.display()))?;
    let Some(at) = text.find(answer) else {
        return Err(format!("the answer span is not in {} verbatim (copy it from the file, same spaces and punctuation)", file.display()));
    };
    let start_in_file = text[..at].chars().count();
    Ok(GoldEntry {
        id,
        question: q.into(),
        answer: Some(answer.into()),
        answers: vec![answer.into()],
        answerable,
        answer_spans: vec![Span { text: answer.into(), start_in_file }],
        source_file: Some(rel),
        reference_context: Some(paragraph(&text, at, at + answer.len())),
        lang,
    })
}

/// Writes the whole gold file atomically.
pub fn write(path: &Path, entries: &[GoldEntry]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| err(&e))?;
    }
    let mut text = String::new();
    for e in entries {
        text.push_str(&serde_json::to_string(e).map_err(|e| err(&e))?);
        text.push('\n');
    }
    let tmp: PathBuf = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, text).map_err(|e| err(&e))?;
    std::fs::rename(&tmp, path).map_err(|e| err(&e))
}

/// Adds one item to the gold file.
pub fn add(path: &Path, docs: &Path, item: &NewItem) -> Result<GoldEntry, String> {
    let mut all = read(path)?;
    let e = make_entry(item, docs, &all)?;
    all.push(e.clone());
    write(path, &all)?;
    Ok(e)
}

/// Imports every item of `from` (JSONL of [`NewItem`]; gold entries of
/// another file work too: their first answer is the span). All or nothing:
/// one bad line and the gold file is left as it was.
pub fn import(path: &Path, docs: &Path, from: &Path) -> Result<Vec<GoldEntry>, String> {
    let text = std::fs::read_to_string(from).map_err(|e| format!("{}: {e}", from.display()))?;
    let mut all = read(path)?;
    let mut added = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = |e: String| format!("{}:{}: {e}", from.display(), i + 1);
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
        let item: NewItem = if v.get("answer_spans").is_some() {
            let g: GoldEntry = serde_json::from_value(v).map_err(|e| at(e.to_string()))?;
            NewItem { id: None, question: g.question, source_file: g.source_file, answer: g.answers.first().cloned().or(g.answer), lang: Some(g.lang), answerable: Some(g.answerable) }
        } else {
            serde_json::from_value(v).map_err(|e| at(e.to_string()))?
        };
        let e = make_entry(&item, docs, &all).map_err(at)?;
        all.push(e.clone());
        added.push(e);
    }
    if added.is_empty() {
        return Err(format!("{}: no items", from.display()));
    }
    write(path, &all)?;
    Ok(added)
}

/// A positively rated answer proposed as a gold item.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub message_id: i64,
    pub conversation_id: i64,
    pub kb: Option<String>,
    pub question: String,
    /// The rated answer (generated text: trim it to a verbatim span of the source before importing).
    pub answer: String,
    /// The first cited source (`source_file` for the import).
    pub source_file: Option<String>,
    pub sources: Vec<String>,
    /// The cited passage's snippet, to copy the span from.
    pub snippet: Option<String>,
    pub thumbs: Option<i8>,
    pub csat: Option<u8>,
    pub lang: String,
}

/// Answers with positive feedback (thumbs up, or CSAT ≥ `min_csat`) from
/// the workspace's feedback events, with their question and sources from
/// the thread store. Negative feedback on the same answer removes it;
/// answers that were refusals, or whose thread is gone, are left out.
pub fn candidates(data_dir: &Path, key: &tresor_guard::crypto::WorkspaceKey, min_csat: u8) -> Result<Vec<Candidate>, String> {
    use tresor_assistant::tresor_telemetry::{EventKind, Window};
    let store = tresor_assistant::store::ThreadStore::for_data_dir(data_dir, key).map_err(|e| e.to_string())?;
    let events = store.events().ok_or("telemetry is off in this workspace ([telemetry] enabled = false): there are no feedback events")?;
    let mut rated: std::collections::BTreeMap<i64, (i64, Option<i8>, Option<u8>, bool)> = Default::default();
    for e in events.events(&Window::default()).map_err(|e| e.to_string())? {
        let (Some(m), Some(c)) = (e.event.message_id, e.event.conversation_id) else { continue };
        if let EventKind::Feedback(f) = &e.event.kind {
            let r = rated.entry(m).or_insert((c, None, None, false));
            let positive = f.thumbs == Some(1) || f.csat.is_some_and(|s| s >= min_csat);
            let negative = f.thumbs == Some(-1) || f.csat.is_some_and(|s| s < min_csat);
            r.1 = f.thumbs.or(r.1);
            r.2 = f.csat.or(r.2);
            r.3 = (r.3 || positive) && !negative;
        }
    }
    let mut out = Vec::new();
    for (m, (c, thumbs, csat, positive)) in rated {
        if !positive {
            continue;
        }
        let Ok(msgs) = store.messages(c) else { continue };
        let Some(pos) = msgs.iter().position(|x| x.id == m && x.role == "assistant") else { continue };
        let Some(q) = msgs[..pos].iter().rev().find(|x| x.role == "user") else { continue };
        let meta = msgs[pos].meta.clone().unwrap_or_default();
        if meta.get("refused").and_then(|v| v.as_bool()) == Some(true) {
            continue;
        }
        let sources: Vec<String> =
            meta.get("sources").and_then(|s| s.as_array()).map(|a| a.iter().filter_map(|s| s.get("source").and_then(|v| v.as_str()).map(str::to_string)).collect()).unwrap_or_default();
        let snippet = meta.pointer("/sources/0/snippet").and_then(|v| v.as_str()).map(str::to_string);
        out.push(Candidate {
            message_id: m,
            conversation_id: c,
            kb: store.thread(c).ok().and_then(|t| t.kb),
            question: q.content.clone(),
            answer: msgs[pos].content.clone(),
            source_file: sources.first().cloned(),
            sources,
            snippet,
            thumbs,
            csat,
            lang: tresor_text::language(&q.content).as_str().to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("leave.md"), "# Leave\n\nFull-time employees get 28 vacation days per year.\n\nÜbrigens: Urlaub beantragen Sie im Portal.\n").unwrap();
        d
    }

    fn new(q: &str, src: Option<&str>, a: Option<&str>) -> NewItem {
        NewItem { question: q.into(), source_file: src.map(Into::into), answer: a.map(Into::into), ..Default::default() }
    }

    #[test]
    fn add_checks_the_span_against_the_document_and_records_its_offset() {
        let d = docs();
        let gold = d.path().join("gold/set.jsonl");
        let e = add(&gold, d.path(), &new("How many vacation days?", Some("leave.md"), Some("28 vacation days"))).unwrap();
        assert_eq!(e.id, "gold-001");
        assert_eq!(e.lang, "en");
        assert_eq!(e.answer_spans[0].start_in_file, "# Leave\n\nFull-time employees get ".chars().count());
        assert_eq!(e.reference_context.as_deref(), Some("Full-time employees get 28 vacation days per year."));
        // a code-point offset after a non-ASCII character
        let de = add(&gold, d.path(), &new("Wo beantrage ich meinen Urlaub und wer muss ihn genehmigen?", Some("leave.md"), Some("im Portal"))).unwrap();
        let text = std::fs::read_to_string(d.path().join("leave.md")).unwrap();
        let cp: String = text.chars().skip(de.answer_spans[0].start_in_file).take(9).collect();
        assert_eq!(cp, "im Portal");
        assert_eq!(de.lang, "de");
        let un = add(&gold, d.path(), &NewItem { question: "Who is the CEO?".into(), answerable: Some(false), ..Default::default() }).unwrap();
        assert!(!un.answerable && un.source_file.is_none());
        assert_eq!(read(&gold).unwrap().len(), 3);
        // the retrieval eval reads the file as it is
        let items = crate::retrieval_eval::load_goldset(&gold).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].answer_spans[0].text, "28 vacation days");
    }

    #[test]
    fn bad_items_are_refused_and_lose_nothing() {
        let d = docs();
        let gold = d.path().join("g.jsonl");
        add(&gold, d.path(), &new("How many vacation days?", Some("leave.md"), Some("28 vacation days"))).unwrap();
        let before = std::fs::read(&gold).unwrap();
        let cases = [
            (new("how many  VACATION days?", Some("leave.md"), Some("28")), "already in the gold set as gold-001"),
            (new("Q2", Some("leave.md"), Some("30 vacation days")), "not in"),
            (new("Q3", Some("missing.md"), Some("x")), "missing.md"),
            (new("Q4", None, Some("x")), "source file"),
            (new("Q5", Some("leave.md"), None), "answer span"),
            (new("  ", Some("leave.md"), Some("28")), "empty"),
            (NewItem { lang: Some("fr".into()), ..new("Q6", Some("leave.md"), Some("28")) }, "language"),
            (NewItem { answerable: Some(false), ..new("Q7", Some("leave.md"), None) }, "unanswerable"),
            (NewItem { id: Some("gold-001".into()), ..new("Q8", Some("leave.md"), Some("28")) }, "taken"),
        ];
        for (item, want) in cases {
            let e = add(&gold, d.path(), &item).unwrap_err();
            assert!(e.contains(want), "{e} should say {want}");
        }
        assert_eq!(std::fs::read(&gold).unwrap(), before);
        // import is all or nothing, and names the bad line
        let from = d.path().join("in.jsonl");
        std::fs::write(&from, "{\"question\": \"Where to apply?\", \"source_file\": \"leave.md\", \"answer\": \"im Portal\"}\n{\"question\": \"Bad\", \"source_file\": \"leave.md\", \"answer\": \"nope\"}\n").unwrap();
        let e = import(&gold, d.path(), &from).unwrap_err();
        assert!(e.contains("in.jsonl:2:"), "{e}");
        assert_eq!(std::fs::read(&gold).unwrap(), before);
        std::fs::write(&from, "{\"question\": \"Where to apply?\", \"source_file\": \"leave.md\", \"answer_span\": \"im Portal\", \"lang\": \"de\"}\n").unwrap();
        assert_eq!(import(&gold, d.path(), &from).unwrap().len(), 1);
        assert_eq!(read(&gold).unwrap().len(), 2);
        std::fs::write(&gold, "{broken\n").unwrap();
        assert!(read(&gold).unwrap_err().contains("g.jsonl:1:"));
    }
}
