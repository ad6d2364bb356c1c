#!/usr/bin/env bash
# fs_bench.sh — fio on a mounted raidfs (over each FUSE transport), on the raw member medium, and
# on btrfs RAID over the same kind of members, in one run; prints a table with ratios. A
# benchmark, not a test: run by hand.
#
#   bash tests/bench/fs_bench.sh [BUILD_DIR]        (root; default BUILD_DIR=build)
#
# Members are sparse image files on /dev/shm (tmpfs), so the software is what is measured, not a
# disk. Targets:
#   raw       fio on a file in /dev/shm itself (the members' medium: the ceiling)
#   pt-ll     libfuse's passthrough_ll example (built from Debian's libfuse3-dev examples) over a
#             /dev/shm directory, classic /dev/fuse, -o writeback: a FUSE filesystem that does
#             nothing but pass requests on
#   pt-hp     libfuse's passthrough_hp (≥ 3.18) --nopassthrough -o io_uring over /dev/shm, when
#             RAIDFS_BENCH_PASSTHROUGH_HP names its binary (build libfuse outside this tree:
#             meson setup build -Dexamples=true && ninja -C build): the FUSE-over-io_uring ceiling
#   raidfs-T  RAID6, 6 members, 64 KiB chunks, mounted with mount.raidfs -o transport=T, for each T
#             in RAIDFS_BENCH_TRANSPORTS (default "uring uring@region classic"); each on a fresh
#             array, its metadata in a directory on the members' medium (/dev/shm), or with
#             @region on the members themselves (a self-contained array: mkfs without -m)
#   btrfs     btrfs -d raid6 -m raid1c3 over 6 loop devices (direct I/O) on the same kind of images
# Environment: RAIDFS_BENCH_SIZE (file size, default 512M), RAIDFS_BENCH_RUNTIME (seconds per
# time-based job, default 5), RAIDFS_BENCH_TRANSPORTS (each T[@region][:MOUNT_OPTIONS], e.g.
# "uring uring:uring_threads=1 classic"), RAIDFS_BENCH_JOBS (a subset of the jobs below),
# RAIDFS_BENCH_BTRFS=0 (skip btrfs), RAIDFS_BENCH_WARM_MIB (memory touched before the first
# target, default 4096), RAIDFS_BENCH_ROUNDS (default 3: the raidfs targets run that many
# times, in turn, each round starting with the next transport; raw and btrfs run once).
# RAIDFS_BENCH_PASSTHROUGH=0 skips both passthroughs.
# Cells: IOPS (4 KiB jobs, with the median completion latency) or MiB/s, and for raidfs the
# daemon's CPU seconds (user + system, all threads) per GiB moved — for raidfs, of the round with
# the median throughput (this VM varies ±10% from run to run, and whichever target runs first
# may write at a third of its speed). Ratios: raidfs/raw and raidfs/btrfs for the first raidfs
# transport; raidfs/pt-ll and raidfs/pt-hp (each raidfs transport against the passthrough of the
# same kind: classic against pt-ll, uring against pt-hp); uring/classic for throughput and CPU
# per GiB, then each round's uring/classic.
# After the table: each raidfs mount's transport line and user-space copy counters.
set -euo pipefail

BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
SIZE=${RAIDFS_BENCH_SIZE:-512M}
RUNTIME=${RAIDFS_BENCH_RUNTIME:-5}
TRANSPORTS=${RAIDFS_BENCH_TRANSPORTS:-uring uring@region classic}
ROUNDS=${RAIDFS_BENCH_ROUNDS:-3}
WORK=$(mktemp -d /dev/shm/raidfs-bench.XXXXXX)
META=$(mktemp -d /dev/shm/raidfs-bench-meta.XXXXXX)  # the members' medium
LOOPS=()

cleanup() {
  set +e
  for mp in "$WORK"/mnt-*; do
    [ -d "$mp" ] && mountpoint -q "$mp" && umount "$mp"
  done
  sleep 1
  for l in "${LOOPS[@]}"; do losetup -d "$l"; done
  rm -rf "$WORK" "$META"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "fs_bench.sh: run as root (mounts)" >&2; exit 1; }
command -v fio >/dev/null || { echo "fs_bench.sh: fio is missing (scripts/deps.sh)" >&2; exit 1; }

