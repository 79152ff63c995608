#!/usr/bin/env bash
# Builds native/sanitizer-check.cc with the GEMM and fused-kernel sources under AddressSanitizer
# + UndefinedBehaviorSanitizer, then ThreadSanitizer, and runs both. A
# developer check for changes to native/ (needs g++); not run by npm test. Any report
# stops the run with a failing status (UBSan recovers and exits 0 unless told not to).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
sources=("$here/native/sanitizer-check.cc" "$here/native/gemm.cc" "$here/native/fused.cc" "$here/native/thread-pool.cc")
g++ -std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all -I"$here/native" "${sources[@]}" -o "$out/asan" -lpthread
"$out/asan"
g++ -std=c++17 -O1 -g -fsanitize=thread -DCREAM_NO_TARGET_CLONES -I"$here/native" "${sources[@]}" -o "$out/tsan" -lpthread
"$out/tsan"
