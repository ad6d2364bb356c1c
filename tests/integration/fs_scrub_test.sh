#!/usr/bin/env bash
# Goal: the online scrub (raidfs scrub) finds and repairs what was injected, exactly — data blocks,
# a P row, a Q row, two bad data chunks in one RAID6 row, a data block with its P row — and a
# second scrub finds nothing; a row beyond repair is reported with its file; a scrub survives a
# SIGKILL of the daemon (it resumes at the next mount and finishes; fsck -n clean; every file
# intact); status --json carries the progress; an unprivileged user may read status but not
# start a scrub or fail a member.
# Method: RAID6 on six 64 MiB images, 16 KiB chunks (stripes of 64 KiB: stripe s sits at
# 1 MiB + s * 16 KiB on every member, parity rotating left-symmetric as raid/geometry.cc); a file
# of 8 whole stripes is written with 1 MiB writes (stripes 0-7, sealed whole), unmounted, and
# chosen 4 KiB blocks of chosen chunks overwritten on the images.
#   usage: fs_scrub_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_scrub
admin=$IT_BUILD/utils/raidfs
[[ -x $admin ]] || fail "no $admin"

arr=$IT_WORK/arr mp=$IT_WORK/mnt src=$IT_WORK/src
it_make_array "$arr" 6 64M -c 16K
mkdir -p "$src"
it_random_file "$src/big" $((8 * 65536))
it_mount "$arr/meta" "$mp"
dd if="$src/big" of="$mp/big" bs=1M oflag=direct status=none || fail "writing big failed"
it_umount "$mp"

# corrupt STRIPE SLOT ROW...: overwrites 4 KiB row ROW of slot SLOT (0-3 data, 4 P, 5 Q) of
# stripe STRIPE on the member that holds it, with random bytes.
corrupt() {
  python3 - "$arr" "$@" <<'PY'
import os, random, sys
arr, stripe, slot, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [int(r) for r in sys.argv[4:]]
n, m, chunk = 6, 2, 16384
k = n - m
first_parity = (n - 1) - stripe % n
member = (first_parity + (m + slot if slot < k else slot - k)) % n
with open(f"{arr}/m{member}.img", "r+b") as f:
    for row in rows:
        f.seek((1 << 20) + stripe * chunk + row * 4096)
        f.write(os.urandom(4096))
PY
}
scrub_field() { it_status "$mp" | grep -m1 '^scrub:' | grep -o -E "$1" | grep -o -E '[0-9]+' | head -n 1; }

corrupt 1 0 0      # a data block
corrupt 2 4 1      # P, row 1
corrupt 3 5 2      # Q, row 2
corrupt 4 1 0      # two data chunks in one row (RAID6 rebuilds both)
corrupt 4 2 0
corrupt 5 0 3      # a data block and P in the same row: rebuilt from Q, P rewritten
corrupt 5 4 3

it_mount "$arr/meta" "$mp"
out=$("$admin" scrub --wait "$mp") || fail "raidfs scrub --wait failed: $out"
it_log "$(echo "$out" | tail -n 1)"
blocks=$(scrub_field 'repaired [0-9]+ blocks') rows=$(scrub_field 'and [0-9]+ parity rows') lost=$(scrub_field '[0-9]+ blocks lost')
((blocks == 4 && rows == 3 && lost == 0)) ||
  fail "scrub repaired $blocks blocks and $rows parity rows ($lost lost); injected 4 data blocks and 3 parity rows: $(it_status "$mp" | grep '^scrub')"
echo 3 >/proc/sys/vm/drop_caches
cmp "$src/big" "$mp/big" || fail "big reads back wrong after the scrub"
"$admin" scrub --wait "$mp" >/dev/null || fail "the second scrub failed"
blocks=$(scrub_field 'repaired [0-9]+ blocks') rows=$(scrub_field 'and [0-9]+ parity rows')
((blocks == 0 && rows == 0)) || fail "a second scrub still repaired $blocks blocks and $rows rows"
it_log "scrub repaired exactly what was injected (4 data blocks, 3 parity rows); a second found nothing"

# Status as JSON, for monitoring.
"$admin" status --json "$mp" | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["format"] == 1, s
sc = s["scrub"]
for key in ("state", "percent", "stripes_checked", "stripes_total", "bytes_read", "rate_bytes_per_s",
            "eta_s", "blocks_rebuilt", "parity_rows_rewritten", "blocks_lost", "started_ns", "finished_ns"):
    assert key in sc, key
assert sc["state"] == "finished" and sc["percent"] == 100, sc
assert len(s["members"]) == 6 and all("checksum" in m["errors"] for m in s["members"]), s["members"]
' || fail "status --json does not parse or lacks the scrub fields"

