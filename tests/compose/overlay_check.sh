# Mount overlayfs on the node's root volume, write through it, unmount (run inside snapshots).
set -eu
d=$(mktemp -d /var/lib/flotilla/overlay-check.XXXXXX)
trap 'umount "$d/merged" 2>/dev/null || true; rm -rf "$d"' EXIT
mkdir "$d/lower" "$d/upper" "$d/work" "$d/merged"
echo lower > "$d/lower/file"
mount -t overlay overlay -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" "$d/merged"
echo upper > "$d/merged/file"
umount "$d/merged"
echo "$(cat "$d/lower/file") $(cat "$d/upper/file")"
