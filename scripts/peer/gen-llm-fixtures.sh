#!/usr/bin/env bash
# Regenerates the llama.cpp-derived LLM test fixtures in crates/llm/tests/fixtures/:
#   smollm2_tokenize.json  smollm2_greedy.json  gemma3_tokenize.json  gemma3_greedy.json
#
# Usage (from anywhere):  scripts/peer/gen-llm-fixtures.sh
# Needs models/SmolLM2-135M-Instruct.Q4_1.gguf and models/gemma-3-270m-q4_k_m.gguf
# (override with SMOLLM2_GGUF / GEMMA3_GGUF). Builds the peer first if needed
# (scripts/peer/build-llama-cpp.sh, idempotent). Greedy decoding runs twice per model
# and the script fails unless both runs agree token for token.
#
# Semantics recorded in the fixtures (see "notes" in each file):
#   - tokenization = llama_tokenize(parse_special = true, add_special = add_bos)
#   - greedy = argmax over the last position's logits, lowest id on ties, exactly
#     n_new tokens, no stop at end-of-generation tokens, fresh KV cache per prompt
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/crates/llm/tests/fixtures"
SMOLLM2="${SMOLLM2_GGUF:-$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
GEMMA3="${GEMMA3_GGUF:-$ROOT/models/gemma-3-270m-q4_k_m.gguf}"
CACHE="${TRESOR_CACHE:-$HOME/.cache/tresor}/llama.cpp"

"$ROOT/scripts/peer/build-llama-cpp.sh" >/dev/null
TOOL="$CACHE/build/bin/tresor-llm-fixtures"
PEER="$(cat "$CACHE/PEER_VERSION")"
PEER_SOURCE="$(cat "$CACHE/PEER_SOURCE")"

mkdir -p "$OUT"
export TOOL PEER PEER_SOURCE OUT SMOLLM2 GEMMA3
exec python3 - <<'PY'
import json, os, subprocess, sys

TOOL, OUT = os.environ["TOOL"], os.environ["OUT"]
PEER, PEER_SOURCE = os.environ["PEER"], os.environ["PEER_SOURCE"]
N_NEW = 16

# Shared tokenizer strings: both models get all of them, so each model's own
# special-token syntax is covered and the other family's reads as plain text.
TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Größe",
    "Straße",
    "Übermäßig",
    "Die Größe der Straße ist übermäßig, sagte der Bäcker.",
    "Ünïcödé café naïve résumé",
    "😀",
    "👨‍👩‍👧‍👦",
    "I ❤️ Rust 🦀 and 🏳️‍🌈 flags 👍🏽",
    "fn main() {\n    let x: u32 = 42;\n    println!(\"{x}\");\n}\n",
    "def f(x):\n\tif x:\n\t\treturn x * 2\n\treturn None\n",
    "a   b",
    "\n\n\n",
    "  leading",
    "trailing  ",
    " ",
    "\t",
    "x\r\ny",
    "1234567",
    "3.14159",
    "Numbers: 1,000,000 and 2024-11-25 and 0.5%",
    "don't",
    "it's",
    "She said: \"We'll see—won't we?\" (maybe…)",
    "https://www.example.com/path?q=1&r=2",
    "日本語のテキスト",
    "你好，世界",
    "한국어 텍스트",
    "",
    "<|im_start|>user\nHi<|im_end|>\n",
    "<|endoftext|>",
    "<|im_start|>assistant\n",
    "Hi<|im_end|>",
    "<start_of_turn>user\nHi<end_of_turn>\n",
    "<bos>",
    "<eos>",
]
# Also recorded with add_bos = true (llama_tokenize's add_special).
WITH_BOS = ["Hello, world!", "", "Größe",
            "<|im_start|>user\nHi<|im_end|>\n", "<start_of_turn>user\nHi<end_of_turn>\n"]

SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
SMOL_QUESTIONS = [
    "What is the capital of France?",
    "Was ist die Hauptstadt von Deutschland?",
    "Write a Python function that adds two numbers.",
    "List three colors.",
    "What is 12 times 7?",
]
GEMMA_QUESTIONS = [
    "What is the capital of France?",
    "Wie heißt die Hauptstadt von Österreich?",
    "What is 12 times 7?",
]

