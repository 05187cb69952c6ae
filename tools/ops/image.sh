#!/bin/bash
# The Debian 12 systemd image molecule converges: debootstrap once, the root cached as a zstd tarball (dpkg is the
# slow part, so the finished root is what is kept), imported into podman. Rebuilt when the package list or the
# host's CA files change: the image's key (a hash of both) is its label and the tarball's name.
set -euo pipefail

IMAGE=${GRID_MOLECULE_IMAGE:-localhost/debian-systemd:12}
CACHE=${GRID_MOLECULE_CACHE:-/var/cache/grid-molecule}
SUITE=bookworm
# python3-packaging: ansible's pip module needs it; logrotate, python3-venv: what the grid role installs (present in
# the image so converge needs no apt-get update); sudo: become to the grid user.
PACKAGES=systemd,systemd-sysv,dbus,python3,python3-venv,python3-apt,python3-packaging,ca-certificates,iproute2,logrotate,sudo,procps
CAS=(/usr/local/share/ca-certificates/*.crt)

key=$( { echo "$SUITE $PACKAGES"; cat "${CAS[@]}" 2>/dev/null; } | sha256sum | cut -c1-16)
tarball="$CACHE/debian-$SUITE-systemd-$key.tar.zst"

if [ "$(podman image inspect --format '{{ index .Labels "grid.image-key" }}' "$IMAGE" 2>/dev/null)" = "$key" ]; then
  exit 0
fi
if [ ! -s "$tarball" ]; then
  echo "building $IMAGE with debootstrap (once, cached in $tarball)"
  mkdir -p "$CACHE"
  root=$(mktemp -d "$CACHE/root.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" >"$CACHE/debootstrap.log" 2>&1 \
    || { echo "debootstrap failed: see $CACHE/debootstrap.log" >&2; exit 1; }
  if [ -e "${CAS[0]}" ]; then
    cp "${CAS[@]}" "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
  fi
  chroot "$root" apt-get clean
  # Every container would share the machine id dbus wrote during debootstrap: systemd makes a new one when it's empty.
  : >"$root/etc/machine-id"
  ln -sf /etc/machine-id "$root/var/lib/dbus/machine-id"
  tar -C "$root" -c . | zstd -q -T0 -o "$tarball.tmp"
  mv "$tarball.tmp" "$tarball"
  find "$CACHE" -maxdepth 1 -name "debian-$SUITE-systemd-*.tar.zst" ! -name "$(basename "$tarball")" -delete
fi
zstd -dc "$tarball" | podman import --quiet --change 'CMD ["/sbin/init"]' --change "LABEL grid.image-key=$key" - "$IMAGE" >/dev/null
echo "imported $IMAGE ($key)"
