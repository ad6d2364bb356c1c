#!/usr/bin/env bash
# cleaner_bench.sh — sustained 4 KiB random overwrites of a file filling 50%, 80% and 90% of an
# array: IOPS at steady state and write amplification, raidfs (with its cleaner) against btrfs
# RAID6 on the same kind of members, in one run. A benchmark, not a test: run by hand, alone on
# the machine.
#
#   bash tests/bench/cleaner_bench.sh [BUILD_DIR]        (root; default BUILD_DIR=build)
#
# Members: 6 loop devices over images on /dev/shm (tmpfs), so that both targets' member writes
# are counted the same way, by the block layer (/sys/block/loopN/stat). For each fill: a fresh
# array, the file written sequentially, one capacity of random overwrites to reach the steady
# state (not measured), then RAIDFS_CLEANER_BENCH_RUNTIME seconds (default 20) measured:
#   IOPS        fio's, 4 KiB randwrite, psync, fsync every 64 writes (a database-like load)
#   member WA   bytes the members took / bytes fio wrote, in the measured window (parity, the
#               cleaner's moves and metadata included; RAID6 of 6 alone makes it 1.5)
#   cleaner WA  raidfs only: (user + moved) / user bytes, from `raidfs status --json` (data only)
# Environment: RAIDFS_CLEANER_BENCH_MEMBER (image size, default 256M: 1 GiB of data),
# RAIDFS_CLEANER_BENCH_FILLS (default "10 50 80 90 80z": 10% is the baseline, the cleaner idle;
# a z after a fill skews the overwrites, 90% of them to 10% of the file — fio's
# random_distribution=zoned:90/10:10/90 — where keeping moved (cold) data apart from fresh
# writes pays), RAIDFS_BENCH_BTRFS=0 skips btrfs.
set -euo pipefail

BUILD=$(cd "${1:-build}" && pwd)
MEMBER=${RAIDFS_CLEANER_BENCH_MEMBER:-256M}
RUNTIME=${RAIDFS_CLEANER_BENCH_RUNTIME:-20}
FILLS=${RAIDFS_CLEANER_BENCH_FILLS:-10 50 80 90 80z}
WORK=$(mktemp -d /dev/shm/raidfs-cleaner-bench.XXXXXX)
META=$(mktemp -d /var/tmp/raidfs-cleaner-bench-meta.XXXXXX)
MP=$WORK/mnt
LOOPS=()

detach_loops() {
  for l in "${LOOPS[@]}"; do losetup -d "$l"; done
  LOOPS=()
}
cleanup() {
  set +e
  mountpoint -q "$MP" && umount "$MP"
  sleep 1
  detach_loops
  rm -rf "$WORK" "$META"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "cleaner_bench.sh: run as root (mounts)" >&2; exit 1; }
command -v fio >/dev/null || { echo "cleaner_bench.sh: fio is missing (scripts/deps.sh)" >&2; exit 1; }
mkdir -p "$MP"

# Fresh images and loop devices over them.
make_members() {
  detach_loops
  rm -f "$WORK"/m*.img
  for i in 0 1 2 3 4 5; do
    truncate -s "$MEMBER" "$WORK/m$i.img"
    LOOPS+=("$(losetup -f --show "$WORK/m$i.img")")
  done
}
# Sectors the members have taken since they were set up.
member_sectors() {
  local l total=0
  for l in "${LOOPS[@]}"; do total=$((total + $(awk '{ print $7 }' "/sys/block/${l#/dev/}/stat"))); done
  echo "$total"
}
cleaner_json() { "$BUILD/utils/raidfs" status --json "$MP" | python3 -c "import json, sys; c = json.load(sys.stdin)['cleaner']; print(c['user_bytes_written'], c['bytes_moved'])"; }

