//! The knowledge base end to end through the library, on real files (the
//! sample knowledge base and deliberately broken files), with the
//! deterministic hash embedder instead of a model.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use tresor_guard::crypto::WorkspaceKey;
use tresor_kb::store::Filter;
use tresor_kb::{ingest, search, HashEmbedder, IngestOptions, Kb, KbError, Mode, NoProgress, RerankChoice, SearchOptions};

fn sample_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/sample-kb")
}

/// Every test's knowledge bases are encrypted with this fixed workspace key.
fn key() -> WorkspaceKey {
    WorkspaceKey::from_bytes([42; 32])
}

fn emb() -> HashEmbedder {
    HashEmbedder::new(64)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

/// (source relative to root, ord, text) of every chunk: what "the same chunks" means.
fn snapshot(kb: &Kb, root: &Path) -> BTreeSet<(String, usize, String)> {
    let mut out = BTreeSet::new();
    for src in kb.sources().unwrap() {
        let rel = Path::new(&src).strip_prefix(root).unwrap().display().to_string();
        for (i, c) in kb.chunks_of(&src).unwrap().into_iter().enumerate() {
            out.insert((rel.clone(), i, c.text));
        }
    }
    out
}

#[test]
fn sample_kb_ingests_every_format_with_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kb = Kb::open(&tmp.path().join("kb"), &key()).unwrap();
    let rep = ingest(&mut kb, &emb(), &[sample_dir()], &IngestOptions::default(), &NoProgress).unwrap();
    assert!(rep.failed.is_empty(), "{:?}", rep.failed);
    assert_eq!(rep.added, 9, "README.md is excluded by .tresorignore");
    let docs = kb.list().unwrap();
    let formats: BTreeSet<&str> = docs.iter().map(|d| d.format.as_str()).collect();
    assert_eq!(formats, ["csv", "docx", "html", "markdown", "pdf"].into_iter().collect());
    assert!(docs.iter().all(|d| !d.source.ends_with("README.md")));
    let by = |suffix: &str| docs.iter().find(|d| d.source.ends_with(suffix)).unwrap().clone();
    assert_eq!(by("onboarding-checklist.docx").title, "Onboarding Checklist");
    assert_eq!(by("it-sicherheitsrichtlinie.html").title, "IT-Sicherheitsrichtlinie");
    assert_eq!(by("reisekosten-richtlinie.pdf").lang, "de");
    assert_eq!(by("travel-and-expenses.md").lang, "en");
    assert_eq!(by("urlaub-und-abwesenheit.md").title, "Mitarbeiterhandbuch: Urlaub und Abwesenheit");
    let pdf = kb.chunks_of(&by("reisekosten-richtlinie.pdf").source).unwrap();
    let pages: BTreeSet<u32> = pdf.iter().filter_map(|c| c.page).collect();
    assert_eq!(pages, [1, 2].into_iter().collect());
    let html = kb.chunks_of(&by("it-sicherheitsrichtlinie.html").source).unwrap();
    assert!(html.iter().all(|c| !c.text.contains("analytics") && !c.text.contains("Impressum")));
    assert!(html.iter().any(|c| c.heading == "Passwörter und Anmeldung"));
    let csv = kb.chunks_of(&by("preisliste.csv").source).unwrap();
    assert!(csv.iter().all(|c| c.text.contains("Preis netto (EUR):")), "rows carry their header");
    // spans point into the file for Markdown
    let md = by("travel-and-expenses.md");
    let file: Vec<char> = std::fs::read_to_string(&md.source).unwrap().chars().collect();
    for c in kb.chunks_of(&md.source).unwrap() {
        let span: String = file[c.start..c.end].iter().collect();
        let first_word = c.text.split_whitespace().next().unwrap();
        assert!(span.contains(first_word), "{span:?} / {first_word}");
    }
    let r = kb.check().unwrap();
    assert!(r.ok, "{:?}", r.problems);
    assert_eq!(r.indexed, r.chunks);
}

