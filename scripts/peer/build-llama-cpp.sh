#!/usr/bin/env bash
# Builds the llama.cpp peer used by the benches and the LLM test fixtures:
#   - llama-bench                (pp/tg throughput baseline, parsed by the Rust bench)
#   - llama-server               (the OpenAI-compatible server the remote-backend tests and
#                                 `tresor bench remote` talk to; same sources, same build tree)
#   - tresor-llm-fixtures        (scripts/peer/llm_fixtures.cpp: tokenizer + greedy-decode fixtures)
#
# Idempotent: every step is skipped when its output already exists; re-running
# after editing llm_fixtures.cpp only recompiles the fixture tool.
#
# Source: the llama.cpp tree vendored in the llama-cpp-python sdist on PyPI
# (version pinned below), so no git clone is needed.
#
# Everything lives outside the repo in ${TRESOR_CACHE:-$HOME/.cache/tresor}/llama.cpp:
#   sdist/  downloaded + unpacked sdist
#   build/  cmake build tree; binaries in build/bin/
# Prints the llama-bench path on the last line of stdout.
#
# Env: TRESOR_CACHE, LLAMA_CPP_PYTHON_VERSION (default below), JOBS (default 2).
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
JOBS="${JOBS:-2}"
CACHE="${TRESOR_CACHE:-$HOME/.cache/tresor}/llama.cpp"
SDIST_DIR="$CACHE/sdist"
SRC_ROOT="$SDIST_DIR/llama_cpp_python-$VERSION"
SRC="$SRC_ROOT/vendor/llama.cpp"
BUILD="$CACHE/build"
BIN="$BUILD/bin"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FIXTURE_SRC="$HERE/llm_fixtures.cpp"
FIXTURE_BIN="$BIN/tresor-llm-fixtures"

log() { echo "[build-llama-cpp] $*" >&2; }

# 1. Toolchain ---------------------------------------------------------------
need_pkgs=()
command -v cmake >/dev/null 2>&1 || need_pkgs+=(cmake)
{ command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1; } || need_pkgs+=(build-essential)
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  log "installing ${need_pkgs[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get install -y "${need_pkgs[@]}" >&2; then
    $SUDO apt-get update >&2
    $SUDO apt-get install -y "${need_pkgs[@]}" >&2
  fi
fi

# 2. Source (llama-cpp-python sdist, vendored llama.cpp) ---------------------
mkdir -p "$SDIST_DIR"
TARBALL="$SDIST_DIR/llama_cpp_python-$VERSION.tar.gz"
if [ ! -f "$TARBALL" ]; then
  log "downloading llama-cpp-python==$VERSION sdist"
  # --no-binary is limited to llama-cpp-python itself: with ':all:' pip would also
  # build the sdist's *build* requirements (scikit-build-core, even cmake) from
  # source just to read its metadata, which takes tens of minutes on 2 cores.
  PIP=(pip)
  command -v pip >/dev/null 2>&1 || PIP=(python3 -m pip)
  "${PIP[@]}" download --no-deps --no-binary llama-cpp-python -d "$SDIST_DIR" \
    "llama-cpp-python==$VERSION" >&2
fi
if [ ! -f "$SRC/CMakeLists.txt" ]; then
  log "unpacking $TARBALL"
  tar xzf "$TARBALL" -C "$SDIST_DIR"
fi

# Peer identity for the fixtures/benches: the vendored llama.cpp commit. The sdist
# carries the submodule's git metadata; its CHANGELOG names the commit as a fallback.
commit=""
[ -e "$SRC/.git" ] && commit="$(git -C "$SRC" rev-parse --short=9 HEAD 2>/dev/null || true)"
if [ -z "$commit" ]; then
  commit="$(sed -n "/^## \[$VERSION\]/,/^## \[/p" "$SRC_ROOT/CHANGELOG.md" \
    | grep -o 'llama.cpp@[0-9a-f]*' | head -n1 | cut -d@ -f2 || true)"
fi
echo "llama.cpp ${commit:-unknown}" > "$CACHE/PEER_VERSION"
echo "llama-cpp-python $VERSION sdist (PyPI), vendor/llama.cpp" > "$CACHE/PEER_SOURCE"

# 3. llama.cpp (libllama + llama-bench) ---------------------------------------
if [ ! -x "$BIN/llama-bench" ] || [ ! -e "$BIN/libllama.so" ]; then
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    log "configuring $SRC"
    cmake -S "$SRC" -B "$BUILD" \
      -DCMAKE_BUILD_TYPE=Release \
      -DGGML_NATIVE=ON \
      -DLLAMA_CURL=OFF \
      -DLLAMA_BUILD_TOOLS=ON \
      -DBUILD_SHARED_LIBS=ON \
      -DLLAMA_BUILD_TESTS=OFF \
      -DLLAMA_BUILD_EXAMPLES=OFF \
      -DLLAMA_BUILD_SERVER=OFF \
      -DLLAMA_BUILD_APP=OFF \
      -DLLAMA_OPENSSL=OFF >&2
  fi
  log "building llama + llama-bench with -j $JOBS"
  start=$(date +%s)
  cmake --build "$BUILD" --config Release --target llama llama-bench -j "$JOBS" >&2
  log "llama.cpp build took $(( $(date +%s) - start )) s"
fi

# 3b. llama-server (OpenAI-compatible HTTP server; no TLS, no curl) -------------
# An older cache was configured with LLAMA_BUILD_SERVER=OFF: switching the one
# option re-runs cmake but leaves libllama's objects as they are.
if [ ! -x "$BIN/llama-server" ]; then
  if ! grep -q '^LLAMA_BUILD_SERVER:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
    log "enabling llama-server in $BUILD"
    cmake -S "$SRC" -B "$BUILD" -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON >&2
  fi
  log "building llama-server with -j $JOBS"
  start=$(date +%s)
  cmake --build "$BUILD" --config Release --target llama-server -j "$JOBS" >&2
  log "llama-server build took $(( $(date +%s) - start )) s"
fi

# 4. Fixture tool, compiled against the libllama built above ------------------
if [ ! -f "$FIXTURE_SRC" ]; then
  log "warning: $FIXTURE_SRC missing, fixture tool not built"
elif [ ! -x "$FIXTURE_BIN" ] || [ "$FIXTURE_SRC" -nt "$FIXTURE_BIN" ]; then
  log "compiling $FIXTURE_BIN"
  libs=(-lllama)
  for l in ggml ggml-base ggml-cpu; do
    [ -e "$BIN/lib$l.so" ] && libs+=("-l$l")
  done
  g++ -std=c++17 -O2 -Wall \
    -I"$SRC/include" -I"$SRC/ggml/include" \
    "$FIXTURE_SRC" -o "$FIXTURE_BIN" \
    -L"$BIN" "${libs[@]}" -Wl,-rpath,"$BIN" -pthread
fi

log "peer: $(cat "$CACHE/PEER_VERSION"), from $(cat "$CACHE/PEER_SOURCE")"
log "fixture tool: $FIXTURE_BIN"
log "llama-server: $BIN/llama-server"
echo "$BIN/llama-bench"
