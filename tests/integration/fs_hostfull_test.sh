#!/usr/bin/env bash
# Goal: when the filesystem under the member images fills up, every error reaches the writer and
# nothing acknowledged is lost — a write, fsync or close fails with the errno, a file whose fsync
# succeeded reads back byte for byte (now, after a remount, and after the host has room again),
# the daemon keeps serving, and status names the members that refused writes.
# Method: RAID6 on six sparse 24 MiB images on a 64 MiB tmpfs (the metadata elsewhere); two
# writers create files of 4 KiB .. 1.5 MiB (write, fsync, close, each checked) until they have
# seen errors; then the files are compared, the tmpfs is grown, the array remounted and
# compared again, and fsck -n must be clean.
#   usage: fs_hostfull_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_hostfull

host=$IT_WORK/host mp=$IT_WORK/mnt arr=$IT_WORK/arr
mkdir -p "$host" "$arr"
mount -t tmpfs -o size=64M raidfs-it-hostfull "$host" || skip "cannot mount a tmpfs"
trap 'rc=$?; umount -l "$host" 2>/dev/null; (exit $rc); it_cleanup' EXIT
members=()
for i in 0 1 2 3 4 5; do
  truncate -s 24M "$host/m$i.img"
  members+=("$host/m$i.img")
done
"$IT_MKFS" -q -f -m "$arr/meta" "${members[@]}" || fail "mkfs.raidfs failed"
it_mount "$arr/meta" "$mp"

# Writers: each file is written, fsynced and closed; the ones where all three succeeded are
# listed with their sha256 in acked.txt. A writer stops after it has seen 3 failures.
python3 - "$mp" "$IT_WORK/acked.txt" <<'PY' || fail "the writers crashed"
import hashlib, os, sys, threading
mp, listing = sys.argv[1], sys.argv[2]
acked, errors, lock = [], [], threading.Lock()
def writer(w, sizes):
    rng = __import__("random").Random(w)
    failures = 0
    for i in range(2000):
        if failures >= 3:
            return
        size = rng.choice(sizes)
        data = os.urandom(size)
        path = f"{mp}/w{w}-{i}"
        fd = None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            if os.write(fd, data) != size:
                raise OSError(0, "short write")
            os.fsync(fd)
            os.close(fd)
            fd = None
        except OSError as e:
            failures += 1
            with lock:
                errors.append(f"{path}: {e}")
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
            continue
        with lock:
            acked.append((path, hashlib.sha256(data).hexdigest(), size))
# First one writer of 1 MiB files (each a few whole stripes, written straight from the request),
# then two of mixed sizes (the open stripe's seals and partial flushes).
writer(0, [1 << 20])
mixed = [4096, 5000, 65536, 300000, 1 << 20, 1536 * 1024]
threads = [threading.Thread(target=writer, args=(w, mixed)) for w in (1, 2)]
for t in threads: t.start()
for t in threads: t.join()
with open(listing, "w") as f:
    for path, digest, size in acked:
        f.write(f"{digest}  {path}\n")
acked_bytes = sum(s for _, _, s in acked)
print(f"{len(acked)} files acknowledged ({acked_bytes >> 20} MiB), {len(errors)} failures, e.g.:")
for e in sorted(set(e.split(": ", 1)[1] for e in errors))[:4]:
    print("   ", e)
if not errors:
    sys.exit("no writer saw an error: the host filesystem never filled")
PY
it_log "host: $(df -h "$host" | tail -n 1)"
(($(wc -l <"$IT_WORK/acked.txt") > 3)) || fail "fewer than 4 files acknowledged before the host filled"

check_acked() {
  local when=$1 bad
  echo 3 >/proc/sys/vm/drop_caches
  bad=$(sha256sum --quiet -c "$IT_WORK/acked.txt" 2>&1 | head -n 5) ||
    fail "$when: files whose fsync succeeded read back wrong: $bad"
  it_log "$when: all $(wc -l <"$IT_WORK/acked.txt") acknowledged files read back right"
}
check_acked "full host"
mountpoint -q "$mp" || fail "the daemon died when the host filled"
status=$(it_status "$mp")
grep -q -i "refused: No space left on device" <<<"$status" ||
  fail "status does not say that members refused writes: $status"
writes=$(grep -E '^member [0-9]+:' <<<"$status" | grep -o -E 'write [0-9]+' | awk '{ s += $2 } END { print s + 0 }')
((writes > 0)) || fail "status counts no write errors: $status"
it_log "status: $writes member write errors; $(grep -m1 -i refused <<<"$status")"

# The unmount cannot seal the last open stripe while the host is full: the data nobody synced
# may be lost, the acknowledged files may not.
it_umount "$mp"
mount -o remount,size=256M "$host"
it_mount "$arr/meta" "$mp"
check_acked "after the remount with room on the host"
dd if=/dev/urandom of="$IT_WORK/after" bs=1M count=4 status=none
cp "$IT_WORK/after" "$mp/after" && sync "$mp/after" || fail "writing after the host has room again failed"
cmp "$IT_WORK/after" "$mp/after" || fail "the file written after the host has room reads back wrong"
it_umount "$mp"
out=$("$IT_BUILD/utils/raidfs-fsck" -n "$arr/meta" 2>&1) || fail "fsck -n is not clean after the host filled: $out"
it_log "fsck -n clean"