#[test]
fn reingest_is_incremental_and_prune_removes_deleted_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("docs");
    copy_dir(&sample_dir(), &root);
    let mut kb = Kb::open(&tmp.path().join("kb"), &key()).unwrap();
    let e = emb();
    let first = ingest(&mut kb, &e, &[root.clone()], &IngestOptions::default(), &NoProgress).unwrap();
    let again = ingest(&mut kb, &e, &[root.clone()], &IngestOptions::default(), &NoProgress).unwrap();
    assert_eq!((again.added, again.updated, again.unchanged, again.chunks), (0, 0, first.added, 0));

    std::fs::write(root.join("handbook/vacation-policy.md"), "# Vacation\n\nNow 32 days of vacation per year.\n").unwrap();
    std::fs::remove_file(root.join("product-faq.md")).unwrap();
    let no_prune = ingest(&mut kb, &e, &[root.clone()], &IngestOptions::default(), &NoProgress).unwrap();
    assert_eq!(no_prune.updated, 1);
    assert!(kb.sources().unwrap().iter().any(|s| s.ends_with("product-faq.md")), "kept without --prune");
    let pruned = ingest(&mut kb, &e, &[root.clone()], &IngestOptions { prune: true, ..Default::default() }, &NoProgress).unwrap();
    assert_eq!(pruned.pruned.len(), 1);
    assert!(pruned.pruned[0].ends_with("product-faq.md"));

    // exactly the chunks of a clean ingest of the same tree
    let mut clean = Kb::open(&tmp.path().join("clean"), &key()).unwrap();
    ingest(&mut clean, &e, &[root.clone()], &IngestOptions::default(), &NoProgress).unwrap();
    assert_eq!(snapshot(&kb, &root), snapshot(&clean, &root));
    assert_eq!(kb.chunk_count().unwrap(), clean.chunk_count().unwrap());
    let r = kb.check().unwrap();
    assert!(r.ok, "{:?}", r.problems);

    // remove by source
    let src = kb.sources().unwrap().into_iter().find(|s| s.ends_with("preisliste.csv")).unwrap();
    assert!(kb.remove_source(&src).unwrap() > 0);
    assert!(matches!(kb.remove_source(&src), Err(KbError::NoSuchSource(_))));
    assert!(kb.check().unwrap().ok);
}

fn zip_with(path: &Path, entries: &[(&str, &[u8])]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        z.start_file(*name, opts).unwrap();
        z.write_all(data).unwrap();
    }
    z.finish().unwrap();
}

#[test]
fn bad_files_are_reported_with_reasons_and_the_rest_ingests() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("docs");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("good.md"), "# Good\n\nThis file is fine and mentions the firewall.\n").unwrap();
    std::fs::write(d.join("empty.txt"), "").unwrap();
    std::fs::write(d.join("latin1.txt"), b"Gr\xfc\xdfe aus M\xfcnchen\n").unwrap();
    std::fs::write(d.join("corrupt.pdf"), b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R\nthis is not a pdf").unwrap();
    std::fs::write(
        d.join("encrypted.pdf"),
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R /Encrypt 2 0 R >>\n%%EOF\n",
    )
    .unwrap();
    let zeros = vec![0u8; 80 << 20];
    zip_with(&d.join("bomb.docx"), &[("word/document.xml", &zeros)]);
    std::fs::write(d.join("notzip.docx"), b"PK not really").unwrap();
    std::fs::write(d.join("broken.json"), b"{\"a\": [1, 2").unwrap();
    std::fs::write(d.join("only-markup.html"), b"<html><body><script>x()</script></body></html>").unwrap();
    let mut kb = Kb::open(&tmp.path().join("kb"), &key()).unwrap();
    let rep = ingest(&mut kb, &emb(), &[d.clone()], &IngestOptions::default(), &NoProgress).unwrap();
    assert_eq!(rep.added, 1, "{rep:?}");
    let reason = |name: &str| {
        rep.failed.iter().find(|f| f.source.ends_with(name)).map(|f| f.reason.clone()).unwrap_or_else(|| panic!("{name} not reported: {rep:?}"))
    };
    assert!(reason("empty.txt").contains("empty"));
    assert!(reason("latin1.txt").contains("UTF-8"));
    assert!(reason("corrupt.pdf").contains("PDF"));
    assert!(reason("encrypted.pdf").contains("encrypted"));
    assert!(reason("bomb.docx").contains("zip bomb"));
    assert!(reason("notzip.docx").contains("DOCX"));
    assert!(reason("broken.json").contains("JSON"));
    assert!(reason("only-markup.html").contains("no text"));
    assert_eq!(rep.failed.len(), 8);
    assert_eq!(kb.document_count().unwrap(), 1);
    assert!(kb.check().unwrap().ok);
}

