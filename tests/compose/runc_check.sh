# Run one container with runc, its rootfs the tasks container's own /usr (run inside tasks).
set -eu
b=$(mktemp -d /var/lib/flotilla/runc-check.XXXXXX)
trap 'rm -rf "$b"' EXIT
mkdir -p "$b/rootfs/usr"
for d in bin lib lib64 sbin; do ln -s "usr/$d" "$b/rootfs/$d"; done
cd "$b"
runc spec
python3 - <<'PY'
import json

with open("config.json") as file:
    spec = json.load(file)
spec["process"]["terminal"] = False
spec["process"]["args"] = ["sh", "-c", "echo runc ran pid $$"]
spec["mounts"].append(
    {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]}
)
with open("config.json", "w") as file:
    json.dump(spec, file)
PY
runc run --bundle "$b" "runc-check-$$"
