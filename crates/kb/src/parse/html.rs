//! HTML via scraper (html5ever): the main text with headings kept;
//! scripts, styles, navigation, asides and footers dropped. When the page
//! marks its main content (`<main>`, `role=main`, a single `<article>`),
//! only that is read.

use scraper::{ElementRef, Html, Node, Selector};

use super::{squash, Block, BlockKind, Event, ParseError, Sink};

const SKIP: &[&str] = &[
    "script", "style", "noscript", "nav", "footer", "aside", "form", "svg", "template", "iframe", "button", "select",
    "head", "menu",
];

pub(crate) fn parse(bytes: &[u8], sink: &mut Sink<'_>) -> Result<(), ParseError> {
    let src = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        // HTML in the wild is often Latin-1; decode that losslessly rather than refuse.
        Err(_) => bytes.iter().map(|&b| b as char).collect(),
    };
    let doc = Html::parse_document(&src);
    let sel = |s: &str| Selector::parse(s).expect("static selector");
    let title = doc
        .select(&sel("title"))
        .next()
        .map(|t| squash(&t.text().collect::<String>()))
        .filter(|t| !t.is_empty())
        .or_else(|| doc.select(&sel("h1")).next().map(|t| squash(&t.text().collect::<String>())));
    if let Some(t) = title.filter(|t| !t.is_empty()) {
        sink(Event::Title(t))?;
    }
    let articles: Vec<ElementRef> = doc.select(&sel("article")).collect();
    let root = doc
        .select(&sel("main, [role=main]"))
        .next()
        .or(if articles.len() == 1 { Some(articles[0]) } else { None })
        .or_else(|| doc.select(&sel("body")).next())
        .unwrap_or_else(|| doc.root_element());
    let mut w = Walker { para: String::new(), pos: 0, sink };
    w.walk(root, true)?;
    w.flush_para()
}

struct Walker<'s, 'a> {
    para: String,
    pos: usize,
    sink: &'s mut Sink<'a>,
}

fn skipped(el: &ElementRef, top: bool) -> bool {
    let v = el.value();
    let name = v.name();
    SKIP.contains(&name)
        || (name == "header" && !top)
        || v.attr("role").is_some_and(|r| r == "navigation" || r == "banner" || r == "contentinfo")
        || v.attr("hidden").is_some()
        || v.attr("aria-hidden") == Some("true")
}

impl Walker<'_, '_> {
    fn emit(&mut self, kind: BlockKind, text: String) -> Result<(), ParseError> {
        if text.trim().is_empty() {
            return Ok(());
        }
        let n = text.chars().count();
        let start = self.pos;
        self.pos += n + 1;
        (self.sink)(Event::Block(Block { kind, text, page: None, start, end: start + n }))
    }

    fn flush_para(&mut self) -> Result<(), ParseError> {
        let t = squash(&std::mem::take(&mut self.para));
        self.emit(BlockKind::Paragraph, t)
    }

    fn walk(&mut self, el: ElementRef, top: bool) -> Result<(), ParseError> {
        for child in el.children() {
            match child.value() {
                Node::Text(t) => self.para.push_str(t),
                Node::Element(_) => {
                    let Some(c) = ElementRef::wrap(child) else { continue };
                    if skipped(&c, false) {
                        continue;
                    }
                    let name = c.value().name().to_string();
                    match name.as_str() {
                        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                            self.flush_para()?;
                            let level = name[1..].parse().unwrap_or(1);
                            self.emit(BlockKind::Heading(level), text_of(c))?;
                        }
                        "p" | "dt" | "dd" | "figcaption" | "caption" => {
                            self.flush_para()?;
                            self.emit(BlockKind::Paragraph, text_of(c))?;
                        }
                        "li" => {
                            self.flush_para()?;
                            self.emit(BlockKind::ListItem, text_of(c))?;
                        }
                        "pre" => {
                            self.flush_para()?;
                            let t: String = c.text().collect();
                            self.emit(BlockKind::Code, t.trim_matches('\n').to_string())?;
                        }
                        "table" => {
                            self.flush_para()?;
                            self.emit(BlockKind::Table, table_text(c))?;
                        }
                        "br" => self.para.push('\n'),
                        "div" | "section" | "article" | "main" | "blockquote" | "ul" | "ol" | "dl" | "header"
                        | "body" | "figure" | "details" | "summary" | "center" => {
                            self.flush_para()?;
                            self.walk(c, top)?;
                            self.flush_para()?;
                        }
                        _ => self.walk(c, top)?,
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn text_of(el: ElementRef) -> String {
    let mut s = String::new();
    collect(el, &mut s);
    squash(&s)
}

fn collect(el: ElementRef, out: &mut String) {
    for child in el.children() {
        match child.value() {
            Node::Text(t) => out.push_str(t),
            Node::Element(_) => {
                if let Some(c) = ElementRef::wrap(child) {
                    if !skipped(&c, false) {
                        let block = matches!(c.value().name(), "p" | "li" | "div" | "br" | "ul" | "ol");
                        if block {
                            out.push(' ');
                        }
                        collect(c, out);
                    }
                }
            }
            _ => {}
        }
    }
}

fn table_text(table: ElementRef) -> String {
    let tr = Selector::parse("tr").expect("static selector");
    let cell = Selector::parse("th, td").expect("static selector");
    let rows: Vec<String> = table
        .select(&tr)
        .map(|r| r.select(&cell).map(text_of).collect::<Vec<_>>().join(" | "))
        .filter(|r| !r.trim().is_empty())
        .collect();
    rows.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_main_text_and_headings_drops_scripts_and_nav() {
        let html = r#"<html><head><title>IT-Sicherheit</title><script>var x = "secret";</script></head>
        <body><nav><a href="/">Home</a> <a href="/x">Menu item</a></nav>
        <main><h1>Passwörter</h1><p>Mindestens <b>12</b> Zeichen.</p><ul><li>Kein Wiederverwenden</li></ul>
        <table><tr><th>A</th><th>B</th></tr><tr><td>1</td><td>2</td></tr></table></main>
        <footer>Impressum</footer></body></html>"#;
        let mut v = Vec::new();
        parse(html.as_bytes(), &mut |e| {
            v.push(e);
            Ok(())
        })
        .unwrap();
        assert_eq!(v[0], Event::Title("IT-Sicherheit".into()));
        let texts: Vec<String> = v.iter().filter_map(|e| if let Event::Block(b) = e { Some(b.text.clone()) } else { None }).collect();
        assert_eq!(texts, vec!["Passwörter", "Mindestens 12 Zeichen.", "Kein Wiederverwenden", "A | B\n1 | 2"]);
    }
}
