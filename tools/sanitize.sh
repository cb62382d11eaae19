#!/usr/bin/env bash
# Build fastbp with AddressSanitizer + UndefinedBehaviorSanitizer into a scratch
# directory and run the test suite (or the given pytest arguments) against it.
#   bash tools/sanitize.sh                 # whole suite
#   bash tools/sanitize.sh tests/test_network.py -k epoch
# Python itself is not instrumented, so leak detection is off; ASan still catches
# out-of-bounds reads and writes, use-after-free and UB in the kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${FASTBP_SANITIZE_DIR:-/tmp/fastbp-asan}"
rm -rf "$out"
python -m pip install --quiet --no-deps --no-build-isolation --target "$out/site" \
    -Cbuild-dir="$out/build" -Ccmake.define.FASTBP_SANITIZE=ON -Ccmake.build-type=RelWithDebInfo .
asan="$(gcc -print-file-name=libasan.so)"
ubsan="$(gcc -print-file-name=libubsan.so)"
export LD_PRELOAD="$asan:$ubsan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONPATH="$out/site${PYTHONPATH:+:$PYTHONPATH}"
python -c "import fastbp, sys; assert fastbp.__file__.startswith('$out'), fastbp.__file__; print('sanitized fastbp:', fastbp.__file__)"
python -m pytest -q -p no:cacheprovider "${@:-tests}"