# job name → fio arguments. Reads and random writes use O_DIRECT so that they reach the daemon
# instead of the page cache.
ALL_JOBS=(seqwrite-1M seqwrite-1M-4jobs seqread-1M randread-4K-qd1 randread-4K-qd1-cpu0
          randread-4K-qd32 randwrite-4K-qd16 randrw-4K-qd32 randwrite-4K-fdatasync)
SIZE_BYTES=$(numfmt --from=iec "$SIZE")
read -r -a JOBS <<<"${RAIDFS_BENCH_JOBS:-${ALL_JOBS[*]}}"
job_args() {
  case $1 in
    seqwrite-1M) echo "--rw=write --bs=1M --ioengine=psync --end_fsync=1" ;;
    # Four writers, each on its own file of a quarter of the size: the aggregate.
    seqwrite-1M-4jobs) echo "--rw=write --bs=1M --ioengine=psync --end_fsync=1 --numjobs=4 --group_reporting --size=$((SIZE_BYTES / 4))" ;;
    seqread-1M) echo "--rw=read --bs=1M --ioengine=psync --direct=1 --time_based --runtime=$RUNTIME" ;;
    randread-4K-qd1) echo "--rw=randread --bs=4k --ioengine=psync --direct=1 --time_based --runtime=$RUNTIME" ;;
    # The same, with fio held on CPU 0: the scheduler cannot move it between CPUs (see README).
    randread-4K-qd1-cpu0) echo "--rw=randread --bs=4k --ioengine=psync --direct=1 --cpus_allowed=0 --time_based --runtime=$RUNTIME" ;;
    randread-4K-qd32) echo "--rw=randread --bs=4k --ioengine=libaio --iodepth=32 --direct=1 --time_based --runtime=$RUNTIME" ;;
    randwrite-4K-qd16) echo "--rw=randwrite --bs=4k --ioengine=libaio --iodepth=16 --direct=1 --time_based --runtime=$RUNTIME" ;;
    # Reads and writes mixed half and half (a database's pages): IOPS are the two together.
    randrw-4K-qd32) echo "--rw=randrw --rwmixread=50 --bs=4k --ioengine=libaio --iodepth=32 --direct=1 --time_based --runtime=$RUNTIME" ;;
    # A database's log: buffered 4 KiB writes, each made durable with fdatasync.
    randwrite-4K-fdatasync) echo "--rw=randwrite --bs=4k --ioengine=psync --fdatasync=1 --time_based --runtime=$RUNTIME" ;;
    *) echo "fs_bench.sh: unknown job $1" >&2; exit 1 ;;
  esac
}

declare -A RESULT CPU NOTE
cpu_ticks() { [ -n "${1:-}" ] && awk '{print $14 + $15}' "/proc/$1/stat" || echo 0; }
status_of() { python3 -c 'import os, sys; print(os.getxattr(sys.argv[1], "raidfs.status").decode(), end="")' "$1"; }

