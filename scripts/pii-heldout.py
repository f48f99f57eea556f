#!/usr/bin/env python3
"""Generates Tresor's held-out PII set (eval/pii-heldout.jsonl): ADDRESS and PERSON in German and
English text, with negatives, for `tresor eval pii` and its gate.

Independent of the rules by construction: written before the detector's address/name rules were
reworked (see git history), with its own templates, other Faker locales (de_AT, de_CH, en_GB, en_CA;
the dev set uses de_DE/en_US) and its own seed. The detector's name lexicons come from
`names-dataset`, not from Faker, so a generated name is found only if it is a real name the
lexicon knows. Never tune rules on this file: it is the gate's data.

    python3 -m venv /tmp/venv-pii && /tmp/venv-pii/bin/pip install faker==40.54.0
    /tmp/venv-pii/bin/python scripts/pii-heldout.py > eval/pii-heldout.jsonl

Output: one JSON object per line, {id, lang, text, spans:[{start,end,type,value}], source};
offsets are code points, end exclusive; text[start:end] == value is asserted.
"""

import json
import random
import sys

from faker import Faker

SEED = 90210
N_PER_LANG = 130

rng = random.Random(SEED)
fde = [Faker(l) for l in ("de_AT", "de_CH")]
fen = [Faker(l) for l in ("en_GB", "en_CA")]
for i, f in enumerate(fde + fen):
    f.seed_instance(SEED + i)

US_STATES = ["AL", "AZ", "CA", "CO", "FL", "GA", "IL", "MA", "MI", "MN", "NC", "NJ", "NY", "OH", "OR", "PA", "TX", "VA", "WA", "WI"]
US_SUFFIX = ["Street", "St.", "Avenue", "Ave", "Road", "Rd.", "Lane", "Drive", "Dr.", "Boulevard", "Court", "Place", "Way", "Terrace"]
UK_SUFFIX = ["Road", "Street", "Lane", "Close", "Gardens", "Avenue", "Crescent", "Drive", "Way", "Grove", "Terrace", "Mews"]
DE_PLAIN = ["Hauptstraße", "Bahnhofstraße", "Schulstraße", "Gartenstraße", "Dorfstraße", "Bergstraße", "Kirchweg",
            "Lindenallee", "Marktplatz", "Birkenweg", "Am Mühlbach", "Am Sportplatz", "An der Kirche", "Im Winkel",
            "Auf dem Berg", "Zum Steinbruch", "Goethestr.", "Schillerstr.", "Mozartgasse", "Rosenweg"]


def pick(seq):
    return seq[rng.randrange(len(seq))]


def de():
    return pick(fde)


def en():
    return pick(fen)


def de_street():
    r = rng.random()
    f = de()
    if r < 0.45:
        name = f.street_name()
    elif r < 0.75:
        name = pick(DE_PLAIN)
    else:
        name = f.last_name() + pick(["straße", "str.", "weg", "gasse", "platz", "ring"])
    return name


def de_number():
    n = str(rng.randint(1, 180))
    r = rng.random()
    if r < 0.2:
        n += pick("abcd")
    elif r < 0.3:
        n += pick(["-", "–"]) + str(int(n) + rng.choice([2, 4]))
    elif r < 0.38:
        n += "/" + str(rng.randint(1, 12))
    return n


def de_postcity():
    f = de()
    if rng.random() < 0.55:
        return f"{rng.randint(1067, 99998):05d} {f.city_name()}"
    return f"{rng.choice(['', 'A-', 'CH-'])}{f.postcode()} {f.city_name()}"


def en_uk_addr():
    f = fen[0]
    street = f"{rng.randint(1, 250)} {f.last_name()} {pick(UK_SUFFIX)}"
    flat = pick(["", "", f"Flat {rng.randint(1, 30)}, ", f"Apartment {rng.randint(1, 30)}, "])
    return flat + street, f"{f.city()} {f.postcode()}"


