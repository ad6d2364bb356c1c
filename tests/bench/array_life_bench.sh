#!/usr/bin/env bash
# array_life_bench.sh — what an array's life costs, raidfs against btrfs RAID6 on the same kind of
# members in one run: scrub time, replace time (a member holding its share of the live data onto
# a new device), and 4 KiB randread IOPS of a foreground fio idle and during a rebuild. Prints a
# table with the ratios. A benchmark, not a test: run by hand, as root, on a quiet machine.
#
#   bash tests/bench/array_life_bench.sh [BUILD_DIR]        (default BUILD_DIR=build)
#
# Both: six sparse image files of RAIDFS_BENCH_MEMBER (default 2G: btrfs needs room for a second replace) on /dev/shm, RAID6 (btrfs:
# -d raid6 -m raid1c3 over loop devices with direct I/O), RAIDFS_BENCH_DATA (default 2G) of
# random data in 64 MiB files, synced, caches dropped before each timing. The foreground job:
# fio 4 KiB random reads, O_DIRECT, 4 psync threads over every file. raidfs replace copies data
# chunks from the old device (verified); its rebuild of a failed member rebuilds every chunk from
# the k others; btrfs has only replace: plain (copying) for the replace row, `-r` (rebuilding
# from the other devices) for the rebuild rows. "During a rebuild": raidfs rebuilds a failed
# member, btrfs replaces one with -r — each with no rate limit, fio running for 60% of the idle
# time so that it ends before they do. raidfs reads each chunk once (data and parity of every live stripe) and
# rebuilds only live stripes; btrfs's RAID56 scrub reads data stripes several times.
set -euo pipefail

BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
MEMBER=${RAIDFS_BENCH_MEMBER:-2G}
DATA=${RAIDFS_BENCH_DATA:-2G}
WORK=$(mktemp -d /dev/shm/raidfs-life-bench.XXXXXX)
META=$(mktemp -d /var/tmp/raidfs-life-bench-meta.XXXXXX)
LOOPS=()
cleanup() {
  set +e
  for mp in "$WORK"/mnt-*; do [ -d "$mp" ] && mountpoint -q "$mp" && umount "$mp"; done
  sleep 1
  for l in "${LOOPS[@]}"; do losetup -d "$l"; done
  rm -rf "$WORK" "$META"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "array_life_bench.sh: run as root (mounts)" >&2; exit 1; }
command -v fio >/dev/null || { echo "array_life_bench.sh: needs fio" >&2; exit 1; }

data_mib=$(numfmt --from=iec "$DATA" | awk '{ print int($1 / 1048576) }')
files=$((data_mib / 64))
fill() {  # fill DIR: DATA of random data in 64 MiB files, synced
  local dir=$1 i
  for ((i = 0; i < files; i++)); do head -c 64M /dev/urandom >"$dir/f$i"; done
  sync -f "$dir"
  echo 3 >/proc/sys/vm/drop_caches
}
seconds() { python3 -c "import time; print(time.monotonic())"; }
elapsed() { python3 -c "print('%.2f' % ($2 - $1))"; }
# randread DIR TIME: the foreground job's IOPS over TIME (fio units: 5s, 800ms).
randread() {
  local names i
  names=$(for ((i = 0; i < files; i++)); do printf '%s/f%d:' "$1" "$i"; done)
  fio --name=fg --filename="${names%:}" --rw=randread --bs=4k --direct=1 --ioengine=psync \
    --numjobs=4 --group_reporting --time_based --runtime="$2" --output-format=json 2>/dev/null |
    python3 -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["jobs"][0]["read"]["iops"])'
}
runtime_for() { python3 -c "print('%dms' % max(500, int($1 * 600)))"; }  # 60% of an idle run

# --- raidfs -------------------------------------------------------------------------------------
admin=$BUILD/utils/raidfs
for i in 0 1 2 3 4 5; do truncate -s "$MEMBER" "$WORK/r$i.img"; done
truncate -s "$MEMBER" "$WORK/r-new.img"
"$BUILD/utils/mkfs.raidfs" -q -f -l 6 -m "$META/r" "$WORK"/r{0..5}.img
mp=$WORK/mnt-raidfs
mkdir -p "$mp"
"$BUILD/utils/mount.raidfs" "$META/r" "$mp"
fill "$mp"
t0=$(seconds); "$admin" scrub --wait "$mp" >/dev/null; t1=$(seconds)
r_scrub=$(elapsed "$t0" "$t1")
r_idle=$(randread "$mp" 5s)
echo 3 >/proc/sys/vm/drop_caches
t0=$(seconds); "$admin" replace --wait "$mp" 2 "$WORK/r-new.img" >/dev/null; t1=$(seconds)
r_replace=$(elapsed "$t0" "$t1")
r_replace_line=$("$admin" status "$mp" | grep '^replace:')
# A failed member rebuilt in place: every chunk rebuilt from the k others (nothing to copy from).
"$admin" fail "$mp" 3 >/dev/null
echo 3 >/proc/sys/vm/drop_caches
t0=$(seconds); "$admin" rebuild --wait "$mp" 3 >/dev/null; t1=$(seconds)
r_rebuild=$(elapsed "$t0" "$t1")
"$admin" fail "$mp" 4 >/dev/null
echo 3 >/proc/sys/vm/drop_caches
t0=$(seconds)
"$admin" rebuild "$mp" 4 >/dev/null
r_busy=$(randread "$mp" "$(runtime_for "$r_rebuild")")
"$admin" status "$mp" | grep -q '^rebuild: member 4 running' && r_still=yes || r_still=no
while "$admin" status "$mp" | grep -q '^rebuild: member 4 running'; do sleep 0.1; done
t1=$(seconds)
r_rebuild_busy=$(elapsed "$t0" "$t1")
umount "$mp"

