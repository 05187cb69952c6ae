#!/bin/bash
# make wheel: the grid's wheel and a wheel of every runtime dependency in one directory (default dist/wheelhouse),
# for the machine it runs on: CPython 3.11 x86_64 on Debian 12, the AMI's base. The build runs on a copy of the
# checkout's files (tracked and new, not ignored), so it leaves no build products in the tree; GRID_VERSION builds
# that copy as another version (the rollout test's A and B from one source): grid/__init__.py holds the version and
# pyproject.toml reads it from there. GRID_SRC builds another tree instead of the checkout. The dependencies are the
# versions requirements.lock pins (make lock).
set -euo pipefail

python=${1:-.venv/bin/python}
out=${WHEELHOUSE:-dist/wheelhouse}
version=${GRID_VERSION:-}

copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
if [ -n "${GRID_SRC:-}" ]; then
  cp -a "$GRID_SRC/." "$copy"
else
  git ls-files -z -co --exclude-standard | xargs -0 cp --parents -t "$copy"
fi
if [ -n "$version" ]; then
  "$python" - "$version" <<'PY' || exit 2
import sys
from packaging.version import InvalidVersion, Version
try:
    Version(sys.argv[1])
except InvalidVersion:
    sys.exit(f"GRID_VERSION={sys.argv[1]!r}: not a version (PEP 440), e.g. 0.1.0+b")
PY
  sed -i "s/^__version__ = .*/__version__ = \"$version\"/" "$copy/grid/__init__.py"
fi
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$copy/grid/__init__.py")

rm -rf "$out"
mkdir -p "$out"
"$python" -m pip wheel -q --no-build-isolation --constraint "$copy/requirements.lock" --wheel-dir "$out" "$copy"
wheel=$(ls "$out"/grid-*.whl)
case "$(basename "$wheel")" in
  "grid-${version}-cp311-"*) ;;
  *) echo "make wheel: built $(basename "$wheel"), expected grid $version for CPython 3.11" >&2; exit 1 ;;
esac
echo "$out: grid $version and $(($(ls "$out"/*.whl | wc -l) - 1)) dependency wheels"