def en_us_addr():
    f = fen[1]
    num = str(rng.randint(1, 9999))
    street = f"{num} {f.last_name()} {pick(US_SUFFIX)}"
    unit = pick(["", "", "", f" Apt {rng.randint(1, 40)}{pick(['', 'B'])}", f", Suite {rng.randint(100, 999)}", f" #{rng.randint(1, 99)}"])
    z = f"{rng.randint(10000, 99999)}" + (f"-{rng.randint(1000, 9999)}" if rng.random() < 0.4 else "")
    return street + unit, f"{f.city()}, {pick(US_STATES)} {z}"


class Case:
    def __init__(self, lang):
        self.lang = lang
        self.parts = []
        self.spans = []

    def t(self, s):
        self.parts.append(s)
        return self

    def span(self, kind, s):
        start = sum(len(p) for p in self.parts)
        self.parts.append(s)
        self.spans.append({"start": start, "end": start + len(s), "type": kind, "value": s})
        return self

    def text(self):
        return "".join(self.parts)


def person(f, lower=False):
    n = f"{f.first_name()} {f.last_name()}"
    return n.lower() if lower else n


# ---- German templates ----
def de_case(i):
    c = Case("de")
    k = i % 13
    f = de()
    if k == 0:
        c.t("Bitte schicken Sie die Unterlagen an ").span("ADDRESS", f"{de_street()} {de_number()}, {de_postcity()}").t(".")
    elif k == 1:
        c.t("Lieferadresse:\n").span("ADDRESS", f"{de_street()} {de_number()}\n{de_postcity()}").t("\nBitte bei Nachbarn abgeben.")
    elif k == 2:
        c.t("Unsere Postanschrift lautet ").span("ADDRESS", f"Postfach {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}, {de_postcity()}").t(".")
    elif k == 3:
        c.t("Rechnung an: ").span("ADDRESS", f"c/o {person(f)}, {de_street()} {de_number()}, {de_postcity()}")
    elif k == 4:
        c.t("Ich wohne jetzt in der ").span("ADDRESS", f"{de_street()} {de_number()}, {rng.randint(1, 5)}. OG").t(", klingeln bei Huber.")
    elif k == 5:
        c.t("Gestern hat ").span("PERSON", person(f)).t(" angerufen und nach dem Vertrag gefragt.")
    elif k == 6:
        c.t("kannst du das bitte an ").span("PERSON", person(f, lower=True)).t(" weiterleiten?")
    elif k == 7:
        c.t("Laut ").span("PERSON", person(f)).t(" ist die Besprechung auf Donnerstag verschoben.")
    elif k == 8:
        n1, n2 = person(f), person(de())
        c.t("Teilnehmer: ").span("PERSON", n1).t(", ").span("PERSON", n2).t(" und das Projektteam.")
    elif k == 9:
        c.t("Der Antrag von ").span("PERSON", person(f)).t(" (").span("ADDRESS", f"{de_street()} {de_number()}, {de_postcity()}").t(") wurde genehmigt.")
    elif k == 10:
        c.t("hallo, hier ist ").span("PERSON", person(f, lower=True)).t(", ich komme später.")
    elif k == 11:
        c.t(pick([
            "Die Straße zum Bahnhof ist wegen Bauarbeiten gesperrt.",
            "Am Montag kommen 12 Leute zur Schulung in Raum 3.",
            "Der Weg zur Lösung führt über 3 Schritte.",
            "Im Jahr 2024 wurden 150 Anträge bearbeitet.",
            "Bitte Formular 12 ausfüllen und bis Freitag abgeben.",
            "Das Update 4.2 bringt neue Funktionen für Berichte.",
            "Unser Team trifft sich im Konferenzraum Alpen auf Ebene 2.",
            "Die Allee 5 Kilometer entlang stehen Linden.",
            "Auf Seite 17 steht die Tabelle mit den Kosten.",
            "Zum Abschluss gibt es 2 Vorträge und ein Buffet.",
            "Die Rechnung 2024-118 ist bezahlt.",
            "Sehr geehrte Damen und Herren, anbei der Bericht für das dritte Quartal.",
            "Mit freundlichen Grüßen\nIhr Kundenservice",
        ]))
    else:
        last = f.last_name()
        c.t(pick(["Sehr geehrte Frau ", "Sehr geehrter Herr ", "Guten Tag Herr "])).span("PERSON", last).t(", vielen Dank für Ihre Nachricht.")
    return c


