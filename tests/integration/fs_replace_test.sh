#!/usr/bin/env bash
# Goal: raidfs replace puts a new device in a member's place online and rebuilds the member onto
# it, provably: after the replace two *other* members of the RAID6 are taken away and every file
# — written before, and by fio --verify writers during the replace — reads back byte for byte;
# the old device is no longer taken for the member; a replace survives a SIGKILL (it resumes at
# the next mount); a missing member (its device gone) is replaced the same way; bad devices and
# unprivileged callers are refused with one line, and nothing changes.
# Method: RAID6 on six 64 MiB images, 16 KiB chunks, new images beside them.
#   usage: fs_replace_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_replace
admin=$IT_BUILD/utils/raidfs
command -v fusermount3 >/dev/null || skip "no fusermount3"

arr=$IT_WORK/arr mp=$IT_WORK/mnt src=$IT_WORK/src
it_make_array "$arr" 6 64M -c 16K
mkdir -p "$src"
it_mount "$arr/meta" "$mp"
it_random_file "$src/before" $((12 * 1048576))
cp "$src/before" "$mp/before" && sync "$mp/before"

# refused WHY ARGS...: raidfs replace ARGS fails with one line containing WHY, and nothing changed.
refused() {
  local why=$1 out rc=0; shift
  out=$("$@" 2>&1) || rc=$?
  ((rc != 0)) || fail "replace was not refused: $*"
  [[ $(wc -l <<<"$out") -eq 1 && $out == *"$why"* ]] || fail "refusal of '$*' does not say '$why' in one line: $out"
  it_status "$mp" | grep -q '^state: healthy' || fail "a refused replace changed the array: $(it_status "$mp" | grep '^member')"
}

# --- 0. refusals -----------------------------------------------------------------------------------
truncate -s 16M "$IT_WORK/small.img"
refused "too small" "$admin" replace "$mp" 2 "$IT_WORK/small.img"
mkdir -p "$IT_WORK/other"
truncate -s 64M "$IT_WORK/other/a.img" "$IT_WORK/other/b.img" "$IT_WORK/other/c.img"
"$IT_MKFS" -q -f -m "$IT_WORK/other/meta" -p 1 "$IT_WORK/other/"{a,b,c}.img >/dev/null
refused "raidfs superblock" "$admin" replace "$mp" 2 "$IT_WORK/other/a.img"
refused "in use" "$admin" replace "$mp" 2 "$arr/m3.img"
refused "not a member" "$admin" replace "$mp" /nonexistent/m9.img "$IT_WORK/small.img"
truncate -s 64M "$IT_WORK/new2.img"
chmod o+x "$IT_WORK"
rc=0; err=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$admin" replace "$mp" 2 "$IT_WORK/new2.img" 2>&1) || rc=$?
((rc != 0)) && [[ $err == *"only root"* ]] || fail "an unprivileged replace was not refused with EPERM: $err"
it_log "refused: too small, another array's member, one of its own, no such member, not root"

# --- 1. replace a working member under fio --verify writers ----------------------------------------
fio --name=during --filename="$mp/during" --size=8M --rw=randwrite --bs=4k --ioengine=psync \
  --verify=crc32c --verify_fatal=1 --verify_state_save=0 --do_verify=1 --time_based --runtime=4 --output="$IT_WORK/fio.out" &
fio_pid=$!
sleep 0.5
"$admin" replace --rate 8M --wait "$mp" "$arr/m2.img" "$IT_WORK/new2.img" >"$IT_WORK/replace.out" ||
  fail "the replace did not finish: $(cat "$IT_WORK/replace.out")"
wait "$fio_pid" || fail "fio --verify failed during the replace: $(tail -n 5 "$IT_WORK/fio.out")"
it_status "$mp" | grep -q "^member 2: active $IT_WORK/new2.img" ||
  fail "member 2 is not the new device, active: $(it_status "$mp" | grep '^member 2')"
it_status "$mp" | grep -q '^state: healthy' || fail "not healthy after the replace"
it_log "$(tail -n 1 "$IT_WORK/replace.out")"
cp "$mp/during" "$src/during"
# The old image goes where member 2 was; the array (by its metadata directory's member list) no
# longer names it, and given explicitly it is left out.
mv "$arr/m2.img" "$IT_WORK/old-m2.img"
mv "$IT_WORK/new2.img" "$arr/m2.img"
it_umount "$mp"
members=$(printf '%s,' "$arr"/m{0,1}.img "$IT_WORK/old-m2.img" "$arr"/m{3,4,5}.img)
it_mount "${members%,}" "$mp" -o ro
it_status "$mp" | grep -q 'old-m2.img: was member 2 before another device took its place' ||
  fail "the replaced device was not recognised: $(it_status "$mp" | grep -E '^(member 2|warning)')"
it_umount "$mp"
printf '%s\n' "$arr"/m{0..5}.img >"$arr/meta/members"
it_mount "$arr/meta" "$mp"
it_check_without "$arr" "$mp" "$src" "after the replace" 0 1

# --- 2. SIGKILL in the middle of a replace ---------------------------------------------------------
it_random_file "$src/second" $((4 * 1048576))
cp "$src/second" "$mp/second" && sync "$mp/second"
truncate -s 80M "$IT_WORK/new4.img"
"$admin" replace --rate 2M "$mp" 4 "$IT_WORK/new4.img" >/dev/null || fail "starting a slow replace of member 4"
sleep 2
it_status "$mp" | grep -q '^replace: member 4 running' || fail "the slow replace is not running: $(it_status "$mp" | grep -E '^(replace|rebuild)')"
grep -qx "$IT_WORK/new4.img" "$arr/meta/members" || fail "the member list does not name the new device"
it_kill_daemon "$mp"
it_mount "$arr/meta" "$mp"
it_status "$mp" | grep -q '^replace: member 4 running' || fail "the replace did not resume: $(it_status "$mp" | grep -E '^(replace|member 4)')"
for ((t = 0; t < 600; t++)); do it_status "$mp" | grep -q '^replace: member 4 running' || break; sleep 0.1; done
it_status "$mp" | grep -q '^replace: member 4 finished' || fail "the resumed replace did not finish: $(it_status "$mp" | grep '^replace')"
it_log "after a SIGKILL: $(it_status "$mp" | grep '^replace')"
it_umount "$mp"
mv "$IT_WORK/new4.img" "$arr/m4.img"
printf '%s\n' "$arr"/m{0..5}.img >"$arr/meta/members"
it_mount "$arr/meta" "$mp"
it_check_without "$arr" "$mp" "$src" "after the resumed replace" 0 5

# --- 3. a member whose device is gone ---------------------------------------------------------------
it_umount "$mp"
rm "$arr/m3.img"
it_mount "$arr/meta" "$mp"
it_random_file "$src/third" $((3 * 1048576))
cp "$src/third" "$mp/third" && sync "$mp/third"
truncate -s 64M "$arr/m3.img"
"$admin" replace --wait "$mp" 3 "$arr/m3.img" >/dev/null || fail "replacing the missing member 3"
it_status "$mp" | grep -q '^state: healthy' || fail "not healthy after replacing the missing member"
it_check_without "$arr" "$mp" "$src" "after replacing a missing member" 4 5
it_umount "$mp"
out=$("$IT_BUILD/utils/raidfs-fsck" -n "$arr/meta" 2>&1) || fail "fsck -n after the replaces: $out"
