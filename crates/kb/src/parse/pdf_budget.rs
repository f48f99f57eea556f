//! The work budget of one PDF (issue 19): what pdf-extract would do with a
//! file, added up before it runs, and the file refused when it is too much.
//!
//! The inflation check (`pdf.rs`) holds the *distinct* bytes a file inflates
//! to; pdf-extract's work is larger than that in three ways this module
//! bounds, each with its `TRESOR_MAX_*` override ([`Limits`]):
//! - pages: pdf-extract rebuilds the page list for every page (quadratic),
//!   so a file of 100,000 empty pages never ends (`TRESOR_MAX_PDF_PAGES`);
//! - drawn content: pages sharing one content stream, and form XObjects
//!   drawn again and again, are decoded and interpreted every time they are
//!   drawn: 10,000 pages × one 10 MB stream is 100 GB of work from a file of
//!   a few hundred KB (`TRESOR_MAX_PDF_WORK` bytes, `TRESOR_MAX_PDF_OPERATORS`);
//! - form nesting: pdf-extract follows `Do` into a form XObject by plain
//!   recursion, so a form that draws itself (directly or through others)
//!   recurses until the stack overflows and the whole process aborts — no
//!   `catch_unwind` can help (`TRESOR_MAX_PDF_FORM_DEPTH`; a cycle is over
//!   any depth).
//!
//! Owns: the walk and the counts. Never: extracts text (pdf-extract does) or
//! inflates a stream more than once (each stream is decoded once and its
//! cost remembered; a stream drawn again costs its remembered size).

use std::collections::HashMap;

use pdf_extract::content::Content;
use pdf_extract::{Dictionary, Document, Object, ObjectId};

use super::{Limits, ParseError};

/// What one content stream costs each time it is drawn, and the XObjects it draws.
struct Cost {
    bytes: u64,
    operators: u64,
    draws: Vec<Vec<u8>>,
}

struct Walk<'a> {
    doc: &'a Document,
    limits: &'a Limits,
    memo: HashMap<ObjectId, std::rc::Rc<Cost>>,
    bytes: u64,
    operators: u64,
}

fn over(what: String, limit: u64, unit: &'static str, var: &'static str) -> ParseError {
    ParseError::OverLimit { what, limit, unit, var }
}

/// Refuses a PDF whose extraction would exceed the budget (see the module doc).
/// A file lopdf cannot load passes: pdf-extract reports it as corrupt.
pub(crate) fn check(bytes: &[u8], limits: &Limits) -> Result<(), ParseError> {
    let Ok(doc) = Document::load_mem(bytes) else { return Ok(()) };
    let pages: Vec<ObjectId> = doc.page_iter().take(limits.max_pdf_pages.saturating_add(1).min(usize::MAX as u64) as usize).collect();
    if pages.len() as u64 > limits.max_pdf_pages {
        return Err(over(format!("a PDF of more than {} pages", limits.max_pdf_pages), limits.max_pdf_pages, "pages", "TRESOR_MAX_PDF_PAGES"));
    }
    // pdf-extract looks a page's /MediaBox and /Resources up its /Parent chain without
    // remembering where it has been: a chain that loops back never ends (a fuzzer's find)
    let mut chains = Vec::with_capacity(pages.len());
    for &page in &pages {
        chains.push(ancestors(&doc, page).map_err(|why| ParseError::Corrupt { format: "PDF", reason: why })?);
    }
    let mut w = Walk { doc: &doc, limits, memo: HashMap::new(), bytes: 0, operators: 0 };
    let empty = Dictionary::new();
    for (page, chain) in pages.into_iter().zip(chains) {
        // the page's /Resources, or its nearest ancestor's
        let resources = chain.iter().find_map(|d| w.dict_of(d, b"Resources")).unwrap_or(&empty);
        for id in doc.get_page_contents(page) {
            w.draw(id, resources, 0, &mut Vec::new())?;
        }
    }
    Ok(())
}

/// Page-tree levels above a page that no real document comes near (pdf-extract walks them
/// recursively, one stack frame per level).
const MAX_PAGE_TREE_DEPTH: usize = 256;

/// The page's dictionary and its ancestors' up the `/Parent` chain, nearest first (empty when the
/// page is no dictionary); why not, when the chain loops back to an object it passed or is deeper
/// than [`MAX_PAGE_TREE_DEPTH`].
fn ancestors(doc: &Document, page: ObjectId) -> Result<Vec<&Dictionary>, String> {
    let mut seen = vec![page];
    let mut chain = Vec::new();
    let mut id = page;
    while let Ok(d) = doc.get_dictionary(id) {
        chain.push(d);
        let Some(parent) = d.get(b"Parent").ok().and_then(|p| p.as_reference().ok()) else { break };
        if seen.contains(&parent) {
            return Err(format!("the page tree loops: object {} {} is its own ancestor (/Parent)", parent.0, parent.1));
        }
        if seen.len() > MAX_PAGE_TREE_DEPTH {
            return Err(format!("the page tree is more than {MAX_PAGE_TREE_DEPTH} levels deep (/Parent)"));
        }
        seen.push(parent);
        id = parent;
    }
    Ok(chain)
}