fn sample_kb(tmp: &Path) -> Kb {
    let mut kb = Kb::open(&tmp.join("kb"), &key()).unwrap();
    ingest(&mut kb, &emb(), &[sample_dir()], &IngestOptions::default(), &NoProgress).unwrap();
    kb
}

fn top(kb: &mut Kb, q: &str, mode: Mode, filter: &[&str]) -> Vec<tresor_kb::Hit> {
    let opts = SearchOptions {
        k: 5,
        mode,
        rerank: RerankChoice::Off,
        filter: Filter::parse(&filter.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap(),
        ..Default::default()
    };
    search(kb, q, Some(&emb()), None, &opts).unwrap().hits
}

#[test]
fn german_queries_find_inflected_forms_and_compounds() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kb = sample_kb(tmp.path());
    // "Urlaubsanspruch" (compound, not in that form in the passage body) → the Urlaub passage
    let h = top(&mut kb, "Wie hoch ist mein Urlaubsanspruch?", Mode::Bm25, &[]);
    assert!(h[0].source.ends_with("urlaub-und-abwesenheit.md"), "{:?}", h[0]);
    assert!(h[0].text.contains("30 Arbeitstage"));
    // "Reisekostenabrechnung" finds the PDF's Abrechnung section
    let h = top(&mut kb, "Frist für die Reisekostenabrechnung", Mode::Bm25, &[]);
    assert!(h.iter().take(3).any(|x| x.source.ends_with(".pdf") && x.text.contains("30 Tagen")), "{h:?}");
    // inflection: "Passwort" finds "Passwörter"
    let h = top(&mut kb, "Wie lang muss ein Passwort sein?", Mode::Bm25, &[]);
    assert!(h[0].text.contains("14 Zeichen"), "{:?}", h[0]);
}

#[test]
fn english_queries_each_mode_and_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kb = sample_kb(tmp.path());
    for mode in [Mode::Bm25, Mode::Vector, Mode::Hybrid] {
        let h = top(&mut kb, "hotel limit per night in London", mode, &[]);
        assert_eq!(h.len(), 5, "{mode:?}");
        assert!(h.windows(2).all(|w| w[0].rank + 1 == w[1].rank));
        if mode != Mode::Vector {
            assert!(h[0].text.contains("160 EUR"), "{mode:?}: {:?}", h[0]);
        }
    }
    let h = top(&mut kb, "vacation days", Mode::Hybrid, &["source=*handbook/*"]);
    assert!(!h.is_empty() && h.iter().all(|x| x.source.contains("/handbook/")));
    let h = top(&mut kb, "Urlaub", Mode::Hybrid, &["lang=de"]);
    assert!(!h.is_empty() && h.iter().all(|x| x.lang == "de"));
    let h = top(&mut kb, "Urlaub", Mode::Vector, &["source=*.csv"]);
    assert!(h.iter().all(|x| x.source.ends_with(".csv")));
    assert!(Filter::parse(&["colour=red".to_string()]).is_err());
    // no reranker installed: results still come, and the trace says why they are not reranked
    let res = search(&mut kb, "price of the Business edition", Some(&emb()), None, &SearchOptions::default()).unwrap();
    assert!(!res.trace.reranked);
    assert!(res.trace.rerank_note.as_deref().unwrap().contains("no cross-encoder installed"));
    assert!(res.hits.iter().any(|h| h.source.ends_with("preisliste.csv") && h.text.contains("4.900")));
}