declare -A RESULT
# run TARGET FILL: fill, precondition, measure; RESULT[TARGET,FILL]="IOPS MEMBER_WA CLEANER_WA".
run() {
  local target=$1 fill=$2 capacity size log=$WORK/fio.log skew=()
  [[ $fill == *z ]] && skew=(--random_distribution=zoned:90/10:10/90)
  capacity=$(stat -f -c '%b' "$MP")
  size=$((capacity * ${fill%z} / 100 * 4096 / 1048576))M
  # A target that runs out of space (btrfs RAID6 may, under overwrites) is reported as such.
  if ! fio --name=fill --filename="$MP/db" --rw=write --bs=1M --size="$size" --ioengine=psync \
      --end_fsync=1 --output=/dev/null ||
    ! fio --name=pre --filename="$MP/db" --rw=randwrite --bs=4k --size="$size" \
      --io_size=$((capacity * 4096 / 1048576))M --ioengine=psync --fsync=64 --norandommap \
      "${skew[@]}" --output=/dev/null; then
    RESULT[$target,$fill]="ENOSPC - -"
    echo "  $target at $fill% full: failed before the measurement (ENOSPC?)" >&2
    return
  fi
  local sectors0 user0=0 moved0=0 user1=0 moved1=0
  sectors0=$(member_sectors)
  [ "$target" = raidfs ] && read -r user0 moved0 < <(cleaner_json)
  if ! fio --name=db --filename="$MP/db" --rw=randwrite --bs=4k --size="$size" --ioengine=psync \
      --fsync=64 --norandommap "${skew[@]}" --time_based --runtime="$RUNTIME" --output-format=json \
      --output="$log"; then
    RESULT[$target,$fill]="ENOSPC - -"
    echo "  $target at $fill% full: failed in the measurement (ENOSPC?)" >&2
    return
  fi
  sync -f "$MP/db"
  local sectors1 written iops
  sectors1=$(member_sectors)
  [ "$target" = raidfs ] && read -r user1 moved1 < <(cleaner_json)
  read -r iops written < <(python3 -c "import json; j = json.load(open('$log'))['jobs'][0]['write']; print(int(j['iops']), j['io_bytes'])")
  local member_wa cleaner_wa=-
  member_wa=$(awk -v s=$((sectors1 - sectors0)) -v w="$written" 'BEGIN { printf "%.2f", s * 512 / w }')
  if [ "$target" = raidfs ]; then
    cleaner_wa=$(awk -v u=$((user1 - user0)) -v m=$((moved1 - moved0)) 'BEGIN { printf "%.2f", u ? (u + m) / u : 0 }')
  fi
  RESULT[$target,$fill]="$iops $member_wa $cleaner_wa"
  echo "  $target at $fill% full: $iops IOPS, member WA $member_wa, cleaner WA $cleaner_wa" >&2
}

for fill in $FILLS; do
  make_members
  "$BUILD/utils/mkfs.raidfs" -q -f -l 6 -c 64K -m "$META/r$fill" "${LOOPS[@]}"
  "$BUILD/utils/mount.raidfs" "$META/r$fill" "$MP"
  run raidfs "$fill"
  umount "$MP"
  sleep 1
  if [ "${RAIDFS_BENCH_BTRFS:-1}" != 0 ] && command -v mkfs.btrfs >/dev/null; then
    make_members
    mkfs.btrfs -q -f -d raid6 -m raid1c3 "${LOOPS[@]}" >/dev/null
    mount "${LOOPS[0]}" "$MP"
    run btrfs "$fill"
    umount "$MP"
  fi
done

printf '\n4 KiB randwrite, fsync every 64, psync; %s members x 6 (RAID6), %s s measured after one capacity of overwrites\n' "$MEMBER" "$RUNTIME"
printf '%-10s %14s %10s %10s %14s %10s %12s\n' fill raidfs-IOPS member-WA cleaner-WA btrfs-IOPS member-WA raidfs/btrfs
for fill in $FILLS; do
  read -r ri rw rc <<<"${RESULT[raidfs,$fill]}"
  bi=- bw=- ratio=-
  if [ -n "${RESULT[btrfs,$fill]:-}" ]; then
    read -r bi bw _ <<<"${RESULT[btrfs,$fill]}"
    [[ $ri =~ ^[0-9]+$ && $bi =~ ^[0-9]+$ ]] && ratio=$(awk -v a="$ri" -v b="$bi" 'BEGIN { printf "%.2f", b ? a / b : 0 }')
  fi
  label="${fill%z}%"
  [[ $fill == *z ]] && label="$label 90/10"
  printf '%-10s %14s %10s %10s %14s %10s %12s\n' "$label" "$ri" "$rw" "$rc" "$bi" "$bw" "$ratio"
done
