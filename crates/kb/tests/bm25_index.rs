//! The BM25 index (`tresor_kb::lexical`) against FTS5's own bm25() on the
//! same knowledge base: the same chunks with the same scores for random
//! queries, through ingest, replacement, removal, compaction, reopening,
//! a damaged index file and `rebuild_fts`.

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tresor_guard::crypto::WorkspaceKey;
use tresor_kb::analyze::{fts_match, query_terms};
use tresor_kb::{ingest, HashEmbedder, IngestOptions, Kb, NoProgress};

const WORDS_EN: &[&str] = &[
    "vacation", "days", "employee", "expenses", "travel", "receipt", "password", "laptop", "security", "policy", "manager",
    "approval", "invoice", "price", "discount", "customer", "support", "ticket", "office", "meeting", "budget", "report",
    "deadline", "training", "contract", "salary", "insurance", "hotel", "flight", "train", "café", "résumé",
];
const WORDS_DE: &[&str] = &[
    "Urlaub", "Urlaubsanspruch", "Mitarbeiter", "Reisekosten", "Abrechnung", "Beleg", "Passwort", "Gerät", "Sicherheit",
    "Richtlinie", "Genehmigung", "Rechnung", "Preisliste", "Kunde", "Vertrag", "Gehalt", "Übernachtung", "Fahrt", "Bahn",
    "Straße", "Größe", "Kalenderjahr", "Homeoffice", "Zugang",
];

fn key() -> WorkspaceKey {
    WorkspaceKey::from_bytes([9; 32])
}

fn text(rng: &mut StdRng, de: bool, n: usize) -> String {
    let words = if de { WORDS_DE } else { WORDS_EN };
    let filler = if de { ["und", "der", "die", "im", "für"] } else { ["and", "the", "of", "in", "for"] };
    let mut out = String::new();
    for i in 0..n {
        // a skewed choice, so some terms are frequent and some rare
        let w = if rng.gen_bool(0.3) { filler[rng.gen_range(0..filler.len())] } else { words[(rng.gen_range(0.0f64..1.0).powi(2) * words.len() as f64) as usize] };
        out.push_str(w);
        out.push(if i % 9 == 8 { '.' } else { ' ' });
        if i % 9 == 8 {
            out.push(' ');
        }
    }
    out
}

fn write_docs(dir: &Path, rng: &mut StdRng, files: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for f in 0..files {
        let de = f % 3 == 0;
        let mut md = format!("# {}\n\n", text(rng, de, 3));
        for s in 0..rng.gen_range(1..5) {
            let len = rng.gen_range(5..120);
            md.push_str(&format!("## {} {s}\n\n{}\n\n", text(rng, de, 2), text(rng, de, len)));
        }
        std::fs::write(dir.join(format!("doc-{f:03}.md")), md).unwrap();
    }
}

/// Random queries compared: the index's top 20 against FTS5's, score by score
/// (order may differ only among equal scores).
/// `files` generated documents in `docs`, ingested into a new knowledge base at `kbdir`.
fn ingested(docs: &Path, kbdir: &Path, rng: &mut StdRng, files: usize) -> Kb {
    write_docs(docs, rng, files);
    let mut kb = Kb::open(kbdir, &key()).unwrap();
    ingest(&mut kb, &HashEmbedder::new(16), &[docs.to_path_buf()], &IngestOptions::default(), &NoProgress).unwrap();
    kb
}

fn assert_same_as_fts5(kb: &mut Kb, rng: &mut StdRng, queries: usize) {
    let mut compared = 0;
    for _ in 0..queries {
        let de = rng.gen_bool(0.5);
        let len = rng.gen_range(1..4);
        let q = text(rng, de, len);
        let terms = query_terms(&q, &|s| kb.term_docs(s) > 0);
        let Some(m) = fts_match(&terms) else { continue };
        let (wh, wb) = if rng.gen_bool(0.5) { (0.5, 1.0) } else { (1.0, 1.0) };
        let reference = kb.bm25_fts(&m, 20, &Default::default(), wh, wb).unwrap();
        let ours = kb.lexical().unwrap().search(&terms, 20, wh, wb, None);
        assert_eq!(ours.len(), reference.len(), "query {q:?}");
        for (a, b) in ours.iter().zip(&reference) {
            assert!((a.1 - b.1).abs() <= 1e-4 * b.1.abs().max(1.0), "query {q:?}: {ours:?} vs {reference:?}");
        }
        // the same chunks wherever the score is not tied with the last one
        let last = reference.last().map(|x| x.1).unwrap_or(0.0);
        let strict = |v: &[(i64, f32)]| {
            let mut ids: Vec<i64> = v.iter().filter(|x| x.1 > last + 1e-4).map(|x| x.0).collect();
            ids.sort();
            ids
        };
        assert_eq!(strict(&ours), strict(&reference), "query {q:?}");
        compared += 1;
    }
    assert!(compared > queries / 2, "only {compared} queries had terms");
}

