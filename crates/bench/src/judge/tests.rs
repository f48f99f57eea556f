use super::*;

fn item(id: &str, answer: &str, passage: &str, label: &str, split: &str) -> JudgeItem {
    JudgeItem {
        id: id.into(),
        question: "How long are meet-ups?".into(),
        answer: answer.into(),
        passages: if passage.is_empty() { vec![] } else { vec![Passage { source: "docs/x.md".into(), text: passage.into() }] },
        refused: None,
        answerable: true,
        label: label.into(),
        split: split.into(),
        corruption: None,
        lang: Some("en".into()),
    }
}

const P: &str = "Meet-ups are 1 week long and happen twice a year. Andrea organises them in Barcelona.";

#[test]
fn heuristics_catch_numbers_names_and_unsupported_text() {
    assert!(heuristics(&item("a", "Meet-ups are 1 week long.", P, "faithful", "dev")).pass);
    assert!(heuristics(&item("a", "They happen twice a year, organised by Andrea.", P, "faithful", "dev")).pass);
    let h = heuristics(&item("b", "Meet-ups are 3 week long.", P, "unfaithful", "dev"));
    assert!(!h.pass && h.numbers_missing == ["3"], "{h:?}");
    let h = heuristics(&item("c", "They happen three times a year.", P, "unfaithful", "dev"));
    assert_eq!(h.numbers_missing, ["three"], "{h:?}");
    let h = heuristics(&item("d", "Meet-ups are organised by Jason in Barcelona.", P, "unfaithful", "dev"));
    assert_eq!(h.names_missing, ["Jason"], "{h:?}");
    let h = heuristics(&item("e", "Employees receive a yearly stipend for fitness classes and books.", P, "unfaithful", "dev"));
    assert!(!h.pass && h.overlap < MIN_OVERLAP, "{h:?}");
    // no passage: an answer without evidence fails, a refusal on an unanswerable question passes
    let h = heuristics(&item("f", "Meet-ups are 1 week long.", "", "unfaithful", "dev"));
    assert_eq!(h.refusal_ok, Some(false));
    let mut r = item("g", "I could not find an answer to this in your documents.", "", "faithful", "dev");
    r.answerable = false;
    assert!(heuristics(&r).pass && r.is_refusal());
    r.answerable = true;
    assert!(!heuristics(&r).pass, "refusing an answerable question is wrong");
}

#[test]
fn kappa_matches_the_textbook_values() {
    // perfect agreement
    assert_eq!(kappa(&[true, false, true, false], &[true, false, true, false]), Some(1.0));
    // chance: the rater says yes to everything
    assert_eq!(kappa(&[true, false, true, false], &[true, true, true, true]), Some(0.0));
    // complete disagreement on a balanced set
    assert_eq!(kappa(&[true, false], &[false, true]), Some(-1.0));
    // Cohen's worked example: 20/5/10/15 of 50 → po 0.7, pe 0.5, kappa 0.4
    let mut g = Vec::new();
    let mut p = Vec::new();
    for (a, b, n) in [(true, true, 20), (true, false, 5), (false, true, 10), (false, false, 15)] {
        for _ in 0..n {
            g.push(a);
            p.push(b);
        }
    }
    assert!((kappa(&g, &p).unwrap() - 0.4).abs() < 1e-12);
    // undefined when both raters use one class only
    assert_eq!(kappa(&[true, true], &[true, true]), None);
    assert_eq!(kappa(&[], &[]), None);
    let c = confusion(&g, &p);
    assert_eq!(c["faithful"]["faithful"], 20);
    assert_eq!(c["faithful"]["unfaithful"], 5);
    assert_eq!(c["unfaithful"]["faithful"], 10);
    assert_eq!(c["unfaithful"]["unfaithful"], 15);
}

/// A grader that answers from a table (the real judge is exercised end to end in the CLI tests).
struct Table(Vec<(&'static str, Result<bool, &'static str>)>);

