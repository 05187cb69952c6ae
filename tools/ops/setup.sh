#!/bin/bash
# What `make test-ops` needs, installed here: podman, runc, debootstrap, zstd (apt-get, as root), the tool venv
# .venv-ops, podman's containers.conf for this machine kind, and the Debian 12 systemd image (cached). A prerequisite
# that cannot be had is one line on stderr and exit 1. `setup.sh lint` makes only the venv (the linters).
set -euo pipefail
what=${1:-all}
ops=${2:-.ops}
venv=.venv-ops
python=$(command -v python3.11 || command -v python3)

make_venv() {
  if [ ! -f "$venv/.installed" ] || [ tools/ops/requirements.txt -nt "$venv/.installed" ]; then
    mkdir -p "$ops"
    { "$python" -m venv "$venv" && "$venv/bin/pip" install -q -r tools/ops/requirements.txt; } >"$ops/pip.log" 2>&1 \
      || { echo "test-ops: pip install -r tools/ops/requirements.txt into $venv failed: see $ops/pip.log" >&2; exit 1; }
    touch "$venv/.installed"
  fi
}
make_venv
[ "$what" = lint ] && exit 0

missing=()
for tool in podman runc debootstrap zstd iptables; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "test-ops: ${missing[*]} missing and not root: run as root, or apt-get install podman runc iptables debootstrap zstd" >&2
    exit 1
  fi
  mkdir -p "$ops"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      podman runc iptables debootstrap zstd; } >"$ops/apt.log" 2>&1 \
    || { echo "test-ops: apt-get install podman runc iptables debootstrap zstd failed: see $ops/apt.log" >&2; exit 1; }
fi
if [ "$(id -u)" != 0 ]; then
  echo "test-ops: needs root (rootful podman runs the systemd containers; debootstrap builds their image)" >&2
  exit 1
fi

# Root cannot raise its open-file limit, and podman's default asks for more than the hard limit; crun refuses
# cgroups in hybrid mode, runc works.
mkdir -p "$ops"
cat >"$ops/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
CONTAINERS_CONF=$ops/containers.conf tools/ops/image.sh
