#!/usr/bin/env bash
# Build fastbp with AddressSanitizer + UndefinedBehaviorSanitizer into a scratch
# directory and run the test suite (or the given pytest arguments) against it.
#   bash tools/sanitize.sh                 # whole suite
#   bash tools/sanitize.sh tests/test_network.py -k epoch
# Python itself is not instrumented, so leak detection is off; ASan still catches
# out-of-bounds reads and writes, use-after-free and UB in the kernels.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${FASTBP_SANITIZE_DIR:-$(pwd)/build/asan}"  # build/ is ignored by git
rm -rf "$out"
python -m pip install --quiet --no-deps --no-build-isolation --target "$out/site" \
    -Cbuild-dir="$out/build" -Ccmake.define.FASTBP_SANITIZE=ON -Ccmake.build-type=RelWithDebInfo .
asan="$(gcc -print-file-name=libasan.so)"
ubsan="$(gcc -print-file-name=libubsan.so)"
export LD_PRELOAD="$asan:$ubsan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export FASTBP_SANITIZED=1  # ASan's quarantine keeps freed memory: the RSS test skips
export PYTHONPATH="$out/site${PYTHONPATH:+:$PYTHONPATH}"
# An editable install of fastbp (pip install -e) hooks imports ahead of PYTHONPATH:
# drop that hook so the sanitized build is the one imported.
python - "$out" "${@:-tests}" <<'PY'
import sys

out, args = sys.argv[1], sys.argv[2:]
sys.meta_path[:] = [f for f in sys.meta_path if not type(f).__module__.startswith("_editable_")]
import fastbp  # noqa: E402

assert fastbp.__file__.startswith(out), f"not the sanitized build: {fastbp.__file__}"
print("sanitized fastbp:", fastbp.__file__, flush=True)
import pytest  # noqa: E402

sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", *args]))
PY