impl Grader for Table {
    fn id(&self) -> String {
        "table".into()
    }
    fn grade(&mut self, item: &JudgeItem) -> Result<Verdict, String> {
        let (_, r) = self.0.iter().find(|(id, _)| *id == item.id).expect("scripted");
        r.map(|f| Verdict { faithful: f, relevant: true }).map_err(str::to_string)
    }
}

#[test]
fn the_combination_rule_is_chosen_on_dev_and_reported_on_heldout() {
    let items = vec![
        item("d1", "Meet-ups are 1 week long.", P, "faithful", "dev"),
        item("d2", "Meet-ups are 3 week long.", P, "unfaithful", "dev"),
        item("d3", "Meet-ups are not 1 week long.", P, "unfaithful", "dev"),
        item("d4", "They happen twice a year.", P, "faithful", "dev"),
        item("h1", "Meet-ups are 1 week long.", P, "faithful", "heldout"),
        item("h2", "Meet-ups are organised by Jason.", P, "unfaithful", "heldout"),
        item("h3", "Meet-ups are not organised by Andrea.", P, "unfaithful", "heldout"),
        item("h4", "Andrea organises them in Barcelona.", P, "faithful", "heldout"),
    ];
    // the judge catches the negations (which the heuristics miss) and errs once
    let mut g = Table(vec![
        ("d1", Ok(true)),
        ("d2", Ok(true)),
        ("d3", Ok(false)),
        ("d4", Ok(true)),
        ("h1", Ok(true)),
        ("h2", Err("grammar ran out of tokens")),
        ("h3", Ok(false)),
        ("h4", Ok(true)),
    ]);
    let mut seen = 0;
    let r = evaluate(&items, &mut g, None, &mut |_| seen += 1);
    assert_eq!(seen, 8);
    assert_eq!(r.combine, Combine::Both, "vetoes from either side win on dev");
    assert_eq!(r.reported_on, "heldout");
    assert_eq!((r.dev_items, r.heldout_items), (4, 4));
    assert_eq!(r.kappa, Some(1.0));
    assert_eq!(r.dev.combined, Some(1.0));
    assert_eq!(r.heuristics_kappa, Some(0.5), "heuristics miss the held-out negation");
    assert_eq!(r.judge_errors, 1);
    assert_eq!(r.confusion["unfaithful"]["unfaithful"], 2, "an error counts as unfaithful");
    let either = evaluate(&items, &mut g, Some(Combine::Either), &mut |_| {});
    assert_eq!(either.combine, Combine::Either);
    assert!(either.kappa.unwrap() < 1.0);
    let sample = review_sample(&items, &either, 3);
    assert_eq!(sample.len(), 3);
    assert_ne!(sample[0]["combined"], sample[0]["gold_label"], "disagreements first");
    assert!(sample[0]["human_label"].is_null());
    assert!(summary(&r).contains("| heldout | 4 | 1.000 |"), "{}", summary(&r));
}

#[test]
fn labelled_sets_are_checked_line_by_line_and_against_the_docs() {
    assert!(parse_items("").unwrap_err().contains("no items"));
    let bad = r#"{"id":"x","question":"q","answer":"a","label":"maybe"}"#;
    assert!(parse_items(bad).unwrap_err().starts_with("1: label"));
    let bad = r#"{"id":"x","question":"q","answer":"a","label":"faithful","split":"test"}"#;
    assert!(parse_items(bad).unwrap_err().contains("split"));
    assert!(parse_items("{oops").unwrap_err().starts_with("1:"));
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("x.md"), "# Meet-ups\n\nMeet-ups are **1 week** long and happen twice a year.\nAndrea organises them in Barcelona.\n").unwrap();
    let ok = item("a", "x", P, "faithful", "dev");
    assert!(check_passages(&[ok.clone()], d.path()).is_ok());
    let mut other = ok.clone();
    other.passages[0].text = "Meet-ups are 2 weeks long.".into();
    assert!(check_passages(&[other], d.path()).unwrap_err().contains("not in"));
    let mut missing = ok;
    missing.passages[0].source = "docs/nope.md".into();
    assert!(check_passages(&[missing], d.path()).unwrap_err().contains("nope.md"));
}
