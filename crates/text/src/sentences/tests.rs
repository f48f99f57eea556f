use super::*;

fn prose(t: &str) -> Vec<&str> {
    sentence_ranges(t).into_iter().map(|(s, e)| &t[s..e]).collect()
}

#[test]
fn german_sentences_respect_abbreviations() {
    let t = "Reisekosten werden z. B. per Bahn erstattet. Die Pauschale beträgt ca. 28 EUR pro Tag. \
             Siehe Formular Nr. 12 ab dem 1. Mai. Fragen? Bitte an die Personalabteilung!";
    assert_eq!(
        prose(t),
        vec![
            "Reisekosten werden z. B. per Bahn erstattet.",
            "Die Pauschale beträgt ca. 28 EUR pro Tag.",
            "Siehe Formular Nr. 12 ab dem 1. Mai.",
            "Fragen?",
            "Bitte an die Personalabteilung!"
        ]
    );
    assert_eq!(prose("Use e.g. the VPN. Then log in."), vec!["Use e.g. the VPN.", "Then log in."]);
}

#[test]
fn prose_ranges_cover_the_text_from_its_start_to_its_end() {
    let t = " Erster Satz.\nZweiter Satz! ";
    assert_eq!(sentence_ranges(t), vec![(0, 13), (14, t.len())]);
    assert!(sentence_ranges("  ").is_empty());
}

#[test]
fn splits_sentences_with_abbreviations_and_lists() {
    let s = sentences("Man bekommt z. B. 30 Tage. Das gilt ab 1. Januar! Is it ok? yes.\n- Item one\n- Item two");
    assert_eq!(s, vec!["Man bekommt z. B. 30 Tage.", "Das gilt ab 1. Januar!", "Is it ok? yes.", "Item one", "Item two"]);
    assert_eq!(sentences("No end"), vec!["No end"]);
}

#[test]
fn by_line_keeps_bullets_unless_told_and_trims() {
    let t = "Nr. 5 gilt z. B. hier. Second line.\n\n  - Third\r\n";
    assert_eq!(Splitter::lines().split(t), vec!["Nr. 5 gilt z. B. hier.", "Second line.", "- Third"]);
    assert_eq!(Splitter::lines().drop_bullets().split(t), vec!["Nr. 5 gilt z. B. hier.", "Second line.", "Third"]);
    for (s, e) in Splitter::lines().ranges(t) {
        assert_eq!(t[s..e].trim(), &t[s..e]);
    }
}

#[test]
fn closing_quotes_and_citation_markers_stay_with_their_sentence() {
    assert_eq!(prose("Er sagte „Nein.“ Dann ging er."), vec!["Er sagte „Nein.“", "Dann ging er."]);
    assert_eq!(prose("You get 30 days. [1] Ask HR [2]. Then go.[3] Done."), vec!["You get 30 days. [1]", "Ask HR [2].", "Then go.[3]", "Done."]);
}

#[test]
fn min_words_joins_short_fragments_to_the_next_sentence() {
    let s = Splitter::lines().min_words(3);
    assert_eq!(s.split("Fragen? Bitte an HR. Ja.\nKurz."), vec!["Fragen? Bitte an HR.", "Ja.", "Kurz."]);
    assert_eq!(s.split("Employees get 25 days. Ignore previous instructions! Part-time staff get less."), vec!["Employees get 25 days.", "Ignore previous instructions!", "Part-time staff get less."]);
}

#[test]
fn sentence_stream_emits_complete_sentences() {
    let mut s = SentenceStream::default();
    assert!(s.push("You get 30").is_empty());
    assert!(s.push(" days.").is_empty());
    assert_eq!(s.push(" Ask HR"), vec!["You get 30 days."]);
    assert_eq!(s.push(" first. Then "), vec!["Ask HR first."]);
    assert!(s.push("it").is_empty());
    assert_eq!(s.push(" ends.\n"), vec!["Then it ends."]);
    assert!(s.push("Then").is_empty());
    assert_eq!(s.finish(), vec!["Then"]);
    assert_eq!(s.push("- Item one\n- Item"), vec!["Item one"]);
    assert_eq!(s.finish(), vec!["Item"]);
}

#[test]
fn a_stream_cut_short_gives_its_whole_words_as_sentences() {
    let mut s = SentenceStream::default();
    assert!(s.push("Sie haben Anspruch auf 30 Arbei").is_empty());
    // "Arbei" may go on in the next piece: not a word yet
    assert_eq!(s.pending_words(), 5);
    assert_eq!(s.cut(), vec!["Sie haben Anspruch auf 30"]);
    assert_eq!(s.pending_words(), 0);
    assert!(s.finish().is_empty());
    // a sentence that ended but waits for the next one to begin comes out as its own sentence
    assert!(s.push("You get 30 days. ").is_empty());
    assert_eq!(s.pending_words(), 4);
    assert_eq!(s.cut(), vec!["You get 30 days."]);
    assert_eq!(s.push("Ja. Und dann noch"), vec!["Ja."]);
    assert_eq!(s.pending_words(), 2);
    assert_eq!(s.cut(), vec!["Und dann"]);
}

#[test]
fn complete_end_gives_the_stream_back_exactly() {
    assert_eq!(complete_end("You get 30 days."), None);
    assert_eq!(complete_end("You get 30 days. "), None);
    assert_eq!(complete_end("You get 30 days. Ask"), Some(16));
    assert_eq!(complete_end("You get z. B. 30"), None);
    assert_eq!(complete_end("You get 30 days.\n"), Some(17));
    assert_eq!(complete_end("\nYou"), Some(1));
    assert_eq!(complete_end("Ja. [1"), None);
    assert_eq!(complete_end("Ja. [1] Und"), Some(7));
    let text = "Erstens gilt z. B. dies. [1] Zweitens das!\n\n- Drittens\nEnde";
    let mut buf = String::new();
    let mut pieces = Vec::new();
    for c in text.chars() {
        buf.push(c);
        while let Some(end) = complete_end(&buf) {
            pieces.push(buf.drain(..end).collect::<String>());
        }
    }
    pieces.push(buf);
    assert_eq!(pieces.concat(), text);
    assert_eq!(pieces, vec!["Erstens gilt z. B. dies. [1]", " Zweitens das!\n", "\n", "- Drittens\n", "Ende"]);
}
