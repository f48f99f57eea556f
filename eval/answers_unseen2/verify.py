#!/usr/bin/env python3
"""Checks goldset.jsonl against docs/: valid JSON per line, exact field set, unique ids,
counts per language and per document, and that every answer span occurs verbatim in its source file."""
import json, os, sys, collections
HERE = os.path.dirname(os.path.abspath(__file__))
FIELDS = {"id", "question", "answer", "answers", "answerable", "source_file", "lang"}
errors, rows = [], []
with open(os.path.join(HERE, "goldset.jsonl"), encoding="utf-8") as f:
    for i, line in enumerate(f, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            errors.append(f"line {i}: invalid JSON ({e})")
ids = collections.Counter(r.get("id") for r in rows)
errors += [f"duplicate id {k}" for k, v in ids.items() if v > 1]
count = collections.Counter()
per_doc = collections.Counter()
for r in rows:
    if set(r) != FIELDS:
        errors.append(f"{r.get('id')}: fields {sorted(r)}")
        continue
    lang = r["lang"]
    if lang not in ("en", "de") or not r["id"].startswith(f"u3-{lang}-"):
        errors.append(f"{r['id']}: bad lang/id")
    if r["answerable"]:
        count[(lang, "answerable")] += 1
        src = r["source_file"]
        path = os.path.join(HERE, "docs", src or "")
        if not src or not src.startswith(lang + "/") or not os.path.isfile(path):
            errors.append(f"{r['id']}: bad source_file {src}")
            continue
        per_doc[src] += 1
        text = open(path, encoding="utf-8").read()
        if not r["answer"] or r["answer"] not in r["answers"]:
            errors.append(f"{r['id']}: answer missing from answers")
        for span in [r["answer"]] + r["answers"]:
            if not isinstance(span, str) or span not in text:
                errors.append(f"{r['id']}: span not verbatim in {src}: {span!r}")
    else:
        count[(lang, "unanswerable")] += 1
        if r["answer"] is not None or r["answers"] != [] or r["source_file"] is not None:
            errors.append(f"{r['id']}: unanswerable row must have null answer, [] answers, null source_file")
docs = sorted(os.path.relpath(os.path.join(d, f), os.path.join(HERE, "docs"))
              for d, _, fs in os.walk(os.path.join(HERE, "docs")) for f in fs)
for d in docs:
    if per_doc[d] != 4:
        errors.append(f"{d}: {per_doc[d]} answerable questions (want 4)")
for lang in ("en", "de"):
    a, u = count[(lang, "answerable")], count[(lang, "unanswerable")]
    print(f"{lang}: {a} answerable, {u} unanswerable, {sum(1 for d in docs if d.startswith(lang+'/'))} documents")
    if (a, u) != (32, 16):
        errors.append(f"{lang}: counts {a}/{u}, want 32/16")
print(f"total lines: {len(rows)}, unique ids: {len(ids)}")
print("\n".join(errors) if errors else "OK: all checks passed")
sys.exit(1 if errors else 0)
