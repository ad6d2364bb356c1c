#!/usr/bin/env bash
# scrub_bench.sh — the time to scrub the same amount of live data on raidfs (raidfs scrub) and on
# btrfs RAID6 (btrfs scrub start -B), on the same kind of members, in one run; prints MiB/s of
# live data and the ratio. A benchmark, not a test: run by hand, on a quiet machine.
#
#   bash tests/bench/scrub_bench.sh [BUILD_DIR]        (root; default BUILD_DIR=build)
#
# Both: six sparse image files of RAIDFS_BENCH_MEMBER (default 1G) on /dev/shm, RAID6 (btrfs:
# -d raid6 -m raid1c3 over loop devices with direct I/O), RAIDFS_BENCH_DATA (default 2G) of
# random data written in 1 MiB files of 64 MiB and synced, caches dropped, then the scrub timed.
# raidfs reads each chunk once (data and parity of every sealed stripe); btrfs's RAID56 scrub
# reads the data stripes several times (per device), which is what the ratio shows.
set -euo pipefail

BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
MEMBER=${RAIDFS_BENCH_MEMBER:-1G}
DATA=${RAIDFS_BENCH_DATA:-2G}
WORK=$(mktemp -d /dev/shm/raidfs-scrub-bench.XXXXXX)
META=$(mktemp -d /var/tmp/raidfs-scrub-bench-meta.XXXXXX)
LOOPS=()
cleanup() {
  set +e
  for mp in "$WORK"/mnt-*; do [ -d "$mp" ] && mountpoint -q "$mp" && umount "$mp"; done
  sleep 1
  for l in "${LOOPS[@]}"; do losetup -d "$l"; done
  rm -rf "$WORK" "$META"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "scrub_bench.sh: run as root (mounts)" >&2; exit 1; }

data_mib=$(numfmt --from=iec "$DATA" | awk '{ print int($1 / 1048576) }')
fill() {  # fill DIR: DATA of random data in 64 MiB files, synced
  local dir=$1 i
  for ((i = 0; i < data_mib / 64; i++)); do
    head -c 64M /dev/urandom >"$dir/f$i"
  done
  sync -f "$dir"
  echo 3 >/proc/sys/vm/drop_caches
}
seconds() { python3 -c "import time; print(time.monotonic())"; }

# --- raidfs -------------------------------------------------------------------------------------
for i in 0 1 2 3 4 5; do truncate -s "$MEMBER" "$WORK/r$i.img"; done
"$BUILD/utils/mkfs.raidfs" -q -f -l 6 -m "$META/r" "$WORK"/r{0..5}.img
mkdir -p "$WORK/mnt-raidfs"
"$BUILD/utils/mount.raidfs" "$META/r" "$WORK/mnt-raidfs"
fill "$WORK/mnt-raidfs"
t0=$(seconds)
"$BUILD/utils/raidfs" scrub --wait "$WORK/mnt-raidfs" >/dev/null
t1=$(seconds)
raidfs_line=$("$BUILD/utils/raidfs" status "$WORK/mnt-raidfs" | grep '^scrub:')
umount "$WORK/mnt-raidfs"
raidfs_s=$(python3 -c "print('%.2f' % ($t1 - $t0))")

# --- btrfs RAID6 --------------------------------------------------------------------------------
btrfs_s=-
if command -v mkfs.btrfs >/dev/null; then
  for i in 0 1 2 3 4 5; do
    truncate -s "$MEMBER" "$WORK/b$i.img"
    LOOPS+=("$(losetup --direct-io=on -f --show "$WORK/b$i.img")")
  done
  mkfs.btrfs -q -f -d raid6 -m raid1c3 "${LOOPS[@]}" >/dev/null
  mkdir -p "$WORK/mnt-btrfs"
  mount "${LOOPS[0]}" "$WORK/mnt-btrfs"
  fill "$WORK/mnt-btrfs"
  t0=$(seconds)
  btrfs scrub start -B "$WORK/mnt-btrfs" >/dev/null
  t1=$(seconds)
  btrfs_s=$(python3 -c "print('%.2f' % ($t1 - $t0))")
  umount "$WORK/mnt-btrfs"
fi

rate() { python3 -c "print('%.0f' % ($data_mib / $1) if '$1' != '-' else '-')"; }
printf '\n%-10s %12s %16s\n' target seconds 'MiB/s of data'
printf '%-10s %12s %16s\n' raidfs "$raidfs_s" "$(rate "$raidfs_s")"
printf '%-10s %12s %16s\n' btrfs "$btrfs_s" "$(rate "$btrfs_s")"
[ "$btrfs_s" != - ] && printf 'raidfs scrub is %sx btrfs scrub (time btrfs / time raidfs)\n' \
  "$(python3 -c "print('%.2f' % ($btrfs_s / $raidfs_s))")"
echo "raidfs: $raidfs_line"