#[test]
fn a_different_embedder_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kb = sample_kb(tmp.path());
    let err = ingest(&mut kb, &HashEmbedder::new(32), &[sample_dir()], &IngestOptions::default(), &NoProgress).unwrap_err();
    assert!(matches!(err, KbError::EmbedderMismatch { .. }), "{err}");
    let err = search(&mut kb, "x", Some(&HashEmbedder::new(32)), None, &SearchOptions::default()).unwrap_err();
    assert!(matches!(err, KbError::EmbedderMismatch { .. }));
}

#[test]
fn vector_index_is_rebuilt_or_replayed_after_loss_or_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("kb");
    let n = {
        let kb = sample_kb(tmp.path());
        kb.chunk_count().unwrap()
    };
    let files = || -> Vec<PathBuf> {
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "usearch")).collect()
    };
    assert_eq!(files().len(), 1);
    // corrupt vector file → rebuilt from the embeddings
    std::fs::write(&files()[0], b"not an index").unwrap();
    let mut kb = Kb::open(&dir, &key()).unwrap();
    let r = kb.check().unwrap();
    assert!(r.ok && r.indexed == n, "{r:?}");
    kb.save_index().unwrap();
    drop(kb);
    // missing vector file → rebuilt
    for f in files() {
        std::fs::remove_file(f).unwrap();
    }
    let mut kb = Kb::open(&dir, &key()).unwrap();
    assert!(kb.check().unwrap().ok);
    kb.save_index().unwrap();
    // a document committed to SQLite but never saved to the vector file (a crash
    // between the two) is replayed from the index log on the next open
    let src = tmp.path().join("late.md");
    std::fs::write(&src, "# Late\n\nCommitted but the vector file was never saved.\n").unwrap();
    let e = emb();
    {
        let mut kb = Kb::open(&dir, &key()).unwrap();
        let meta = tresor_kb::store::DocMeta {
            source: src.display().to_string(),
            title: "Late".into(),
            format: "markdown".into(),
            lang: "en".into(),
            sha256: "0".into(),
            size: 1,
            mtime: 0,
        };
        let ch = tresor_kb::chunk::Chunk { ord: 0, text: "Committed but never saved.".into(), heading: String::new(), page: None, start: 0, end: 10, tokens: 5 };
        let v = tresor_kb::TextEmbedder::embed(&e, &["Committed but never saved."]).unwrap().pop().unwrap();
        let mut tx = kb.begin_document(&meta).unwrap();
        tx.add(&[tresor_kb::store::NewChunk { chunk: &ch, lang: tresor_kb::lang::Lang::En, embedding: &v, fts_head: "late".into(), fts_body: "committed never saved".into() }]).unwrap();
        tx.commit("Late", "en").unwrap();
        // dropped without save_index: the process "dies" here
    }
    let mut kb = Kb::open(&dir, &key()).unwrap();
    let r = kb.check().unwrap();
    assert!(r.ok && r.indexed == n + 1, "{r:?}");
    let h = top(&mut kb, "Committed but never saved.", Mode::Vector, &[]);
    assert!(h[0].source.ends_with("late.md"));
}


