#!/usr/bin/env bash
# Build the Flotilla image (default flotilla:dev, or $FLOTILLA_IMAGE) without any registry:
#   1. the local Debian base image (docker/base-image.sh; kept if present),
#   2. wheels of every distribution in this checkout and of their dependencies, built on this
#      host (where the package index is reachable and trusted) into docker/wheels/,
#   3. the image, installing only those wheels (no network inside the build).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${FLOTILLA_IMAGE:-flotilla:dev}
BASE=${FLOTILLA_BASE_IMAGE:-flotilla-base:bookworm}  # docker/base-image.sh reads it too
PYTHON=${PYTHON:-.venv/bin/python}
[[ -x "$PYTHON" ]] || PYTHON=python3
DISTRIBUTIONS=(libs/common libs/metadata services/content services/snapshots services/images services/tasks
  services/gateway cli)

docker/base-image.sh

# The image's Python is Debian 12's 3.11: wheels built for another version would not install.
version=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if [[ "$version" != 3.11 ]]; then
  echo "docker/build.sh: $PYTHON is Python $version; the image needs wheels for 3.11" >&2
  exit 1
fi

rm -rf docker/wheels
echo "$IMAGE: wheels"
# (pip's warnings about configured local indexes that lack a project are noise here.)
"$PYTHON" -m pip wheel -q --disable-pip-version-check --wheel-dir docker/wheels \
  "${DISTRIBUTIONS[@]/#/./}" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)

old=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
echo "$IMAGE: docker build"
# Quiet unless it fails: newer clients warn about the classic builder on every build.
if ! log=$(docker build -q --build-arg BASE="$BASE" -t "$IMAGE" . 2>&1); then
  echo "$log" >&2
  exit 1
fi
new=$(docker image inspect --format '{{.Id}}' "$IMAGE")
# The image this tag named before is left untagged: remove it unless a container still uses it.
if [[ -n "$old" && "$old" != "$new" ]]; then
  docker image rm "$old" >/dev/null 2>&1 || true
fi
echo "$IMAGE: built"
