#!/bin/bash
# make lock: requirements.lock, the runtime dependencies of pyproject.toml and theirs, each pinned to the version pip
# picks today for CPython 3.11. The AMI's wheelhouse is built within it (tools/ops/wheelhouse.sh) and pip-audit
# checks it (make test-security), so what is audited is what is deployed.
set -euo pipefail
python=${1:-python3}
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
"$python" -m venv "$venv"
mapfile -t deps < <("$python" -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"], sep="\n")')
"$venv/bin/pip" install -q --disable-pip-version-check "${deps[@]}"
{
  echo "# The grid's runtime dependencies, pinned: made by make lock (tools/lock.sh) from pyproject.toml."
  "$venv/bin/pip" freeze --all --exclude pip --exclude setuptools --exclude wheel | LC_ALL=C sort -f
} >requirements.lock
echo "requirements.lock: $(grep -c '==' requirements.lock) packages"
