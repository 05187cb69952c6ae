#!/bin/bash
# The rollout scenario's wheelhouses besides dist/wheelhouse (version A, from make wheel), all from this checkout:
# B (the same source as another version), and a broken B whose worker fails at start (its `grid --version` works,
# its unit's health check does not: the worker fails when it starts, not when its module is imported, since other
# commands import it). Built side by side: each is one compile of the kernel.
set -euo pipefail
python=$1
out=${2:-.ops}
version=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' grid/__init__.py)

GRID_VERSION=$version+b WHEELHOUSE=$out/wheelhouse-b tools/ops/wheelhouse.sh "$python" &
b=$!
broken=$(mktemp -d)
trap 'rm -rf "$broken"' EXIT
git ls-files -z -co --exclude-standard | xargs -0 cp --parents -t "$broken"
printf '\n\ndef main(argv=None):\n    raise ImportError("a broken build, for the rollout test")\n' \
  >>"$broken/grid/daemons/worker.py"
GRID_SRC=$broken GRID_VERSION=$version+broken WHEELHOUSE=$out/wheelhouse-broken tools/ops/wheelhouse.sh "$python"
wait $b