impl<'a> Walk<'a> {
    fn deref(&self, o: &'a Object) -> Option<&'a Object> {
        self.doc.dereference(o).ok().map(|(_, o)| o)
    }

    fn dict_of(&self, d: &'a Dictionary, key: &[u8]) -> Option<&'a Dictionary> {
        d.get(key).ok().and_then(|o| self.deref(o)).and_then(|o| o.as_dict().ok())
    }

    /// The cost of content stream `id`, decoded once.
    fn cost(&mut self, id: ObjectId) -> std::rc::Rc<Cost> {
        if let Some(c) = self.memo.get(&id) {
            return c.clone();
        }
        let c = std::rc::Rc::new(match self.doc.get_object(id).ok().and_then(|o| o.as_stream().ok()) {
            None => Cost { bytes: 0, operators: 0, draws: Vec::new() },
            Some(s) => {
                let data = s.decompressed_content().unwrap_or_else(|_| s.content.clone());
                let ops = Content::decode(&data).map(|c| c.operations).unwrap_or_default();
                let draws = ops.iter().filter(|op| op.operator == "Do").filter_map(|op| op.operands.first()?.as_name().ok().map(<[u8]>::to_vec)).collect();
                Cost { bytes: data.len() as u64, operators: ops.len() as u64, draws }
            }
        });
        self.memo.insert(id, c.clone());
        c
    }

    /// Draws stream `id` with `resources` at form depth `depth` (`stack`: the forms being drawn).
    fn draw(&mut self, id: ObjectId, resources: &'a Dictionary, depth: u64, stack: &mut Vec<ObjectId>) -> Result<(), ParseError> {
        let l = self.limits;
        let c = self.cost(id);
        self.bytes += c.bytes;
        self.operators += c.operators;
        if self.bytes > l.max_pdf_work {
            return Err(over(
                "PDF page content drawn (pages sharing a content stream, form XObjects drawn again and again) adds up past the limit for one document".into(),
                l.max_pdf_work,
                "bytes",
                "TRESOR_MAX_PDF_WORK",
            ));
        }
        if self.operators > l.max_pdf_operators {
            return Err(over("PDF content operators to interpret".into(), l.max_pdf_operators, "operators", "TRESOR_MAX_PDF_OPERATORS"));
        }
        if c.draws.is_empty() {
            return Ok(());
        }
        let Some(xobjects) = self.dict_of(resources, b"XObject") else { return Ok(()) };
        for name in &c.draws {
            let Ok(Object::Reference(form)) = xobjects.get(name) else { continue };
            let form = *form;
            let Some(stream) = self.doc.get_object(form).ok().and_then(|o| o.as_stream().ok()) else { continue };
            if stream.dict.get(b"Subtype").ok().and_then(|s| s.as_name().ok()) != Some(b"Form".as_slice()) {
                continue;
            }
            if stack.contains(&form) || depth + 1 > l.max_pdf_form_depth {
                let what = if stack.contains(&form) {
                    format!("form XObject {} {} draws itself (a cycle: extraction would recurse until the stack overflows)", form.0, form.1)
                } else {
                    "PDF form XObjects nested".to_string()
                };
                return Err(over(what, l.max_pdf_form_depth, "levels", "TRESOR_MAX_PDF_FORM_DEPTH"));
            }
            let inner = self.dict_of(&stream.dict, b"Resources").unwrap_or(resources);
            stack.push(form);
            self.draw(form, inner, depth + 1, stack)?;
            stack.pop();
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PDF from numbered object bodies (1-based), with a correct xref table.
    pub(crate) fn pdf(objects: &[String]) -> Vec<u8> {
        let mut out = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, body) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
        for o in offsets {
            out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(format!("trailer << /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).as_bytes());
        out
    }

    fn stream(dict: &str, data: &str) -> String {
        format!("<< {dict} /Length {} >>\nstream\n{data}\nendstream", data.len())
    }

    /// `pages` pages that all draw one content stream of `text_ops` text operators.
    pub(crate) fn shared_stream_pdf(pages: usize, text_ops: usize) -> Vec<u8> {
        let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", 5 + i)).collect();
        let mut objs = vec![
            "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
            format!("<< /Type /Pages /Kids [{}] /Count {pages} /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> >>", kids.join(" ")),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
            stream("", &format!("BT /F1 12 Tf 72 712 Td {} ET", "(Seite) Tj ".repeat(text_ops))),
        ];
        objs.extend((0..pages).map(|_| "<< /Type /Page /Parent 2 0 R /Contents 4 0 R >>".to_string()));
        pdf(&objs)
    }

    /// One page drawing form XObject 5, which draws itself.
    pub(crate) fn self_drawing_form_pdf() -> Vec<u8> {
        pdf(&[
            "<< /Type /Catalog /Pages 2 0 R >>".into(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".into(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /X1 5 0 R >> >> /Contents 4 0 R >>".into(),
            stream("", "/X1 Do"),
            stream("/Type /XObject /Subtype /Form /BBox [0 0 10 10] /Resources << /XObject << /X1 5 0 R >> >>", "/X1 Do"),
        ])
    }

    fn limits() -> Limits {
        Limits::BUILTIN
    }

    #[test]
    fn a_plain_pdf_passes() {
        assert!(check(&shared_stream_pdf(3, 10), &limits()).is_ok());
    }

    #[test]
    fn pages_sharing_one_stream_count_every_draw() {
        // 40 pages × ~1,100 bytes: fine under the built-in budget, over a 16 KB one
        let pdf = shared_stream_pdf(40, 100);
        assert!(check(&pdf, &limits()).is_ok());
        let l = Limits { max_pdf_work: 16 << 10, ..limits() };
        let msg = check(&pdf, &l).unwrap_err().to_string();
        assert!(msg.contains("TRESOR_MAX_PDF_WORK") && msg.contains(&(16u64 << 10).to_string()) && msg.contains("sharing a content stream"), "{msg}");
        let l = Limits { max_pdf_operators: 1_000, ..limits() };
        let msg = check(&pdf, &l).unwrap_err().to_string();
        assert!(msg.contains("TRESOR_MAX_PDF_OPERATORS"), "{msg}");
    }

    #[test]
    fn too_many_pages_are_refused_before_the_quadratic_page_walk() {
        let l = Limits { max_pdf_pages: 20, ..limits() };
        let msg = check(&shared_stream_pdf(21, 1), &l).unwrap_err().to_string();
        assert!(msg.contains("TRESOR_MAX_PDF_PAGES") && msg.contains("20 pages"), "{msg}");
        assert!(check(&shared_stream_pdf(20, 1), &l).is_ok());
    }

    /// pdf-extract followed a looping /Parent chain forever looking for a /MediaBox (found by
    /// `scripts/fuzz pdf`, 2026-12-07: a page whose /Parent is itself): refused up front.
    #[test]
    fn a_page_tree_that_loops_is_refused_before_the_extractor_walks_it() {
        let page = |parent: u32, media: &str| format!("<< /Type /Page /Parent {parent} 0 R {media} /Contents 4 0 R >>");
        let doc = |p3: String, p5: String| {
            pdf(&[
                "<< /Type /Catalog /Pages 2 0 R >>".into(),
                "<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 2 >>".into(),
                p3,
                stream("", "BT ET"),
                p5,
                "<< /Type /Pages /Parent 7 0 R >>".into(),
                "<< /Type /Pages /Parent 6 0 R >>".into(),
            ])
        };
        let mb = "/MediaBox [0 0 612 792]";
        assert!(check(&doc(page(2, mb), page(2, mb)), &limits()).is_ok());
        // a page that is its own parent, and a page under two nodes that are each other's parent
        for bad in [doc(page(2, mb), page(5, "")), doc(page(2, mb), page(6, ""))] {
            let msg = check(&bad, &limits()).unwrap_err().to_string();
            assert!(msg.contains("page tree loops") && msg.contains("/Parent"), "{msg}");
        }
        let deep: Vec<String> = ["<< /Type /Catalog /Pages 2 0 R >>".to_string(), "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".into(), page(4, mb)]
            .into_iter()
            .chain((0..300).map(|i| format!("<< /Type /Pages /Parent {} 0 R >>", 5 + i)))
            .collect();
        let msg = check(&pdf(&deep), &limits()).unwrap_err().to_string();
        assert!(msg.contains("levels deep"), "{msg}");
    }

    #[test]
    fn a_form_that_draws_itself_is_refused_and_deep_nesting_too() {
        let msg = check(&self_drawing_form_pdf(), &limits()).unwrap_err().to_string();
        assert!(msg.contains("draws itself") && msg.contains("TRESOR_MAX_PDF_FORM_DEPTH"), "{msg}");
        // a chain of 6 forms (no cycle): over a depth of 4, fine at the built-in depth
        let mut objs = vec![
            "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /X 5 0 R >> >> /Contents 4 0 R >>".to_string(),
            stream("", "/X Do"),
        ];
        for i in 0..6 {
            let next = if i < 5 { format!("/Resources << /XObject << /X {} 0 R >> >>", 6 + i) } else { String::new() };
            objs.push(stream(&format!("/Type /XObject /Subtype /Form /BBox [0 0 1 1] {next}"), if i < 5 { "/X Do" } else { "BT ET" }));
        }
        let chain = pdf(&objs);
        assert!(check(&chain, &limits()).is_ok());
        let msg = check(&chain, &Limits { max_pdf_form_depth: 4, ..limits() }).unwrap_err().to_string();
        assert!(msg.contains("nested") && msg.contains("TRESOR_MAX_PDF_FORM_DEPTH"), "{msg}");
    }
}