# --- btrfs RAID6 --------------------------------------------------------------------------------
b_scrub=- b_replace=- b_idle=- b_busy=- b_rebuild_busy=- b_still=- b_rebuild=-
if command -v mkfs.btrfs >/dev/null; then
  for i in 0 1 2 3 4 5 6 7; do
    truncate -s "$MEMBER" "$WORK/b$i.img"
    LOOPS+=("$(losetup --direct-io=on -f --show "$WORK/b$i.img")")
  done
  mkfs.btrfs -q -f -d raid6 -m raid1c3 "${LOOPS[@]:0:6}" >/dev/null
  mp=$WORK/mnt-btrfs
  mkdir -p "$mp"
  mount "${LOOPS[0]}" "$mp"
  fill "$mp"
  t0=$(seconds); btrfs scrub start -B "$mp" >/dev/null; t1=$(seconds)
  b_scrub=$(elapsed "$t0" "$t1")
  b_idle=$(randread "$mp" 5s)
  echo 3 >/proc/sys/vm/drop_caches
  t0=$(seconds); btrfs replace start -B -f 3 "${LOOPS[6]}" "$mp"; t1=$(seconds)
  b_replace=$(elapsed "$t0" "$t1")
  # A failed member's rebuild: btrfs has only replace; -r reads the old device only where no
  # other copy exists, so RAID6 data is rebuilt from the other devices (as raidfs's rebuild does).
  echo 3 >/proc/sys/vm/drop_caches
  t0=$(seconds); btrfs replace start -B -r -f 3 "${LOOPS[2]}" "$mp"; t1=$(seconds)
  b_rebuild=$(elapsed "$t0" "$t1")
  echo 3 >/proc/sys/vm/drop_caches
  t0=$(seconds)
  btrfs replace start -r -f 4 "${LOOPS[7]}" "$mp"
  b_busy=$(randread "$mp" "$(runtime_for "$b_replace")")
  btrfs replace status -1 "$mp" | grep -q -E 'finished|canceled' && b_still=no || b_still=yes
  while ! btrfs replace status -1 "$mp" | grep -q -E 'finished|canceled'; do sleep 0.1; done
  btrfs replace status -1 "$mp" | grep -q 'finished' || { echo "btrfs replace failed: $(btrfs replace status -1 "$mp")" >&2; b_busy=-; }
  t1=$(seconds)
  b_rebuild_busy=$(elapsed "$t0" "$t1")
  umount "$mp"
fi

ratio() { python3 -c "print('%.2f' % ($1 / $2) if '-' not in ('$1', '$2') else '-')"; }
printf '\n%d MiB of live data, RAID6 on six %s members (/dev/shm)\n' "$data_mib" "$MEMBER"
printf '%-40s %12s %12s %14s\n' measure raidfs btrfs 'raidfs/btrfs'
printf '%-40s %12s %12s %14s\n' 'scrub (s)' "$r_scrub" "$b_scrub" "$(ratio "$b_scrub" "$r_scrub")x faster"
printf '%-40s %12s %12s %14s\n' 'replace one member, idle (s)' "$r_replace" "$b_replace" "$(ratio "$b_replace" "$r_replace")x faster"
printf '%-40s %12s %12s %14s\n' 'rebuild a failed member, idle (s)' "$r_rebuild" "$b_rebuild" "$(ratio "$b_rebuild" "$r_rebuild")x faster"
printf '%-40s %12s %12s %14s\n' 'randread 4K IOPS, idle' "$r_idle" "$b_idle" "$(ratio "$r_idle" "$b_idle")"
printf '%-40s %12s %12s %14s\n' 'randread 4K IOPS, during a rebuild' "$r_busy" "$b_busy" "$(ratio "$r_busy" "$b_busy")"
printf '%-40s %12s %12s\n' '  share of the idle IOPS' "$(ratio "$r_busy" "$r_idle")" "$(ratio "$b_busy" "$b_idle")"
printf '%-40s %12s %12s\n' '  rebuild still running when fio ended' "$r_still" "$b_still"
printf '%-40s %12s %12s\n' '  rebuild time under that load (s)' "$r_rebuild_busy" "$b_rebuild_busy"
echo "raidfs: $r_replace_line"
