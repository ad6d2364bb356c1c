#!/usr/bin/env bash
# Goal: what fio writes through a raidfs mount, in big sequential and small random writes, buffered
# and O_DIRECT, with fsyncs between them, from one or two jobs at once, reads back verified
# (crc32c in every block) — right after the writes, and again after an unmount and a remount.
# Method: RAID6 on 6 sparse images; each job is size-limited (not time-limited) and uses
# --verify=crc32c (fio writes, then reads everything back and checks it); after the remount each job
# runs again with --verify_only (same seed, same offsets: only reads and checks), and every file
# has the sha256 it had before.
#   usage: fs_fio_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_fio
command -v fio >/dev/null || skip "no fio"

arr=$IT_WORK/arr mp=$IT_WORK/mnt
it_make_array "$arr" 6 384M -l 6 -c 64K
it_mount "$arr/meta" "$mp"

# name: fio options (every job adds --verify=crc32c --directory=MP).
declare -A jobs=(
  [seq1m-buffered]="--rw=write --bs=1M --size=128M --direct=0 --end_fsync=1"
  [seq1m-direct]="--rw=write --bs=1M --size=128M --direct=1 --end_fsync=1"
  [rand4k-buffered]="--rw=randwrite --bs=4k --size=64M --direct=0 --fsync=16"
  [rand4k-direct]="--rw=randwrite --bs=4k --size=64M --direct=1 --fsync=16"
  [rand-uneven]="--rw=randwrite --bsrange=512-200k --bs_unaligned --size=32M --direct=0 --end_fsync=1"
  [two-jobs]="--rw=randwrite --bs=16k --size=32M --numjobs=2 --direct=0 --fsync=32"
  # Overwrites (copy-on-write of live blocks): 48 MiB of random 4 KiB writes into 16 MiB.
  [overwrite]="--rw=randwrite --bs=4k --size=16M --io_size=48M --norandommap --direct=0 --fsync=64"
)
order=(seq1m-buffered seq1m-direct rand4k-buffered rand4k-direct rand-uneven two-jobs overwrite)
# Jobs that --verify_only can check again after the remount (not the overwrite job: its replay
# would expect the first of several writes to a block); every file is also compared by sha256.
reverify=(seq1m-buffered seq1m-direct rand4k-buffered rand4k-direct rand-uneven two-jobs)

# run_job NAME EXTRA...: runs one job; prints its bandwidth line; fails the test on any error.
run_job() {
  local name=$1; shift
  local log=$IT_WORK/fio-$name$*.log t0=$SECONDS
  log=${log// /}
  # shellcheck disable=SC2086
  if ! (cd "$IT_WORK" && fio --name="$name" --directory="$mp" --ioengine=psync --verify=crc32c --verify_fatal=1 \
      --randrepeat=1 --randseed=4242 --verify_state_save=0 --group_reporting ${jobs[$name]} "$@" --output="$log"); then
    grep -E -i 'err|verify|bad|fail' "$log" | head -n 20 >&2
    fail "fio job $name ${jobs[$name]} $* reported an error (log above, in $log)"
  fi
  grep -q -E 'err= *0' "$log" || { cat "$log" >&2; fail "fio job $name $*: no 'err=0' in its report"; }
  it_log "$name $*: ok in $((SECONDS - t0)) s: $(grep -E '^ *(WRITE|READ):' "$log" | sed -E 's/^ *//; s/ \(.*//' | tr '\n' ' ')"
}

for name in "${order[@]}"; do run_job "$name"; done
(cd "$mp" && sha256sum -- *) >"$IT_WORK/before.sums" || fail "reading the fio files back failed"

it_umount "$mp"
it_mount "$arr/meta" "$mp"
for name in "${reverify[@]}"; do run_job "$name" --verify_only; done
(cd "$mp" && sha256sum -c --quiet "$IT_WORK/before.sums") >&2 || fail "fio's files changed across the remount"
it_log "all $(wc -l <"$IT_WORK/before.sums") files have the same sha256 after the remount"
df -h "$mp" | tail -n 1
it_umount "$mp"

# Without the kernel's writeback cache every write(2), unaligned and small ones too, reaches the
# daemon as it was made.
it_mount "$arr/meta" "$mp" -o no_writeback_cache
jobs[wt-uneven]="--rw=randwrite --bsrange=512-100k --bs_unaligned --size=16M --direct=0 --fsync=8"
jobs[wt-seq]="--rw=write --bs=4k --size=16M --direct=0 --end_fsync=1"
run_job wt-uneven
run_job wt-seq
it_umount "$mp"
it_mount "$arr/meta" "$mp"
run_job wt-uneven --verify_only
run_job wt-seq --verify_only
it_umount "$mp"
