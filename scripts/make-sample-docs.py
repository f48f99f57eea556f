#!/usr/bin/env python3
"""Generates the PDF and DOCX of assets/sample-kb reproducibly, with the
Python standard library only: a minimal PDF with a real text layer
(Helvetica, WinAnsiEncoding, two pages) and a DOCX as a zip of WordprocessingML.

    python3 scripts/make-sample-docs.py [OUT_DIR]   (default: assets/sample-kb)
"""
import sys
import zipfile
from pathlib import Path

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "assets" / "sample-kb"

PDF_PAGES = [
    [
        ("h", "Reisekostenrichtlinie"),
        ("p", "Diese Richtlinie regelt die Erstattung von Reisekosten bei Dienstreisen der Nordlicht Software GmbH."),
        ("p", "Sie gilt ab dem 1. Januar 2025 und ersetzt die bisherige Fassung."),
        ("h", "1. Genehmigung"),
        ("p", "Jede Dienstreise wird vor der Buchung von der oder dem Vorgesetzten im Reisetool genehmigt."),
        ("p", "Reisen ins Ausland werden zusätzlich dem IT-Team gemeldet."),
        ("h", "2. Verkehrsmittel"),
        ("p", "Bahnfahrten werden in der 2. Klasse erstattet, bei mehr als vier Stunden Fahrzeit in der 1. Klasse."),
        ("p", "Flüge sind nur in der Economy Class erlaubt, wenn die Bahn mehr als sechs Stunden braucht."),
        ("p", "Fahrten mit dem Privatwagen werden mit 0,30 EUR pro Kilometer erstattet."),
    ],
    [
        ("h", "3. Übernachtung"),
        ("p", "Die Obergrenze für Hotels beträgt 120 EUR pro Nacht im Inland und 160 EUR in London, Paris und Zürich."),
        ("h", "4. Verpflegungspauschale"),
        ("p", "Die Verpflegungspauschale beträgt 14 EUR bei mehr als acht Stunden Abwesenheit und 28 EUR für volle Tage."),
        ("p", "Wird eine Mahlzeit gestellt, z. B. das Frühstück im Hotel, wird die Pauschale gekürzt."),
        ("h", "5. Abrechnung"),
        ("p", "Die Reisekostenabrechnung wird innerhalb von 30 Tagen nach der Reise mit allen Belegen eingereicht."),
        ("p", "Die Erstattung erfolgt mit der nächsten Gehaltsabrechnung."),
    ],
]


def pdf_string(s):
    b = s.encode("cp1252")
    out = b"("
    for c in b:
        if c in b"()\\":
            out += b"\\" + bytes([c])
        elif c < 32 or c > 126:
            out += b"\\%03o" % c
        else:
            out += bytes([c])
    return out + b")"


def make_pdf(path):
    objs = []  # index i -> object body (bytes), object number i+1

    def add(body):
        objs.append(body)
        return len(objs)

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    bold = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>")
    pages_num = len(objs) + 1 + 2 * len(PDF_PAGES)  # after content+page objects
    page_nums = []
    for lines in PDF_PAGES:
        ops = [b"BT", b"50 790 Td", b"16 TL"]
        for kind, text in lines:
            if kind == "h":
                ops += [b"T*", b"/F2 13 Tf", pdf_string(text) + b" Tj", b"T*"]
            else:
                ops += [b"/F1 10 Tf", pdf_string(text) + b" Tj", b"T*"]
        ops.append(b"ET")
        stream = b"\n".join(ops)
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        page = add(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
            b"/Resources << /Font << /F1 %d 0 R /F2 %d 0 R >> >> >>" % (pages_num, content, font, bold)
        )
        page_nums.append(page)
    kids = b" ".join(b"%d 0 R" % p for p in page_nums)
    assert add(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(page_nums))) == pages_num
    info = add(b"<< /Title " + pdf_string("Reisekostenrichtlinie") + b" /Producer (make-sample-docs.py) >>")
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % pages_num)
    out = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for i, body in enumerate(objs):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % (i + 1) + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for o in offsets:
        out += b"%010d 00000 n \n" % o
    out += b"trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, catalog, info, xref)
    path.write_bytes(out)


DOCX_BODY = [
    ("Title", "Onboarding Checklist"),
    (None, "This checklist helps new colleagues and their managers through the first weeks at Nordlicht Software GmbH."),
    ("Heading1", "Before the first day"),
    ("list", "The manager orders the laptop and phone at least two weeks before the start date."),
    ("list", "HR sends the employment contract, the employee handbook and the IT security policy."),
    ("list", "The team chooses an onboarding buddy who answers everyday questions."),
    ("Heading1", "First week"),
    ("list", "Collect your laptop from the IT team and set up two-factor authentication."),
    ("list", "Complete the data protection training (about 45 minutes) in the learning portal."),
    ("list", "Meet your buddy daily for fifteen minutes."),
    ("Heading1", "Contacts"),
    ("table", [["Topic", "Contact", "Extension"], ["IT and laptops", "IT team", "-199"], ["Contracts and payroll", "HR", "-120"], ["Travel bookings", "Office management", "-110"]]),
]

W = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def para(text, style=None, numbered=False):
    ppr = ""
    if style or numbered:
        ppr = "<w:pPr>"
        if style:
            ppr += f'<w:pStyle w:val="{style}"/>'
        if numbered:
            ppr += '<w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr>'
        ppr += "</w:pPr>"
    return f'<w:p>{ppr}<w:r><w:t xml:space="preserve">{esc(text)}</w:t></w:r></w:p>'


def make_docx(path):
    body = []
    for kind, content in DOCX_BODY:
        if kind == "list":
            body.append(para(content, numbered=True))
        elif kind == "table":
            rows = "".join("<w:tr>" + "".join(f"<w:tc>{para(c)}</w:tc>" for c in row) + "</w:tr>" for row in content)
            body.append(f"<w:tbl>{rows}</w:tbl>")
        else:
            body.append(para(content, style=kind))
    document = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document {W}><w:body>{"".join(body)}</w:body></w:document>'
    files = {
        "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
        '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.core-properties+xml"/>'
        "</Types>",
        "_rels/.rels": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties" Target="docProps/core.xml"/>'
        "</Relationships>",
        "docProps/core.xml": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Onboarding Checklist</dc:title>'
        "<dc:creator>Nordlicht Software GmbH</dc:creator></cp:coreProperties>",
        "word/document.xml": document,
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0))  # fixed time: reproducible bytes
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    make_pdf(OUT / "reisekosten-richtlinie.pdf")
    make_docx(OUT / "onboarding-checklist.docx")
    print(f"wrote {OUT / 'reisekosten-richtlinie.pdf'} and {OUT / 'onboarding-checklist.docx'}")
