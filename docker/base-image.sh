#!/usr/bin/env bash
# Build the local base image (default flotilla-base:bookworm) that the Dockerfile starts from:
# a minimal Debian 12 from debootstrap with Python 3.11, venv and runc, imported into Docker.
# No registry is needed. An image already present under that tag is kept (pass --force to
# rebuild it); the Debian mirror is the one apt uses here, or $DEBIAN_MIRROR.
set -euo pipefail

TAG=${FLOTILLA_BASE_IMAGE:-flotilla-base:bookworm}
SUITE=bookworm
PACKAGES=python3,python3-venv,runc,ca-certificates

if [[ "${1:-}" != "--force" ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "$TAG: present"
  exit 0
fi

# The first Debian archive apt is configured with for this suite (one-line or deb822 format).
mirror() {
  local files=() f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.{list,sources}; do
    [[ -f "$f" ]] && files+=("$f")
  done
  ((${#files[@]})) || return 0
  awk -v suite="$SUITE" '
    /^deb / {  # deb [options] uri suite components
      for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) break
      if ($(i + 1) == suite) { print $i; exit }
    }
    /^URIs:/ { uri = $2 }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite && uri != "") { print uri; exit } }
    /^$/ { uri = "" }
  ' "${files[@]}" | head -n1
}
MIRROR=${DEBIAN_MIRROR:-$(mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

WORK=$(mktemp -d /var/tmp/flotilla-base.XXXXXX)
ROOTFS=$WORK/rootfs
# A debootstrap that failed half-way may leave /proc or /sys mounted in the tree: never descend.
trap 'umount -l "$ROOTFS/proc" "$ROOTFS/sys" 2>/dev/null || true; rm -rf --one-file-system "$WORK"' EXIT
echo "$TAG: debootstrap $SUITE from $MIRROR"
if ! debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" \
  >"$WORK/debootstrap.log" 2>&1; then
  tail -n 20 "$WORK/debootstrap.log" >&2
  exit 1
fi
# No package lists or downloaded packages in the image.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
  "$ROOTFS"/var/cache/apt/archives/*.deb
tar -C "$ROOTFS" --numeric-owner -c . \
  | docker import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$TAG" >/dev/null
echo "$TAG: built"
