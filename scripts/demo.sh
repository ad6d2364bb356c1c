#!/usr/bin/env bash
# The main job: installs what is missing, builds and installs raidfs (scripts/install.sh), makes
# a RAID6 array of six sparse image files (256 MiB each, under /var/tmp/raidfs-demo; the
# metadata on the images themselves, mirrored on three), mounts it at /mnt/raidfs with
# `mount -t raidfs` by the directory holding the images, copies files in,
# reads them back, shows df and the array's status, and leaves it mounted for you to use.
# Re-runnable: an earlier demo mount is unmounted and the array made afresh.
#
#   bash scripts/demo.sh              the filesystem demo (as root: FUSE, mounts)
#   bash scripts/demo.sh --engine ... the RAID engine demonstration without a mount
#                                     (build/utils/raidfs-demo; arguments go to it, see --help)
#
# Environment: RAIDFS_DEMO_DIR (the images; default /var/tmp/raidfs-demo),
# RAIDFS_DEMO_MOUNT (default /mnt/raidfs), RAIDFS_DEMO_SIZE (per image; default 256M).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh

if [[ ${1:-} == --engine ]]; then
  shift
  exec build/utils/raidfs-demo "$@"
fi

dir=${RAIDFS_DEMO_DIR:-/var/tmp/raidfs-demo}
mp=${RAIDFS_DEMO_MOUNT:-/mnt/raidfs}
size=${RAIDFS_DEMO_SIZE:-256M}
bin=build/utils
say() { printf '\n== %s\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (it mounts a FUSE filesystem of image files)"
[[ -c /dev/fuse ]] || die "no /dev/fuse (modprobe fuse)"
[[ -x $bin/mount.raidfs ]] || die "$bin/mount.raidfs was not built"

images=()
for i in 0 1 2 3 4 5; do images+=("$dir/m$i.img"); done

# An earlier demo still mounted: unmount it and wait until its daemon has let go of the images.
if mountpoint -q "$mp"; then
  fstype=$(findmnt -n -o FSTYPE --target "$mp" || true)
  [[ $fstype == *raidfs* ]] || die "$mp is mounted ($fstype), and not by raidfs: not touching it; set RAIDFS_DEMO_MOUNT"
  say "unmounting the earlier demo at $mp"
  umount "$mp"
fi
# users PATH...: the pids of processes holding any of the files open (fuser without psmisc).
users() {
  local args=() p
  for p; do args+=(-o -lname "$p"); done
  { find /proc/[0-9]*/fd \( "${args[@]:1}" \) 2>/dev/null || true; } | cut -d/ -f3 | sort -u | tr '\n' ' '
}
for ((t = 0; t < 200; t++)); do
  busy=$(users "${images[@]}")
  [[ -z $busy ]] && break
  sleep 0.1
done
[[ -z $busy ]] || die "the images in $dir are still in use (pids $busy)"

say "a RAID6 array: six sparse image files of $size in $dir, the metadata on them too"
mkdir -p "$dir" "$mp"
rm -rf "${images[@]}" "$dir/meta"  # (an older demo kept its metadata in $dir/meta)
truncate -s "$size" "${images[@]}"
$bin/mkfs.raidfs -f -l 6 -c 64K -L demo "${images[@]}"

say "mount -t raidfs $dir $mp"
mount -t raidfs "$dir" "$mp"
findmnt "$mp" || true

say "copying /usr/share/doc and the raidfs sources in"
start=$(date +%s.%N)
cp -a /usr/share/doc "$mp/doc"
mkdir "$mp/raidfs-src"
git ls-files -z 2>/dev/null | tar --null -T - -cf - | tar -xf - -C "$mp/raidfs-src" ||
  cp -a base raid meta fs utils tests docs meson.build README.md "$mp/raidfs-src/"
sync
end=$(date +%s.%N)
bytes=$(du -sb "$mp" | cut -f1)
awk -v b="$bytes" -v s="$start" -v e="$end" -v n="$(find "$mp" | wc -l)" \
  'BEGIN { printf "%d files, %.1f MiB in %.1f s (%.0f MiB/s, sync included)\n", n, b / 1048576, e - s, b / 1048576 / (e - s) }'

say "reading everything back"
echo 3 >/proc/sys/vm/drop_caches
if diff -r --no-dereference /usr/share/doc "$mp/doc" >/dev/null; then
  echo "/usr/share/doc reads back identical"
else
  die "$mp/doc differs from /usr/share/doc"
fi

say "df -h $mp"
df -h "$mp"

say "$bin/raidfs status $mp"
$bin/raidfs status "$mp" 2>/dev/null ||
  python3 -c 'import os, sys; sys.stdout.write(os.getxattr(sys.argv[1], "raidfs.status").decode())' "$mp"

cat <<EOF

raidfs is mounted at $mp (RAID6 over ${images[*]}).
Use it like any filesystem; see how it copes with a lost member:
  umount $mp; mv $dir/m2.img /var/tmp/raidfs-demo-m2.gone
  mount -t raidfs $dir $mp && raidfs status $mp
Unmount with:  umount $mp
Mount again:   mount -t raidfs $dir $mp
In /etc/fstab: $dir $mp raidfs defaults,nofail 0 0
The daemon logs to $(raidfs status "$mp" 2>/dev/null | sed -n 's/^log: //p' || echo syslog).
EOF
