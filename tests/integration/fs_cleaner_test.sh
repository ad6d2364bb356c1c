#!/usr/bin/env bash
# Goal: copy-on-write space comes back (fs/cleaner.h). Random 4 KiB overwrites of a file holding
# 70% of the array, three times the capacity in all, under fio --verify: no ENOSPC, every block
# verifies, df's used space stays near the live data, and the file reads back the same after a
# remount; at 90% full the same for one capacity of overwrites. Then a writer that fsyncs every
# batch of overwrites while the cleaner runs is killed with its daemon (SIGKILL): after the next
# mount every fsynced block reads back, also with two members gone, and fsck -n is clean. With
# -o nocleaner status says the cleaner is off and `raidfs clean` refuses in one line.
# Method: RAID6 on 6 images of 32 MiB (128 MiB of data), 16 KiB chunks (64 KiB stripes).
#   usage: fs_cleaner_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
# On tmpfs: the test is about what the cleaner moves, not about the host disk's fsync latency.
[[ -d /dev/shm ]] && : "${RAIDFS_IT_TMPDIR:=/dev/shm}"
it_init "${1:?build dir}" fs_cleaner
command -v fio >/dev/null || skip "no fio"

arr=$IT_WORK/arr mp=$IT_WORK/mnt
it_make_array "$arr" 6 32M -l 6 -c 16K
it_mount "$arr/meta" "$mp"

capacity=$(stat -f -c '%b' "$mp")  # 4 KiB blocks
used_blocks() { stat -f -c '%b %f' "$1" | awk '{ print $1 - $2 }'; }
cleaner_field() { "$IT_BUILD/utils/raidfs" status --json "$mp" | python3 -c "import json, sys; print(json.load(sys.stdin)['cleaner']['$1'])"; }

# overwrite PERCENT TIMES: fio fills a file of PERCENT of the capacity, then overwrites it with
# random 4 KiB writes for TIMES the capacity (fsync every 64), verifying every block at the end.
overwrite() {
  local pct=$1 times=$2 size io log=$IT_WORK/fio-$1.log
  size=$((capacity * pct / 100 * 4096 / 1048576))M
  io=$((capacity * times * 4096 / 1048576))M
  rm -f "$mp/db"
  (cd "$IT_WORK" && fio --name=fill --filename="$mp/db" --rw=write --bs=1M --size="$size" \
    --ioengine=psync --end_fsync=1 --output="$log.fill") || fail "filling $size failed: $(cat "$log.fill")"
  if ! (cd "$IT_WORK" && fio --name=db --filename="$mp/db" --rw=randwrite --bs=4k --size="$size" \
      --io_size="$io" --ioengine=psync --fsync=64 --verify=crc32c --verify_fatal=1 \
      --randrepeat=1 --randseed=77 --verify_state_save=0 --output="$log"); then
    grep -E -i 'err|verify|bad|fail|space' "$log" | head -n 20 >&2
    fail "$pct% full: fio's overwrites failed (log above)"
  fi
  grep -q -E 'err= *0' "$log" || { cat "$log" >&2; fail "$pct% full: no 'err=0' in fio's report"; }
  local used live
  used=$(used_blocks "$mp") live=$(( $(stat -c %s "$mp/db") / 4096 ))
  ((used < live + capacity / 8)) ||
    fail "$pct% full: df says $used blocks used for $live live blocks (of $capacity)"
  it_log "$pct% full: $io of 4 KiB overwrites into $size verified; df used $((used * 100 / capacity))% for $((live * 100 / capacity))% live; $(cleaner_field stripes_cleaned) stripes cleaned, $(cleaner_field bytes_moved) bytes moved"
}

overwrite 70 3
sha=$(sha256sum <"$mp/db")
it_remount "$arr/meta" "$mp"
[[ $(sha256sum <"$mp/db") == "$sha" ]] || fail "the overwritten file differs after a remount"
overwrite 90 1
"$IT_BUILD/utils/raidfs" clean "$mp" >"$IT_WORK/clean.out" || fail "raidfs clean failed: $(cat "$IT_WORK/clean.out")"
grep -q "stripes freed" "$IT_WORK/clean.out" || fail "raidfs clean said: $(cat "$IT_WORK/clean.out")"
it_log "raidfs clean: $(cat "$IT_WORK/clean.out")"