# run_target NAME DIR [DAEMON_PID]
run_target() {
  local name=$1 dir=$2 pid=${3:-}
  # Lay the file out once so reads have data.
  fio --name=layout --directory="$dir" --filename=bench.dat --size="$SIZE" --rw=write --bs=1M \
      --end_fsync=1 --output-format=terse >/dev/null
  for job in "${JOBS[@]}"; do
    sync; echo 3 > /proc/sys/vm/drop_caches
    local before after out
    before=$(cpu_ticks "$pid")
    local file=(--filename=bench.dat)
    [[ $job == *-4jobs ]] && file=()  # a file per job
    # shellcheck disable=SC2046
    out=$(fio --name="$job" --directory="$dir" "${file[@]}" --size="$SIZE" \
              $(job_args "$job") --output-format=json)
    [[ $job == *-4jobs ]] && rm -f "$dir/$job".*
    after=$(cpu_ticks "$pid")
    # iops, MiB/s, bytes moved, median completion latency (µs): reads and writes together (a
    # mixed job), the median the larger of the two
    RESULT[$name,$job]=$(python3 -c '
import json, sys
j = json.loads(sys.stdin.read())["jobs"][0]
sides = [j[d] for d in ("read", "write") if j[d]["io_bytes"]]
p50 = max(s.get("clat_ns", {}).get("percentile", {}).get("50.000000", 0) for s in sides) / 1000
print("%.0f %.1f %d %.0f" % (sum(s["iops"] for s in sides), sum(s["bw_bytes"] for s in sides) / 1048576,
                             sum(s["io_bytes"] for s in sides), p50))' <<<"$out")
    local bytes
    read -r _ _ bytes _ <<<"${RESULT[$name,$job]}"
    if [ -n "$pid" ] && [ "$bytes" -gt 0 ]; then
      CPU[$name,$job]=$(python3 -c "print('%.2f' % (($after - $before) / $(getconf CLK_TCK) / ($bytes / 2**30)))")
    else
      CPU[$name,$job]="-"
    fi
  done
}

mkimages() {  # mkimages PREFIX COUNT BYTES
  local i
  for i in $(seq 0 $(($2 - 1))); do truncate -s "$3" "$WORK/$1$i.img"; done
}

# --- warm-up ---------------------------------------------------------------------------------
# Memory this VM's guest has not touched yet (or gave back to the host) costs a fault in the host
# on first use: whichever target came first wrote at a third of its speed (seqwrite-1M 250 MiB/s
# against 700 in the same run, for any transport placed first). Touching as much memory as the
# targets will use, once, puts them all on the same footing.
WARM_MIB=${RAIDFS_BENCH_WARM_MIB:-4096}
dd if=/dev/zero of="$WORK/warm" bs=1M count="$WARM_MIB" status=none 2>/dev/null || true
rm -f "$WORK/warm"

# --- raw ---------------------------------------------------------------------------------------
mkdir -p "$WORK/raw"
run_target raw "$WORK/raw"
rm -f "$WORK/raw/bench.dat"
TARGETS=(raw)
RAIDFS=()

# --- passthroughs: the FUSE ceiling over the same medium ---------------------------------------
# run_passthrough NAME PROGRAM ARGS...: mounts $WORK/mnt-NAME over $WORK/src-NAME and runs the
# jobs. The program detaches; its pid is found by the mount point on its command line.
run_passthrough() {
  local name=$1 pid
  shift
  mkdir -p "$WORK/src-$name" "$WORK/mnt-$name"
  "$@" || { echo "fs_bench.sh: $name did not mount" >&2; return 1; }
  for _ in $(seq 50); do mountpoint -q "$WORK/mnt-$name" && break; sleep 0.1; done
  pid=$(pgrep -f -- "$1.*$WORK/mnt-$name" | head -1)
  run_target "$name" "$WORK/mnt-$name" "$pid"
  umount "$WORK/mnt-$name"
  rm -rf "$WORK/src-$name"
  TARGETS+=("$name")
}
if [ "${RAIDFS_BENCH_PASSTHROUGH:-1}" != 0 ]; then
  examples=/usr/share/doc/libfuse3-dev/examples
  if [ -f $examples/passthrough_ll.c ] &&
     gcc -O2 -I$examples -o "$WORK/passthrough_ll" $examples/passthrough_ll.c \
       $(pkg-config fuse3 --cflags --libs) 2>/dev/null; then
    run_passthrough pt-ll "$WORK/passthrough_ll" -o "source=$WORK/src-pt-ll,writeback,allow_other" "$WORK/mnt-pt-ll"
  else
    echo "fs_bench.sh: passthrough_ll not built (libfuse3-dev's examples missing?): no pt-ll" >&2
  fi
  if [ -n "${RAIDFS_BENCH_PASSTHROUGH_HP:-}" ]; then
    echo Y >/sys/module/fuse/parameters/enable_uring 2>/dev/null || true
    run_passthrough pt-hp "$RAIDFS_BENCH_PASSTHROUGH_HP" --nopassthrough -o io_uring,allow_other \
      "$WORK/src-pt-hp" "$WORK/mnt-pt-hp"
  fi
fi

# --- raidfs, per transport, in rounds ----------------------------------------------------------
# run_raidfs SPEC NAME: a fresh array mounted with transport SPEC (T or T:OPTIONS, e.g.
# uring:uring_threads=1), the jobs, and the status lines that say what served them.
run_raidfs() {
  local spec=$1 name=$2 t extra= pid source
  [[ $spec == *:* ]] && extra=",${spec#*:}"
  t=$(tr -c 'A-Za-z0-9\n' '-' <<<"$spec")  # a distinct directory per spec
  mkimages "r$t" 6 1G
  if [[ $spec == *@region* ]]; then
    "$BUILD/utils/mkfs.raidfs" -q -f -l 6 "$WORK"/r"$t"{0..5}.img
    source=$(printf '%s,' "$WORK"/r"$t"{0..5}.img)
    source=${source%,}
  else
    "$BUILD/utils/mkfs.raidfs" -q -f -l 6 -m "$META/$t" "$WORK"/r"$t"{0..5}.img
    source=$META/$t
  fi
  mkdir -p "$WORK/mnt-$t"
  # async_dio: the jobs are O_DIRECT only, so libaio's requests may stay in flight (raidfs's
  # default keeps buffered readers coherent instead: README, docs/decisions.md).
  local transport=${spec%%:*}
  "$BUILD/utils/mount.raidfs" "$source" "$WORK/mnt-$t" -o "transport=${transport%@region},async_dio$extra"
  pid=$(pgrep -f "mount.raidfs $source " | head -1)
  run_target "$name" "$WORK/mnt-$t" "$pid"
  # Which transport really served (a requested uring may have fallen back), and the copies.
  NOTE[$name]=$(status_of "$WORK/mnt-$t" | grep -E "^(transport|uring_requests|uring_requests_by_helpers|uring_placement|classic_requests|bytes_copied_read|bytes_copied_write|bytes_direct_write|seal_waits|metadata):" | tr '\n' ';' | sed 's/;$//; s/;/; /g')
  umount "$WORK/mnt-$t"
  for _ in $(seq 50); do pgrep -f "mount.raidfs $source " >/dev/null || break; sleep 0.2; done
  rm -rf "$WORK"/r"$t"*.img "${META:?}/$t"
}

read -r -a SPECS <<<"$TRANSPORTS"
for ((round = 0; round < ROUNDS; ++round)); do
  for ((k = 0; k < ${#SPECS[@]}; ++k)); do
    spec=${SPECS[(k + round) % ${#SPECS[@]}]}
    run_raidfs "$spec" "raidfs-$spec#$round"
  done
done
# Each raidfs cell: the round with the median MiB/s.
for spec in "${SPECS[@]}"; do
  name="raidfs-$spec"
  for job in "${JOBS[@]}"; do
    median=$(for ((r = 0; r < ROUNDS; ++r)); do
               read -r _ mib _ <<<"${RESULT[$name#$r,$job]}"; echo "$mib $r"
             done | sort -g | awk '{ a[NR] = $2 } END { print a[int((NR + 1) / 2)] }')
    RESULT[$name,$job]=${RESULT[$name#$median,$job]}
    CPU[$name,$job]=${CPU[$name#$median,$job]}
  done
  NOTE[$name]=${NOTE[$name#$((ROUNDS - 1))]}
  TARGETS+=("$name")
  RAIDFS+=("$name")
done

# --- btrfs RAID6 over loop devices ---------------------------------------------------------------
if [ "${RAIDFS_BENCH_BTRFS:-1}" != 0 ] && command -v mkfs.btrfs >/dev/null; then
  mkimages b 6 1G
  for i in 0 1 2 3 4 5; do LOOPS+=("$(losetup --direct-io=on -f --show "$WORK/b$i.img")"); done
  mkfs.btrfs -q -f -d raid6 -m raid1c3 "${LOOPS[@]}" >/dev/null
  mkdir -p "$WORK/mnt-btrfs"
  mount "${LOOPS[0]}" "$WORK/mnt-btrfs"
  run_target btrfs "$WORK/mnt-btrfs"
  umount "$WORK/mnt-btrfs"
  TARGETS+=(btrfs)
fi

# --- table ------------------------------------------------------------------------------------------
ratio() { python3 -c "print('%.2f' % ($1 / $2) if $2 else '-')"; }
have_uc=0
[[ -n ${RESULT[raidfs-uring,${JOBS[0]}]:-} && -n ${RESULT[raidfs-classic,${JOBS[0]}]:-} ]] && have_uc=1
printf '\n%-24s' job
for t in "${TARGETS[@]}"; do printf ' %26s' "$t"; done
printf '  raidfs/raw  raidfs/btrfs'
have_ll=0 have_hp=0
[[ -n ${RESULT[pt-ll,${JOBS[0]}]:-} && -n ${RESULT[raidfs-classic,${JOBS[0]}]:-} ]] && have_ll=1 && printf '  classic/pt-ll'
[[ -n ${RESULT[pt-hp,${JOBS[0]}]:-} && -n ${RESULT[raidfs-uring,${JOBS[0]}]:-} ]] && have_hp=1 && printf '  uring/pt-hp'
((have_uc)) && printf '  uring/classic  cpu u/c'
have_region=0
[[ -n ${RESULT[raidfs-uring@region,${JOBS[0]}]:-} && -n ${RESULT[raidfs-uring,${JOBS[0]}]:-} ]] && have_region=1 &&
  printf '  region/dir'
printf '\n'
for job in "${JOBS[@]}"; do
  printf '%-24s' "$job"
  for t in "${TARGETS[@]}"; do
    read -r iops mib _ p50 <<<"${RESULT[$t,$job]}"
    cpu=${CPU[$t,$job]:-}
    if [[ $job == *4K* ]]; then cell="${iops} IOPS ${p50}us"; else cell="${mib} MiB/s"; fi
    [ -n "$cpu" ] && [ "$cpu" != "-" ] && cell="$cell ${cpu}s/GiB"
    printf ' %26s' "$cell"
  done
  # Throughput: IOPS for the 4 KiB jobs, MiB/s for the others (the same ratio either way).
  first=${RAIDFS[0]:-}
  if [ -n "$first" ]; then
    read -r _ a _ <<<"${RESULT[$first,$job]}"; read -r _ r _ <<<"${RESULT[raw,$job]}"
    b=0; [ -n "${RESULT[btrfs,$job]:-}" ] && read -r _ b _ <<<"${RESULT[btrfs,$job]}"
    printf '  %10s  %12s' "$(ratio "$a" "$r")" "$(ratio "$a" "$b")"
  fi
  if ((have_ll)); then
    read -r _ a _ <<<"${RESULT[raidfs-classic,$job]}"; read -r _ p _ <<<"${RESULT[pt-ll,$job]}"
    printf '  %13s' "$(ratio "$a" "$p")"
  fi
  if ((have_hp)); then
    read -r _ a _ <<<"${RESULT[raidfs-uring,$job]}"; read -r _ p _ <<<"${RESULT[pt-hp,$job]}"
    printf '  %11s' "$(ratio "$a" "$p")"
  fi
  if ((have_uc)); then
    read -r _ u _ <<<"${RESULT[raidfs-uring,$job]}"; read -r _ c _ <<<"${RESULT[raidfs-classic,$job]}"
    cu=${CPU[raidfs-uring,$job]} cc=${CPU[raidfs-classic,$job]}
    printf '  %13s  %7s' "$(ratio "$u" "$c")" "$(ratio "$cu" "$cc")"
  fi
  if ((have_region)); then
    read -r _ g _ <<<"${RESULT[raidfs-uring@region,$job]}"; read -r _ d _ <<<"${RESULT[raidfs-uring,$job]}"
    printf '  %10s' "$(ratio "$g" "$d")"
  fi
  printf '\n'
done
echo "(IOPS with median completion latency; s/GiB: the raidfs daemon's CPU seconds per GiB moved;"
echo " raidfs: the round of median throughput of $ROUNDS; raidfs/raw and raidfs/btrfs use"
echo " ${RAIDFS[0]:-no raidfs}; cpu u/c = uring CPU/GiB over classic CPU/GiB; region/dir = a"
echo " self-contained array (metadata on the members) over one with its metadata in a directory)"
if ((have_uc)); then
  echo "uring/classic in each round (round 1 started with ${SPECS[0]}, round 2 with the next, ...):"
  for job in "${JOBS[@]}"; do
    printf '  %-18s' "$job"
    for ((r = 0; r < ROUNDS; ++r)); do
      read -r _ u _ <<<"${RESULT[raidfs-uring#$r,$job]}"; read -r _ c _ <<<"${RESULT[raidfs-classic#$r,$job]}"
      printf ' %5s' "$(ratio "$u" "$c")"
    done
    printf '\n'
  done
fi
for t in "${RAIDFS[@]}"; do echo "$t (last round): ${NOTE[$t]}"; done
