#!/bin/bash
# make test-ops, after tools/ops/setup.sh: the wheelhouses, then each molecule scenario, timed.
set -euo pipefail
python=$1
ops=${2:-.ops}
export PATH=$PWD/.venv-ops/bin:$PATH CONTAINERS_CONF=$PWD/$ops/containers.conf ANSIBLE_FORCE_COLOR=0 PY_COLORS=0

start=$SECONDS
tools/ops/wheelhouse.sh "$python"
tools/ops/rollout-wheelhouses.sh "$python" "$ops"
echo "test-ops: wheelhouses built in $((SECONDS - start)) s"
rm -rf "$ops/shared"
mkdir -m 0777 "$ops/shared"  # the rollout hosts' queue; not sticky: root's producer opens files the grid user made
for scenario in bake rollout; do
  start=$SECONDS
  if ! molecule test -s "$scenario" >"$ops/molecule-$scenario.log" 2>&1; then
    tail -n 60 "$ops/molecule-$scenario.log"
    echo "test-ops: molecule scenario $scenario failed after $((SECONDS - start)) s (log: $ops/molecule-$scenario.log)" >&2
    exit 1
  fi
  echo "test-ops: molecule scenario $scenario passed in $((SECONDS - start)) s"
done