# SIGKILL while the cleaner runs under a writer that fsyncs each batch of overwrites. The writer
# records a batch as done only after its fsync; the batch in flight may be old or new.
rm -f "$mp/db"
python3 - "$mp/db" "$IT_WORK/ref" "$IT_WORK/inflight" "$((capacity * 70 / 100))" <<'PY' &
import os, random, sys
path, ref_path, inflight_path, blocks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rng = random.Random(5)
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
ref = os.open(ref_path, os.O_RDWR | os.O_CREAT, 0o644)
chunk = os.urandom(1 << 20)
for off in range(0, blocks * 4096, 1 << 20):
    os.pwrite(fd, chunk[: min(1 << 20, blocks * 4096 - off)], off)
    os.pwrite(ref, chunk[: min(1 << 20, blocks * 4096 - off)], off)
os.fsync(fd)
os.fsync(ref)
open(inflight_path + ".ready", "w").close()
while True:
    batch = [(rng.randrange(blocks) * 4096, os.urandom(4096)) for _ in range(64)]
    with open(inflight_path, "wb") as f:  # what may or may not be in after a crash
        for off, data in batch:
            f.write(off.to_bytes(8, "little") + data)
        f.flush()
        os.fsync(f.fileno())
    try:
        for off, data in batch:
            os.pwrite(fd, data, off)
        os.fsync(fd)
    except OSError:
        sys.exit(0)  # the daemon is gone
    for off, data in batch:
        os.pwrite(ref, data, off)
    os.fsync(ref)
PY
writer=$!
for _ in $(seq 600); do [[ -e $IT_WORK/inflight.ready ]] && break; sleep 0.1; done
[[ -e $IT_WORK/inflight.ready ]] || fail "the writer never started"
passes=$(cleaner_field passes)
for _ in $(seq 300); do (($(cleaner_field passes) > passes + 3)) && break; sleep 0.1; done
(($(cleaner_field passes) > passes + 3)) || fail "the cleaner did not run under the overwrites"
sleep 1
it_kill_daemon "$mp"
wait "$writer" || true

# check_fsynced: every block of the file is the reference's, or (the batch in flight) the new one.
check_fsynced() {
  python3 - "$mp/db" "$IT_WORK/ref" "$IT_WORK/inflight" <<'PY' || fail "$1: a fsynced block is lost or wrong"
import os, sys
got, ref = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
inflight = {}
raw = open(sys.argv[3], "rb").read()
for at in range(0, len(raw), 4104):
    inflight.setdefault(int.from_bytes(raw[at:at + 8], "little"), []).append(raw[at + 8:at + 4104])
assert len(got) >= len(ref), (len(got), len(ref))
bad = 0
for off in range(0, len(ref), 4096):
    g, r = got[off:off + 4096], ref[off:off + 4096]
    if g != r and g not in inflight.get(off, []):
        bad += 1
if bad:
    sys.exit(f"{bad} blocks differ from what was fsynced")
PY
}
it_mount "$arr/meta" "$mp"
check_fsynced "after a SIGKILL during cleaning"
it_umount "$mp"
mv "${IT_MEMBERS[0]}" "${IT_MEMBERS[0]}.away"
mv "${IT_MEMBERS[3]}" "${IT_MEMBERS[3]}.away"
it_mount "$arr/meta" "$mp" -o ro
check_fsynced "with members 0 and 3 gone"
it_umount "$mp"
mv "${IT_MEMBERS[0]}.away" "${IT_MEMBERS[0]}"
mv "${IT_MEMBERS[3]}.away" "${IT_MEMBERS[3]}"
out=$("$IT_BUILD/utils/raidfs-fsck" -n "$arr/meta" 2>&1) || fail "fsck -n after the SIGKILL: $out"
it_log "SIGKILL during cleaning: every fsynced block reads back, also with two members gone; fsck -n clean"

# -o nocleaner: status says so, and `raidfs clean` says why it cannot, in one line.
it_mount "$arr/meta" "$mp" -o nocleaner
it_status "$mp" | grep -q "^cleaner: off" || fail "status with -o nocleaner: $(it_status "$mp" | grep cleaner)"
if out=$("$IT_BUILD/utils/raidfs" clean "$mp" 2>&1); then fail "raidfs clean with the cleaner off succeeded: $out"; fi
[[ $(wc -l <<<"$out") == 1 && $out == *"cleaner is off"* ]] || fail "raidfs clean with the cleaner off said: $out"
check_fsynced "mounted with -o nocleaner"
it_umount "$mp"
it_log "-o nocleaner: status says off, raidfs clean refuses in one line ($out)"
it_log "PASS"