# ---- English templates ----
def en_case(i):
    c = Case("en")
    k = i % 13
    f = en()
    if k == 0:
        s, pc = en_uk_addr()
        c.t("Please send the contract to ").span("ADDRESS", f"{s}, {pc}").t(" by Friday.")
    elif k == 1:
        s, pc = en_us_addr()
        c.t("Shipping address:\n").span("ADDRESS", f"{s}\n{pc}").t("\nLeave at the door.")
    elif k == 2:
        s, pc = en_us_addr()
        c.t("Mail it to ").span("ADDRESS", f"P.O. Box {rng.randint(10, 9999)}, {pc}").t(", thanks.")
    elif k == 3:
        s, pc = en_us_addr() if rng.random() < 0.5 else en_uk_addr()
        c.t("Billing: ").span("ADDRESS", f"c/o {person(f)}, {s}, {pc}")
    elif k == 4:
        s, _ = en_us_addr() if rng.random() < 0.5 else en_uk_addr()
        c.t("We moved to ").span("ADDRESS", s).t(" last month.")
    elif k == 5:
        c.t("Yesterday ").span("PERSON", person(f)).t(" asked about the invoice.")
    elif k == 6:
        c.t("can you forward this to ").span("PERSON", person(f, lower=True)).t(" please")
    elif k == 7:
        c.t("According to ").span("PERSON", person(f)).t(", the release slips to March.")
    elif k == 8:
        c.t("Attendees: ").span("PERSON", person(f)).t(", ").span("PERSON", person(en())).t(" and the design team.")
    elif k == 9:
        s, pc = en_us_addr()
        c.t("The claim from ").span("PERSON", person(f)).t(" (").span("ADDRESS", f"{s}, {pc}").t(") was approved.")
    elif k == 10:
        c.t("hi, this is ").span("PERSON", person(f, lower=True)).t(" from accounting.")
    elif k == 11:
        c.t(pick([
            "The road to recovery has 3 steps.",
            "Meet in Room 12 on the second floor at 10.",
            "We shipped 40 Units to the Main Street store last week.",
            "Chapter 7 covers the Grand Canyon and the Rocky Mountains.",
            "Our Q3 revenue grew 12% across 5 regions.",
            "Version 2 of the Park Lane project launches in May.",
            "Please fill in Form 12 and return it by Friday.",
            "The Union Square office has 200 desks.",
            "Dear Sir or Madam, please find the report attached.",
            "Best regards,\nThe Support Team",
            "See page 14 for the table of costs.",
            "Flight BA 117 leaves from Terminal 5.",
            "The Hill Valley branch reopened after 3 weeks.",
        ]))
    else:
        c.t(pick(["Dear Mr. ", "Dear Ms. ", "Hello Mrs. "])).span("PERSON", f.last_name()).t(", thank you for your message.")
    return c


def main():
    out = []
    for i in range(N_PER_LANG):
        for lang, make in (("de", de_case), ("en", en_case)):
            c = make(i)
            text = c.text()
            for s in c.spans:
                assert text[s["start"]:s["end"]] == s["value"], (text, s)
            out.append({"id": f"pii-heldout-{lang}-{i:04d}", "lang": lang, "text": text, "spans": c.spans,
                        "source": "synthetic:faker-heldout"})
    for o in out:
        sys.stdout.write(json.dumps(o, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
