#!/usr/bin/env bash
# Goal: `mount -o remount,ro` and `remount,rw` work on a mounted raidfs (mount(8) hands them to
# the helper as `mount.raidfs SPEC MOUNTPOINT -o ...,remount,...`, which is how this test calls
# it): remount,ro makes what was written durable and the mount refuses writes (EROFS), reads go
# on; remount,rw takes writes again; the mount's other flags are kept; an array mounted with -o ro
# refuses remount,rw in one line; -o dev,suid are taken and device nodes work.
# Method: RAID5 on four images; after remount,ro the daemon is SIGKILLed and the array mounted
# again: a file written without fsync before the remount must be there, whole.
#   usage: fs_remount_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_remount
command -v fusermount3 >/dev/null || skip "no fusermount3"

arr=$IT_WORK/arr mp=$IT_WORK/mnt src=$IT_WORK/src
it_make_array "$arr" 4 64M -p 1
mkdir -p "$src"
it_mount "$arr/meta" "$mp" -o nodev
it_random_file "$src/a" $((3 * 1048576 + 123))
cp "$src/a" "$mp/a"   # no fsync: in the kernel's cache and the open stripe
flags() { findmnt -n -o OPTIONS --target "$mp" | tr ',' '\n' | grep -x -E "$1" || true; }

"$IT_MOUNT_PROG" "$arr/meta" "$mp" -o rw,nosuid,relatime,remount,ro || fail "remount,ro failed"
[[ $(flags ro) == ro ]] || fail "remount,ro: the mount is not read-only: $(findmnt -n -o OPTIONS --target "$mp")"
[[ $(flags nodev) == nodev ]] || fail "remount,ro dropped nodev: $(findmnt -n -o OPTIONS --target "$mp")"
if touch "$mp/b" 2>"$IT_WORK/touch.err"; then fail "a write succeeded on the read-only remount"; fi
grep -q "Read-only file system" "$IT_WORK/touch.err" || fail "the write was refused with: $(cat "$IT_WORK/touch.err")"
cmp "$src/a" "$mp/a" || fail "a reads back wrong after remount,ro"
it_log "remount,ro: read-only (nodev kept), writes refused with EROFS, reads go on"

# Durable: kill the daemon without an unmount; the next mount finds a whole.
it_kill_daemon "$mp"
it_mount "$arr/meta" "$mp"
cmp "$src/a" "$mp/a" || fail "a, written without fsync before remount,ro, did not survive a SIGKILL"
it_log "what was written before remount,ro survived a SIGKILL of the daemon"

"$IT_MOUNT_PROG" "$arr/meta" "$mp" -o remount,ro || fail "remount,ro failed"
"$IT_MOUNT_PROG" "$arr/meta" "$mp" -o remount,rw || fail "remount,rw failed"
[[ -z $(flags ro) ]] || fail "remount,rw: still read-only"
it_random_file "$src/b" 70000
cp "$src/b" "$mp/b" && sync "$mp/b" || fail "a write after remount,rw failed"
cmp "$src/b" "$mp/b" || fail "b reads back wrong"
it_log "remount,rw: writes taken again"
it_umount "$mp"

# Served read-only: remount,rw is refused in one line and the mount stays read-only.
it_mount "$arr/meta" "$mp" -o ro
rc=0
err=$("$IT_MOUNT_PROG" "$arr/meta" "$mp" -o remount,rw 2>&1) || rc=$?
((rc != 0)) && [[ $(wc -l <<<"$err") -eq 1 && $err == *"mounted with -o ro"* ]] ||
  fail "remount,rw of a read-only array: exit $rc, '$err'"
[[ $(flags ro) == ro ]] || fail "the refused remount,rw changed the mount"
cmp "$src/a" "$mp/a" && cmp "$src/b" "$mp/b" || fail "files read back wrong on the read-only mount"
it_log "remount,rw of an array served read-only refused: $err"
it_umount "$mp"
# -o dev,suid are taken (root mounts): a device node on the mount works.
it_mount "$arr/meta" "$mp" -o dev,suid
[[ -z $(flags 'nodev|nosuid') ]] || fail "-o dev,suid: the mount has $(flags 'nodev|nosuid')"
mknod "$mp/null" c 1 3
echo discarded >"$mp/null" || fail "writing to a character device node on the mount failed"
[[ $(head -c 10 "$mp/null" | wc -c) -eq 0 ]] || fail "the device node does not behave as /dev/null"
it_log "-o dev,suid: a device node on the mount opens and works"
it_umount "$mp"
rc=0
err=$("$IT_MOUNT_PROG" "$arr/meta" "$IT_WORK" -o remount,ro 2>&1) || rc=$?
((rc != 0)) && [[ $err == *"not a mounted raidfs"* ]] || fail "remount of something else: exit $rc, '$err'"
