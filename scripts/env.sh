# Sourced by the README commands, .ci/run and scripts: one cargo target
# directory outside the clone (survives fresh clones on the same machine) and
# the SIMD flags candle's quantized kernels are compiled under, enabled only
# when this CPU has them (stock candle without AVX2/FMA runs 2.5-3x slower).
export TRESOR_CACHE="${TRESOR_CACHE:-$HOME/.cache/tresor}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$TRESOR_CACHE/target}"
if [ -z "${RUSTFLAGS:-}" ] && [ "$(uname -m)" = "x86_64" ] && [ -r /proc/cpuinfo ]; then
  _flags=$(grep -m1 '^flags' /proc/cpuinfo)
  _feat=""
  for f in sse3:sse3 ssse3:ssse3 sse4_1:sse4.1 sse4_2:sse4.2 popcnt:popcnt avx:avx avx2:avx2 fma:fma f16c:f16c bmi2:bmi2; do
    case " $_flags " in *" ${f%%:*} "*) _feat="$_feat,+${f#*:}";; esac
  done
  [ -n "$_feat" ] && export RUSTFLAGS="-C target-feature=${_feat#,}"
  unset _flags _feat f
fi
