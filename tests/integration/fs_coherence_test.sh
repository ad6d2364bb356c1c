#!/usr/bin/env bash
# Goal: what a program reads on the mount is what was last written, whichever way it was written,
# and sizes survive operations that drop unsynced data.
#   1. buffered reads racing asynchronous O_DIRECT writes (io_uring and libaio-style AIO) of the
#      same range see the new bytes once the writes have completed (dio_read_race);
#   2. a 64 KiB file zeroed block by block with fallocate --zero-range (xfs_io fzero's call)
#      right after it was written keeps its size and reads as zeros, before and after a remount.
#   usage: fs_coherence_test.sh BUILD_DIR DIO_READ_RACE
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_coherence
race=${2:?dio_read_race program}

arr=$IT_WORK/arr mp=$IT_WORK/mnt
it_make_array "$arr" 6 64M
it_mount "$arr/meta" "$mp"

for mode in uring aio; do
  out=$("$race" "$mp/race-$mode" "$mode" 30) || fail "stale reads after O_DIRECT writes: $out"
  it_log "$out"
done

head -c 65536 /dev/urandom >"$mp/zeroed"
for ((off = 0; off < 65536; off += 4096)); do
  fallocate --zero-range --offset "$off" --length 4096 "$mp/zeroed" || fail "fallocate --zero-range at $off failed"
done
check_zeroed() {
  local size
  size=$(stat -c %s "$mp/zeroed")
  ((size == 65536)) || fail "$1: the zeroed file is $size bytes, not 65536"
  cmp -s "$mp/zeroed" <(head -c 65536 /dev/zero) || fail "$1: the zeroed file does not read as zeros"
}
check_zeroed "mounted"
it_remount "$arr/meta" "$mp"
check_zeroed "after a remount"
it_log "a file zeroed block by block keeps its 64 KiB, before and after a remount"
it_umount "$mp"