#[test]
fn bm25_index_scores_like_fts5_through_every_change() {
    let tmp = tempfile::tempdir().unwrap();
    let (docs, kbdir, emb) = (tmp.path().join("docs"), tmp.path().join("kb"), HashEmbedder::new(16));
    let mut rng = StdRng::seed_from_u64(4);
    let mut kb = ingested(&docs, &kbdir, &mut rng, 40);
    assert!(kb.chunk_count().unwrap() > 60);
    assert_same_as_fts5(&mut kb, &mut rng, 60);
    assert!(kb.check().unwrap().ok, "{:?}", kb.check().unwrap().problems);

    // changed and removed files: tombstones, and statistics of live chunks only
    for f in [1, 2, 5] {
        std::fs::write(docs.join(format!("doc-{f:03}.md")), format!("# Neu\n\n{}\n", text(&mut rng, false, 50))).unwrap();
    }
    for f in [7, 8] {
        std::fs::remove_file(docs.join(format!("doc-{f:03}.md"))).unwrap();
    }
    ingest(&mut kb, &emb, &[docs.clone()], &IngestOptions { prune: true, ..Default::default() }, &NoProgress).unwrap();
    assert_same_as_fts5(&mut kb, &mut rng, 60);
    assert_eq!(kb.lexical().unwrap().len(), kb.chunk_count().unwrap());

    // another process's view: loaded from the saved file
    drop(kb);
    let mut kb = Kb::open_existing(&kbdir, &key()).unwrap();
    assert_same_as_fts5(&mut kb, &mut rng, 30);

    // remove most documents: saving compacts the tombstones away
    for s in kb.sources().unwrap().into_iter().skip(10) {
        kb.remove_source(&s).unwrap();
    }
    kb.save_index().unwrap();
    assert_eq!(kb.lexical().unwrap().slots(), kb.chunk_count().unwrap());
    assert_same_as_fts5(&mut kb, &mut rng, 30);
    assert!(kb.check().unwrap().ok, "{:?}", kb.check().unwrap().problems);

    // a damaged index file is rebuilt from FTS5
    drop(kb);
    let file = std::fs::read_dir(&kbdir).unwrap().flatten().find(|e| e.file_name().to_string_lossy().starts_with("bm25-")).unwrap().path();
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, bytes).unwrap();
    let mut kb = Kb::open_existing(&kbdir, &key()).unwrap();
    assert_same_as_fts5(&mut kb, &mut rng, 20);
    assert!(kb.check().unwrap().ok);

    // re-analysed terms (rebuild-index) invalidate the loaded index, here and elsewhere
    let mut other = Kb::open_existing(&kbdir, &key()).unwrap();
    other.lexical().unwrap();
    kb.rebuild_fts().unwrap();
    assert_same_as_fts5(&mut other, &mut rng, 20);
    assert!(other.check().unwrap().ok);
}

#[test]
fn writes_by_another_process_reach_a_loaded_index() {
    let tmp = tempfile::tempdir().unwrap();
    let (docs, kbdir, emb) = (tmp.path().join("docs"), tmp.path().join("kb"), HashEmbedder::new(16));
    let mut rng = StdRng::seed_from_u64(11);
    let mut writer = ingested(&docs, &kbdir, &mut rng, 6);
    let mut reader = Kb::open_existing(&kbdir, &key()).unwrap();
    let before = reader.lexical().unwrap().len();
    std::fs::write(docs.join("late.md"), "# Parkplatz\n\nDer Parkplatz ist hinter dem Gebäude.\n").unwrap();
    ingest(&mut writer, &emb, &[docs], &IngestOptions::default(), &NoProgress).unwrap();
    let lx = reader.lexical().unwrap();
    assert_eq!(lx.len(), before + 1);
    assert_eq!(lx.search(&["parkplatz".into()], 5, 0.5, 1.0, None).len(), 1);
}