/// A reranker of the test's own: prefers passages that mention a keyword.
struct KeywordReranker(&'static str);

impl tresor_kb::TextReranker for KeywordReranker {
    fn score(&self, _q: &str, passages: &[&str]) -> tresor_kb::Result<Vec<f32>> {
        Ok(passages.iter().map(|p| if p.contains(self.0) { 10.0 } else { -(p.len() as f32) / 1e4 }).collect())
    }
    fn model_id(&self) -> String {
        "keyword-reranker".into()
    }
}

#[test]
fn reranker_reorders_candidates_and_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kb = sample_kb(tmp.path());
    let rr = KeywordReranker("Sonderurlaub");
    let opts = SearchOptions { k: 3, ..Default::default() };
    let res = search(&mut kb, "Urlaub", Some(&emb()), Some(&rr), &opts).unwrap();
    assert!(res.trace.reranked);
    assert_eq!(res.trace.reranker.as_deref(), Some("keyword-reranker"));
    assert!(res.hits[0].text.contains("Sonderurlaub"), "{:?}", res.hits[0]);
    assert_eq!(res.hits[0].rerank_score, Some(10.0));
    let off = SearchOptions { k: 3, rerank: RerankChoice::Off, ..Default::default() };
    let res = search(&mut kb, "Urlaub", Some(&emb()), Some(&rr), &off).unwrap();
    assert!(!res.trace.reranked && res.hits.iter().all(|h| h.rerank_score.is_none()));
}

#[test]
fn near_duplicates_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("docs");
    std::fs::create_dir_all(&d).unwrap();
    let text = "# Policy\n\nBackups run every night at two and are kept for thirty days.\n";
    std::fs::write(d.join("a.md"), text).unwrap();
    std::fs::write(d.join("copy-of-a.md"), text).unwrap();
    std::fs::write(d.join("b.md"), "# Other\n\nBackups of laptops are the user's job.\n").unwrap();
    let mut kb = Kb::open(&tmp.path().join("kb"), &key()).unwrap();
    ingest(&mut kb, &emb(), &[d], &IngestOptions::default(), &NoProgress).unwrap();
    let res = search(&mut kb, "how long are backups kept", Some(&emb()), None, &SearchOptions::default()).unwrap();
    assert_eq!(res.trace.duplicates_removed, 1);
    assert_eq!(res.hits.iter().filter(|h| h.text.contains("thirty days")).count(), 1);
}

/// An embedder under which every text is the same direction: the extreme
/// of a static (bag-of-tokens) embedder, whose passages of one topic sit at
/// cosines near 1.
struct OneDirection;
impl tresor_kb::TextEmbedder for OneDirection {
    fn embed(&self, texts: &[&str]) -> tresor_kb::Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|_| [1.0f32].into_iter().chain([0.0; 15]).collect()).collect())
    }
    fn dim(&self) -> usize {
        16
    }
    fn count_tokens(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }
    fn max_tokens(&self) -> usize {
        256
    }
    fn model_id(&self) -> String {
        "one-direction".into()
    }
}

/// Close vectors alone do not make a near-duplicate: two different passages
/// stay even at cosine 1, while a copy with one word changed goes.
#[test]
fn near_duplicates_need_shared_text_not_just_close_vectors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("docs");
    std::fs::create_dir_all(&d).unwrap();
    let policy = "Backups run every night at two o'clock and are kept for thirty days on the storage cluster in the basement, \
                  after which they are deleted automatically unless legal has asked for a hold on them.";
    std::fs::write(d.join("a.md"), format!("# Policy\n\n{policy}\n")).unwrap();
    std::fs::write(d.join("a-edited.md"), format!("# Policy\n\n{}\n", policy.replace("basement", "cellar"))).unwrap();
    std::fs::write(d.join("b.md"), "# Laptops\n\nBackups of laptops are the user's own job; use the encrypted drive.\n").unwrap();
    let mut kb = Kb::open(&tmp.path().join("kb"), &key()).unwrap();
    ingest(&mut kb, &OneDirection, &[d], &IngestOptions::default(), &NoProgress).unwrap();
    let res = search(&mut kb, "how long are backups kept", Some(&OneDirection), None, &SearchOptions::default()).unwrap();
    assert_eq!(res.trace.duplicates_removed, 1, "{:?}", res.hits.iter().map(|h| &h.source).collect::<Vec<_>>());
    assert_eq!(res.hits.iter().filter(|h| h.text.contains("thirty days")).count(), 1);
    assert_eq!(res.hits.iter().filter(|h| h.text.contains("laptops")).count(), 1, "a different passage is kept");
}

