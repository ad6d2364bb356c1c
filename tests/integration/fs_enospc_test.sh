#!/usr/bin/env bash
# Goal: a full raidfs says so — a writer gets "No space left on device" (at write, fsync or
# close), the files written before stay intact, df shows the filesystem full — and space comes
# back: after the fill file is removed, new files of several MiB are written and read back, three
# times over (freed stripes are reused), and everything survives a remount.
# Method: RAID5 on 3 images of 16 MiB, 16 KiB chunks; dd from /dev/urandom of twice the capacity,
# buffered with conv=fsync and with oflag=direct.
#   usage: fs_enospc_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_enospc

arr=$IT_WORK/arr mp=$IT_WORK/mnt keep=$IT_WORK/keep
it_make_array "$arr" 3 16M -l 5 -c 16K
it_mount "$arr/meta" "$mp"

mkdir -p "$keep"
it_random_file "$keep/one-mib" $((1024 * 1024))
it_random_file "$keep/small" 100
it_random_file "$keep/odd" 123457
cp -a "$keep" "$mp/keep" || fail "writing the first files failed"
sync

# avail_pct MP: free space for users as a percentage of the size (statfs).
avail_pct() { stat -f -c '%a %b' "$1" | awk '{ printf "%d\n", $2 ? 100 * $1 / $2 : -1 }'; }
size_mib() { stat -f -c '%b %S' "$1" | awk '{ printf "%d\n", $1 * $2 / 1048576 }'; }
it_log "empty: $(size_mib "$mp") MiB, $(avail_pct "$mp")% available"
(($(size_mib "$mp") >= 20)) || fail "a RAID5 of 3 x 16 MiB reports $(size_mib "$mp") MiB (want about 28)"

# fill ROUND DD_FLAGS: dd of twice the capacity from /dev/urandom must fail with ENOSPC — at a write,
# the fsync or the close (a buffered writer whose data the kernel caches learns of it at fsync or
# close at the latest; an O_DIRECT writer at the write).
fill() {
  local round=$1 flags=$2 rc=0 err count
  count=$((2 * $(size_mib "$mp")))
  err=$(timeout 120 dd if=/dev/urandom of="$mp/fill" bs=1M count="$count" $flags 2>&1) || rc=$?
  ((rc != 124)) || fail "round $round: dd $flags of $count MiB into $(size_mib "$mp") MiB hung (no ENOSPC within 120 s)"
  ((rc != 0)) || fail "round $round: dd $flags wrote $count MiB into $(size_mib "$mp") MiB without an error: $err"
  [[ $err == *"No space left on device"* ]] ||
    fail "round $round: dd $flags of $count MiB failed, but not with 'No space left on device': $err"
  local written
  written=$(stat -c %s "$mp/fill")
  it_log "round $round: dd $flags: ENOSPC, the fill file has $((written / 1048576)) MiB; $(avail_pct "$mp")% available; df: $(df -h "$mp" | tail -n 1)"
  (($(avail_pct "$mp") <= 10)) || fail "round $round: full, but statfs says $(avail_pct "$mp")% available: $(df "$mp" | tail -n 1)"
  ((written >= 8 * 1048576)) || fail "round $round: ENOSPC after only $written bytes"
  it_compare_trees "$keep" "$mp/keep" || fail "round $round: the files written before the fill changed"
  # The filesystem is full but not broken: reads work.
  cmp -s "$keep/one-mib" "$mp/keep/one-mib" || fail "round $round: reading when full failed"
  rm "$mp/fill" || fail "round $round: removing the fill file failed"
  sync
  (($(avail_pct "$mp") >= 50)) || fail "round $round: after rm + sync only $(avail_pct "$mp")% is available"
  it_log "round $round: after rm + sync $(avail_pct "$mp")% available"
  it_random_file "$IT_WORK/after" $((6 * 1024 * 1024))
  cp "$IT_WORK/after" "$mp/after-$round" || fail "round $round: writing 6 MiB after freeing space failed"
  sync
  echo 3 >/proc/sys/vm/drop_caches
  cmp "$IT_WORK/after" "$mp/after-$round" || fail "round $round: the 6 MiB written after freeing space reads back wrong"
  rm "$mp/after-$round"
}

fill 1 conv=fsync
fill 2 oflag=direct
fill 3 conv=fsync

# A buffered writer that opens on a nearly full array (no fsync, no count: it writes until it is
# told) hears ENOSPC at a write: such opens bypass the page cache, which would otherwise take
# data without end and fail only the close.
it_random_file "$IT_WORK/most" $(( ($(stat -f -c '%a' "$mp") - 512) * $(stat -f -c '%S' "$mp") ))
cp "$IT_WORK/most" "$mp/most" && sync "$mp/most" || fail "filling most of the array failed"
it_log "nearly full: $(avail_pct "$mp")% available"
rc=0
err=$(timeout 60 dd if=/dev/zero of="$mp/endless" bs=1M 2>&1) || rc=$?
((rc != 124)) || fail "a buffered dd without a count on a nearly full array ran 60 s without ENOSPC"
[[ $err == *"No space left on device"* ]] || fail "the endless dd did not end with ENOSPC: $err"
written=$(stat -c %s "$mp/endless")
((written <= 4 * 1048576)) || fail "the endless dd wrote $written bytes into ~2 MiB of free space"
it_log "a buffered dd without a count: ENOSPC after $((written / 1024)) KiB"
rm "$mp/most" "$mp/endless"
it_random_file "$keep/last" $((5 * 1024 * 1024))
cp -p "$keep/last" "$mp/keep/last" || fail "writing a last file failed"
touch -r "$keep" "$mp/keep"
it_umount "$mp"
it_mount "$arr/meta" "$mp"
it_compare_trees "$keep" "$mp/keep" || fail "after the remount the files differ"
it_log "after the remount every file compares equal; $(avail_pct "$mp")% available"
it_umount "$mp"