# An unprivileged user reads status but changes nothing.
chmod o+x "$IT_WORK"
nobody_run() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
nobody_run "$admin" status "$mp" >/dev/null || fail "an unprivileged user cannot read the status"
rc=0
err=$(nobody_run "$admin" scrub "$mp" 2>&1) || rc=$?
((rc == 1)) && [[ $err == *"only root may change the array"* ]] ||
  fail "an unprivileged scrub: exit $rc, '$err' (want 1 and a refusal)"
rc=0
err=$(nobody_run "$admin" fail "$mp" 2 2>&1) || rc=$?
((rc == 1)) && [[ $err == *"only root"* ]] || fail "an unprivileged fail: exit $rc, '$err'"
it_status "$mp" | grep -q '^state: healthy' || fail "an unprivileged fail changed the array"
it_log "unprivileged: status read, scrub and fail refused ($err)"
it_umount "$mp"

# A row beyond repair: three bad data chunks in one row of stripe 6. Reported with the file.
corrupt 6 0 1
corrupt 6 1 1
corrupt 6 2 1
it_mount "$arr/meta" "$mp"
"$admin" scrub --wait "$mp" >/dev/null || true
lost=$(scrub_field '[0-9]+ blocks lost')
((lost == 3)) || fail "three bad chunks in one row: $lost blocks reported lost, want 3"
it_status "$mp" | grep '^scrub_lost:' | grep -q '/big bytes' ||
  fail "the lost row does not name its file: $(it_status "$mp" | grep '^scrub')"
it_log "beyond repair: $(it_status "$mp" | grep -m1 '^scrub_lost:')"
rm "$mp/big"
it_umount "$mp"

# SIGKILL in the middle of a scrub: it resumes at the next mount and finishes.
it_mount "$arr/meta" "$mp"
it_random_file "$src/many" $((32 * 1048576))
cp "$src/many" "$mp/many" && sync "$mp/many"
"$admin" scrub --rate 4M "$mp" >/dev/null || fail "starting a slow scrub failed"
sleep 2
checked=$(scrub_field '\(([0-9]+) of')
it_status "$mp" | grep -q '^scrub: running' || fail "the slow scrub is not running: $(it_status "$mp" | grep '^scrub')"
it_kill_daemon "$mp"
it_log "killed the daemon with the scrub at stripe ~$checked"
it_mount "$arr/meta" "$mp"
it_status "$mp" | grep -q '^scrub: running' || fail "the scrub did not resume after the SIGKILL: $(it_status "$mp" | grep '^scrub')"
limit=$("$admin" status --json "$mp" | python3 -c 'import json,sys; print(json.load(sys.stdin)["scrub"]["rate_limit"])')
((limit == 4194304)) || fail "the resumed scrub lost its --rate 4M ceiling (rate_limit $limit)"
for ((t = 0; t < 600; t++)); do it_status "$mp" | grep -q '^scrub: running' || break; sleep 0.1; done
it_status "$mp" | grep -q '^scrub: finished' || fail "the resumed scrub did not finish: $(it_status "$mp" | grep '^scrub')"
total=$(scrub_field 'of about [0-9]+') checked=$(scrub_field '\(([0-9]+) of')
((checked >= total)) || fail "the resumed scrub checked $checked of $total stripes"
cmp "$src/many" "$mp/many" || fail "many reads back wrong after the scrub and the SIGKILL"
it_log "after a SIGKILL the scrub resumed and finished: $(it_status "$mp" | grep '^scrub')"
it_umount "$mp"
out=$("$IT_BUILD/utils/raidfs-fsck" -n "$arr/meta" 2>&1) || fail "fsck -n after the scrubs: $out"

# raidfs fail: the member is out (persisted), reads go on degraded; beyond parity it is refused.
it_mount "$arr/meta" "$mp"
"$admin" fail "$mp" 5 >/dev/null || fail "raidfs fail 5 failed"
"$admin" fail "$mp" 4 >/dev/null || fail "raidfs fail 4 failed"
rc=0
err=$("$admin" fail "$mp" 3 2>&1) || rc=$?
((rc == 1)) && [[ $err == *"more members unavailable than parity covers"* ]] ||
  fail "failing a third RAID6 member: exit $rc, '$err' (want a refusal)"
echo 3 >/proc/sys/vm/drop_caches
cmp "$src/many" "$mp/many" || fail "many reads back wrong with members 4 and 5 failed"
it_remount "$arr/meta" "$mp"
for i in 4 5; do
  it_status "$mp" | grep -q "^member $i: failed" || fail "member $i is not failed after a remount: $(it_status "$mp" | grep '^member')"
done
cmp "$src/many" "$mp/many" || fail "many reads back wrong after the remount with two members failed"
it_log "raidfs fail: members 4 and 5 out (persisted), a third refused ($err)"
it_umount "$mp"