def chatml(q):
    return (f"<|im_start|>system\n{SMOL_SYSTEM}<|im_end|>\n"
            f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n")

def gemma_chat(q):
    return f"<bos><start_of_turn>user\n{q}<end_of_turn>\n<start_of_turn>model\n"

def run(args, stdin):
    r = subprocess.run([TOOL, *args], input=stdin.encode(), capture_output=True)
    if r.returncode != 0:
        sys.exit(f"{TOOL} {' '.join(args)} failed ({r.returncode}):\n{r.stderr.decode(errors='replace')}")
    return r.stdout.decode()

def ids(s):
    return [int(t) for t in s.split()]

def info(model):
    out = {}
    for line in run(["info", model], "").splitlines():
        k, *v = line.split()
        out[k] = [int(x) for x in v] if k == "eog_ids" else int(v[0])
    out["add_bos"] = bool(out["add_bos"]); out["add_eos"] = bool(out["add_eos"])
    return out

def tokenize(model):
    lines = run(["tokenize", model], "".join(t.encode().hex() + "\n" for t in TEXTS)).split("\n")
    cases, bos_cases = [], []
    for text, line in zip(TEXTS, lines):
        plain, special = line.split("\t")
        cases.append({"text": text, "add_bos": False, "ids": ids(plain)})
        if text in WITH_BOS:
            bos_cases.append({"text": text, "add_bos": True, "ids": ids(special)})
    assert len(cases) == len(TEXTS)
    return cases + bos_cases

EOG = set()

def greedy(model, prompts):
    stdin = "".join(f"{int(b)} {p.encode().hex()}\n" for p, b in prompts)
    lines = run(["greedy", model, str(N_NEW)], stdin).splitlines()
    assert len(lines) == 4 * len(prompts), lines
    cases = []
    for i, (prompt, add_bos) in enumerate(prompts):
        rec = {}
        for line in lines[4 * i: 4 * i + 4]:
            key, _, val = line.partition(" ")
            rec[key] = val
        raw = bytes.fromhex(rec["text"])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:  # 16 tokens may end inside a multi-byte character
            text = raw.decode("utf-8", errors="replace")
        gen = ids(rec["gen"])
        assert len(gen) == N_NEW
        cases.append({
            "prompt": prompt,
            "add_bos": add_bos,
            "prompt_ids": ids(rec["prompt"]),
            "generated_ids": gen,
            "generated_text": text,
            "generated_text_hex": raw.hex(),
            "first_eog_index": next((j for j, t in enumerate(gen) if t in EOG), None),
            "top2_logit_margins": [float(m) for m in rec["margin"].split()],
        })
    return cases

def greedy_checked(model, prompts):
    a = greedy(model, prompts)
    b = greedy(model, prompts)
    for x, y in zip(a, b):
        if x["generated_ids"] != y["generated_ids"] or x["prompt_ids"] != y["prompt_ids"]:
            sys.exit(f"non-deterministic greedy decode for {x['prompt']!r}: "
                     f"{x['generated_ids']} vs {y['generated_ids']}")
    print(f"  determinism: 2 runs x {len(a)} prompts identical", file=sys.stderr)
    return a

TOK_NOTES = ("ids from llama_tokenize(vocab, text, add_special = add_bos, parse_special = true); "
             "add_special only adds BOS/EOS where the GGUF's tokenizer.ggml.add_bos_token/add_eos_token say so "
             "(vocab.add_bos / vocab.add_eos)")
GREEDY_NOTES = (f"prompt_ids = llama_tokenize(prompt, add_special = add_bos, parse_special = true); "
                f"then {N_NEW} steps of argmax over the last position's logits (lowest id on ties, no sampling, "
                f"no penalties, no stop at end-of-generation tokens), prompt decoded as one batch, fresh KV cache "
                f"per prompt, CPU, 2 threads. generated_text = llama_detokenize(generated_ids, remove_special=false, "
                f"unparse_special=true). first_eog_index: position of the first generated id in vocab.eog_ids (llama_vocab_is_eog), null if none; an engine that stops there must match generated_ids[..=first_eog_index]. top2_logit_margins: top-1 minus top-2 logit per step (small values mark "
                f"steps where a numerically different but correct engine may legitimately diverge).")

def write(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")
    return path

def summarize_tok(path, obj):
    print(f"{path}: {len(obj['cases'])} cases, vocab {obj['vocab']}")
    for c in obj["cases"]:
        print(f"  add_bos={str(c['add_bos']).lower():5} {json.dumps(c['text'], ensure_ascii=False)[:50]:52} -> {c['ids'][:12]}{' …' if len(c['ids']) > 12 else ''}")

def summarize_greedy(path, obj):
    print(f"{path}: {len(obj['cases'])} cases")
    for c in obj["cases"]:
        print(f"  add_bos={str(c['add_bos']).lower()} prompt {len(c['prompt_ids'])} ids (first {c['prompt_ids'][:3]}) "
              f"min margin {min(c['top2_logit_margins']):.3f}")
        print(f"    {json.dumps(c['generated_text'], ensure_ascii=False)}")
        print(f"    {c['generated_ids']} first_eog_index={c['first_eog_index']}")

for tag, model, prompts_of in [
    ("smollm2", os.environ["SMOLLM2"], lambda v: [(chatml(q), v["add_bos"]) for q in SMOL_QUESTIONS]),
    # The Gemma prompt text starts with a literal "<bos>", parsed as the BOS special
    # token, so add_special is off to avoid a second BOS.
    ("gemma3", os.environ["GEMMA3"], lambda v: [(gemma_chat(q), False) for q in GEMMA_QUESTIONS]),
]:
    name = os.path.basename(model)
    print(f"[gen-llm-fixtures] {name}", file=sys.stderr)
    v = info(model)
    EOG.clear(); EOG.update(v["eog_ids"])
    tok = {"model": name, "peer": PEER, "peer_source": PEER_SOURCE, "parse_special": True,
           "vocab": v, "notes": TOK_NOTES, "cases": tokenize(model)}
    gr = {"model": name, "peer": PEER, "peer_source": PEER_SOURCE, "n_new": N_NEW,
          "vocab": v, "notes": GREEDY_NOTES, "cases": greedy_checked(model, prompts_of(v))}
    if tag == "gemma3":
        for c in gr["cases"]:
            assert c["prompt_ids"][0] == v["bos"] and c["prompt_ids"][1] != v["bos"], c["prompt_ids"][:3]
    summarize_tok(write(f"{tag}_tokenize.json", tok), tok)
    summarize_greedy(write(f"{tag}_greedy.json", gr), gr)
PY