/// JSON, JSONL and CSV files with non-ASCII text: every record is ingested and
/// searchable, and each chunk's span, read as characters of the file, holds
/// the record's raw text (the metadata contract: character spans).
#[test]
fn json_jsonl_and_csv_records_are_searchable_with_character_spans() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("docs");
    std::fs::create_dir_all(&d).unwrap();
    let jsonl = "{\"frage\": \"Wie groß ist das Büro in München?\", \"antwort\": \"120 m² für 14 Plätze\"}\n{\"frage\": \"Gibt es Parkplätze?\", \"antwort\": \"Ja, drei Stellplätze für E-Autos\"}\n";
    let json = "[{\"produkt\": \"Tresor Büro\", \"preis\": \"1.200 €\"}, {\"produkt\": \"Tresor Großkunde\", \"preis\": \"9.800 €\"}]";
    let csv = "Stadt;Adresse;Telefon\nMünchen;Königsplatz 3;089 123\nKöln;Domstraße 9;0221 456\n";
    std::fs::write(d.join("faq.jsonl"), jsonl).unwrap();
    std::fs::write(d.join("preise.json"), json).unwrap();
    std::fs::write(d.join("standorte.csv"), csv).unwrap();
    let mut kb = Kb::open(&tmp.path().join("kb"), &key()).unwrap();
    let rep = ingest(&mut kb, &emb(), &[d.clone()], &IngestOptions::default(), &NoProgress).unwrap();
    assert!(rep.failed.is_empty() && rep.added == 3, "{rep:?}");
    for (file, content, needle) in [("faq.jsonl", jsonl, "Stellplätze"), ("preise.json", json, "Großkunde"), ("standorte.csv", csv, "Domstraße")] {
        let src = d.join(file).display().to_string();
        let chars: Vec<char> = content.chars().collect();
        let chunks = kb.chunks_of(&src).unwrap();
        assert!(!chunks.is_empty(), "{file}");
        for c in &chunks {
            let span: String = chars[c.start..c.end].iter().collect();
            // every value of the chunk's records appears in its span of the file
            for line in c.text.split(['\n', '|']) {
                let value = line.rsplit(": ").next().unwrap().trim();
                assert!(span.contains(value), "{file}: {value:?} not in {span:?}");
            }
        }
        let h = top(&mut kb, needle, Mode::Bm25, &[]);
        assert!(h[0].source.ends_with(file) && h[0].text.contains(needle), "{file}: {:?}", h[0]);
    }
}

#[test]
fn a_second_ingest_into_the_same_kb_waits_for_the_first_and_both_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("docs");
    copy_dir(&sample_dir(), &root);
    let dir = tmp.path().join("kb");
    let mut kb = Kb::open(&dir, &key()).unwrap();
    ingest(&mut kb, &emb(), &[root.join("handbook")], &IngestOptions::default(), &NoProgress).unwrap();
    // another process in the middle of an ingest holds the knowledge base's ingest lock
    let held = std::fs::OpenOptions::new().write(true).open(dir.join(tresor_kb::ingest::INGEST_LOCK)).unwrap();
    held.lock().unwrap();
    let (d2, r2) = (dir.clone(), root.clone());
    let second = std::thread::spawn(move || {
        let mut kb = Kb::open(&d2, &key()).unwrap();
        ingest(&mut kb, &emb(), &[r2], &IngestOptions::default(), &NoProgress)
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(!second.is_finished(), "the second ingest must wait, not write beside the first");
    drop(held);
    let rep = second.join().unwrap().expect("the second ingest finishes once the first is done");
    assert!(rep.added > 0 && rep.unchanged > 0, "{rep:?}");
    drop(kb);
    let report = Kb::open(&dir, &key()).unwrap().check().unwrap();
    assert!(report.ok, "consistent after both: {report:?}");
}
