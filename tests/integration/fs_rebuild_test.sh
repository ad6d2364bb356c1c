#!/usr/bin/env bash
# Goal: a member is brought back up to date online (raidfs rebuild), provably: after the rebuild,
# two *other* members of the RAID6 are taken away and every file — written before it failed,
# while it was out, and while it was being rebuilt (fio --verify writers) — reads back byte for
# byte; a rebuild survives a SIGKILL of the daemon (it resumes at the next mount and finishes);
# a member that was missing at a mount and comes back is named at the next mount with the
# command to run, its rebuild skips the stripes it still holds and also survives the two-others
# test; an old copy of a member image put back in place is found stale, and rebuilt the same way.
# Method: RAID6 on six 64 MiB images, 16 KiB chunks; raidfs fail / image files renamed away and
# back; the rebuild slowed with --rate where it must be caught in the middle.
#   usage: fs_rebuild_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_rebuild
admin=$IT_BUILD/utils/raidfs
command -v fusermount3 >/dev/null || skip "no fusermount3"

arr=$IT_WORK/arr mp=$IT_WORK/mnt src=$IT_WORK/src
it_make_array "$arr" 6 64M -c 16K
mkdir -p "$src"
it_mount "$arr/meta" "$mp"
it_random_file "$src/before" $((12 * 1048576))
cp "$src/before" "$mp/before" && sync "$mp/before"


# --- 1. fail, write while it is out, rebuild under fio writers -----------------------------------
"$admin" fail "$mp" 2 >/dev/null || fail "raidfs fail 2"
it_random_file "$src/while-out" $((6 * 1048576))
cp "$src/while-out" "$mp/while-out" && sync "$mp/while-out"
fio --name=during --filename="$mp/during" --size=8M --rw=randwrite --bs=4k --ioengine=psync \
  --verify=crc32c --verify_fatal=1 --verify_state_save=0 --do_verify=1 --time_based --runtime=4 --output="$IT_WORK/fio.out" &
fio_pid=$!
sleep 0.5
"$admin" rebuild --rate 8M --wait "$mp" 2 >"$IT_WORK/rebuild.out" || fail "the rebuild did not finish: $(cat "$IT_WORK/rebuild.out")"
wait "$fio_pid" || fail "fio --verify failed during the rebuild: $(tail -n 5 "$IT_WORK/fio.out")"
it_status "$mp" | grep -q '^member 2: active' || fail "member 2 is not active after its rebuild: $(it_status "$mp" | grep '^member 2')"
it_status "$mp" | grep -q '^state: healthy' || fail "not healthy after the rebuild"
it_log "$(tail -n 1 "$IT_WORK/rebuild.out")"
cp "$mp/during" "$src/during"   # fio verified it; now it is part of what must survive
it_check_without "$arr" "$mp" "$src" "after the rebuild" 0 1

# --- 2. SIGKILL in the middle of a rebuild ------------------------------------------------------
"$admin" fail "$mp" 4 >/dev/null || fail "raidfs fail 4"
it_random_file "$src/second" $((4 * 1048576))
cp "$src/second" "$mp/second" && sync "$mp/second"
"$admin" rebuild --rate 2M "$mp" 4 >/dev/null || fail "starting a slow rebuild of member 4"
sleep 2
it_status "$mp" | grep -q '^rebuild: member 4 running' || fail "the slow rebuild is not running: $(it_status "$mp" | grep '^rebuild')"
it_kill_daemon "$mp"
it_mount "$arr/meta" "$mp"
it_status "$mp" | grep -q '^rebuild: member 4 running' || fail "the rebuild did not resume: $(it_status "$mp" | grep -E '^(rebuild|member 4)')"
limit=$("$admin" status --json "$mp" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rebuild"]["rate_limit"])')
((limit == 2097152)) || fail "the resumed rebuild lost its --rate 2M ceiling (rate_limit $limit)"
for ((t = 0; t < 600; t++)); do it_status "$mp" | grep -q '^rebuild: member 4 running' || break; sleep 0.1; done
it_status "$mp" | grep -q '^rebuild: member 4 finished' || fail "the resumed rebuild did not finish: $(it_status "$mp" | grep '^rebuild')"
it_log "after a SIGKILL: $(it_status "$mp" | grep '^rebuild')"
it_check_without "$arr" "$mp" "$src" "after the resumed rebuild" 0 5

# --- 3. a member missing at a mount comes back ----------------------------------------------------
it_umount "$mp"
mv "$arr/m3.img" "$arr/away-m3.img"
it_mount "$arr/meta" "$mp"
it_random_file "$src/third" $((3 * 1048576))
cp "$src/third" "$mp/third" && sync "$mp/third"
it_umount "$mp"
mv "$arr/away-m3.img" "$arr/m3.img"
it_mount "$arr/meta" "$mp"
it_status "$mp" | grep -q 'member 3 .*out of date.*raidfs rebuild MOUNTPOINT 3' ||
  fail "the returned member is not named with the command to run: $(it_status "$mp" | grep -E '^(member 3|warning)')"
"$admin" rebuild --wait "$mp" 3 >/dev/null || fail "rebuilding the returned member 3"
# rebuild_counts: "REBUILT SKIPPED" of the last rebuild, from the status JSON.
rebuild_counts() {
  "$admin" status --json "$mp" | python3 -c 'import json,sys; r=json.load(sys.stdin)["rebuild"]; print(r["stripes_rebuilt"], r["stripes_skipped"])'
}
read -r rebuilt skipped < <(rebuild_counts)
# It was away for one 3 MiB file: 48 stripes of 64 KiB, and the stripe the unmount sealed.
(( rebuilt > 0 && rebuilt <= 60 )) || fail "the returned member's rebuild rewrote $rebuilt stripes (only ~48 were written while it was away)"
(( skipped >= 400 )) || fail "the returned member's rebuild skipped only $skipped stripes (about 480 were on it, unchanged)"
it_log "returned member: $rebuilt stripes rebuilt, $skipped unchanged ones skipped"
it_check_without "$arr" "$mp" "$src" "after rebuilding the returned member" 1 2

# --- 4. a stale copy of a member put back in place -----------------------------------------------
it_umount "$mp"
cp --sparse=always "$arr/m5.img" "$IT_WORK/old-m5.img"
it_mount "$arr/meta" "$mp"
it_random_file "$src/fourth" $((3 * 1048576))
cp "$src/fourth" "$mp/fourth" && sync "$mp/fourth"
it_umount "$mp"
cp --sparse=always "$IT_WORK/old-m5.img" "$arr/m5.img"
it_mount "$arr/meta" "$mp"
it_status "$mp" | grep -q '^member 5: missing' ||
  fail "an old copy of member 5 was taken as current: $(it_status "$mp" | grep -E '^member 5')"
it_status "$mp" | grep -q 'm5.img: member 5 is stale' || fail "the stale copy is not named: $(it_status "$mp" | grep -i warning)"
"$admin" rebuild --wait "$mp" 5 >/dev/null || fail "rebuilding the stale member 5"
read -r rebuilt skipped < <(rebuild_counts)
(( rebuilt > 0 && rebuilt <= 60 && skipped >= 400 )) ||
  fail "the stale member's rebuild: $rebuilt rebuilt, $skipped skipped (expected ~48 and ~500)"
it_log "stale copy: detected, $rebuilt stripes rebuilt, $skipped skipped"
it_check_without "$arr" "$mp" "$src" "after rebuilding the stale copy" 0 3
it_umount "$mp"
out=$("$IT_BUILD/utils/raidfs-fsck" -n "$arr/meta" 2>&1) || fail "fsck -n after the rebuilds: $out"
