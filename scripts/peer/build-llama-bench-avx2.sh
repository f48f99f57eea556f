#!/usr/bin/env bash
# Builds a second llama-bench restricted to AVX2/FMA/F16C (no AVX-512, no
# VNNI): the peer for Tresor's `avx2` tier rows of `tresor bench llm` on a
# machine that has more. The native build of build-llama-cpp.sh uses every
# extension the CPU has, so against it an `avx2` row compares Tresor's AVX2
# kernels with llama.cpp's AVX-512 VNNI ones — not what an AVX2-only laptop
# sees. Same source (the llama-cpp-python sdist that build-llama-cpp.sh
# unpacks; run that first), build tree ${TRESOR_CACHE:-~/.cache/tresor}/llama.cpp/build-avx2.
# A bench tool, not part of CI. Prints the llama-bench path on the last line.
#
# Use: tresor bench llm --tiers avx512vnni,avx2 --tier-peer avx2=$(scripts/peer/build-llama-bench-avx2.sh | tail -1) ...
set -euo pipefail
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
JOBS="${JOBS:-2}"
CACHE="${TRESOR_CACHE:-$HOME/.cache/tresor}/llama.cpp"
SRC="$CACHE/sdist/llama_cpp_python-$VERSION/vendor/llama.cpp"
BUILD="$CACHE/build-avx2"
log() { echo "[build-llama-bench-avx2] $*" >&2; }
if [ ! -f "$SRC/CMakeLists.txt" ]; then
  log "no llama.cpp source at $SRC: run scripts/peer/build-llama-cpp.sh first"
  exit 1
fi
if [ ! -x "$BUILD/bin/llama-bench" ]; then
  if [ ! -f "$BUILD/CMakeCache.txt" ]; then
    cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
      -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
      -DGGML_AVX512=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF \
      -DLLAMA_CURL=OFF -DLLAMA_BUILD_TOOLS=ON -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_TESTS=OFF \
      -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF >&2
  fi
  log "building llama-bench (AVX2 only) with -j $JOBS"
  start=$(date +%s)
  cmake --build "$BUILD" --config Release --target llama-bench -j "$JOBS" >&2
  log "build took $(( $(date +%s) - start )) s"
fi
# what the build enabled, as ggml reports it
"$BUILD/bin/llama-bench" --help >/dev/null 2>&1 || true
echo "$BUILD/bin/llama-bench"
