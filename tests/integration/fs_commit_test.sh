#!/usr/bin/env bash
# Goal: data nobody fsyncs is made durable by time, and replace-by-rename never leaves a hole.
#   1. files written and closed without fsync survive a SIGKILL of the daemon once the commit
#      interval (-o commit=1) has passed: they read back byte for byte after a remount;
#   2. with the interval out of the way (commit=3600), a new version written to a temporary file
#      and renamed over the old one without fsync, then SIGKILL at once: after the remount the
#      file holds the old or the new content, whole — never zeros or a short file.
#   usage: fs_commit_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_commit
command -v fusermount3 >/dev/null || skip "no fusermount3"

arr=$IT_WORK/arr mp=$IT_WORK/mnt src=$IT_WORK/src
it_make_array "$arr" 6 64M -c 16K
mkdir -p "$src"


# 1. Written, closed, not synced; the interval passes; killed.
it_mount "$arr/meta" "$mp" -o commit=1
for s in 100 5000 65536 300000 1048576; do
  it_random_file "$src/f$s" "$s"
  cp "$src/f$s" "$mp/f$s"
done
sleep 3
it_kill_daemon "$mp"
it_mount "$arr/meta" "$mp" -o commit=1
for s in 100 5000 65536 300000 1048576; do
  cmp "$src/f$s" "$mp/f$s" || fail "f$s, written and closed 3 s before the SIGKILL with commit=1, did not survive"
done
it_log "files written without fsync survived a SIGKILL after the commit interval"
it_umount "$mp"

# 2. Replace by rename, killed at once.
it_mount "$arr/meta" "$mp" -o commit=3600
for i in 1 2 3 4 5 6; do
  it_random_file "$src/old$i" $((40000 * i))
  cp "$src/old$i" "$mp/doc$i"
done
sync -f "$mp"
for i in 1 2 3 4 5 6; do sync "$mp/doc$i"; done
for round in 1 2 3; do
  for i in 1 2 3 4 5 6; do
    it_random_file "$src/new$i" $((30000 * i + round))
    cp "$src/new$i" "$mp/.doc$i.tmp"
    mv "$mp/.doc$i.tmp" "$mp/doc$i"
  done
  it_kill_daemon "$mp"
  it_mount "$arr/meta" "$mp" -o commit=3600
  for i in 1 2 3 4 5 6; do
    if cmp -s "$src/new$i" "$mp/doc$i"; then
      cp "$src/new$i" "$src/old$i"   # the new version is the old one of the next round
    elif ! cmp -s "$src/old$i" "$mp/doc$i"; then
      fail "round $round: doc$i is neither the old nor the new version after rename-over and a SIGKILL ($(stat -c %s "$mp/doc$i") bytes)"
    fi
  done
  it_log "round $round: every file renamed over another is whole (old or new) after a SIGKILL"
done
it_umount "$mp"
