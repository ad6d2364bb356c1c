#!/usr/bin/env bash
# Goal: the attributes everyday tools read are true.
#   1. st_blocks counts the blocks a file holds, not its size: a sparse file is small to du, a
#      punched hole gives its blocks back, and the count survives a remount;
#   2. while a writer still holds a file open (its data maybe only in the kernel's cache), cp
#      --sparse=always, tar --sparse and rsync --sparse copy it byte for byte (st_blocks never
#      says "empty" then: tar would archive it as all holes);
#   3. the copies of a sparse file stay sparse;
#   4. a device node keeps its whole device number (12-bit major, 20-bit minor);
#   5. ctime: what the mount shows is what is stored (the same after a remount), and a change
#      never gets a ctime before a reading of the kernel's file clock taken just before it.
#   usage: fs_posix_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_posix
command -v rsync >/dev/null || fail "rsync is not installed (scripts/deps.sh installs it)"

arr=$IT_WORK/arr mp=$IT_WORK/mnt
it_make_array "$arr" 6 64M
it_mount "$arr/meta" "$mp"

blocks() { stat -c %b "$1"; }

# 1. 70000 bytes at 800 KiB of a 3 MiB file: 18 blocks of 4 KiB = 144 sectors.
it_random_file "$IT_WORK/part" 70000
truncate -s 3M "$mp/sparse"
dd if="$IT_WORK/part" of="$mp/sparse" bs=4096 seek=200 conv=notrunc status=none
truncate -s 3M "$IT_WORK/sparse.ref"
dd if="$IT_WORK/part" of="$IT_WORK/sparse.ref" bs=4096 seek=200 conv=notrunc status=none
cmp "$mp/sparse" "$IT_WORK/sparse.ref" || fail "the sparse file does not read back"
b=$(blocks "$mp/sparse")
((b == 144)) || fail "st_blocks of a 3 MiB file holding 70000 bytes is $b, not 144"
head -c 1M /dev/urandom >"$mp/full"
b=$(blocks "$mp/full")
((b == 2048)) || fail "st_blocks of a 1 MiB file is $b, not 2048"
fallocate --punch-hole --offset 65536 --length 131072 "$mp/full"
b=$(blocks "$mp/full")
((b == 2048 - 256)) || fail "st_blocks after punching 128 KiB is $b, not $((2048 - 256))"
it_remount "$arr/meta" "$mp"
b=$(blocks "$mp/sparse")
((b == 144)) || fail "st_blocks after a remount is $b, not 144"
b=$(blocks "$mp/full")
((b == 2048 - 256)) || fail "st_blocks of the punched file after a remount is $b"
du_bytes=$(du -B1 "$mp/sparse" | cut -f1)
((du_bytes == 73728)) || fail "du says $du_bytes bytes for the sparse file, not 73728"
it_log "st_blocks: 144 for 70000 bytes in a 3 MiB file, 256 fewer after a 128 KiB punch, kept across a remount"

# 2 + 3. Copies of a closed sparse file are byte for byte and sparse themselves.
mkdir -p "$IT_WORK/copies"
cp --sparse=always "$mp/sparse" "$IT_WORK/copies/cp"
(cd "$mp" && tar --sparse -cf "$IT_WORK/sparse.tar" sparse) && tar -xf "$IT_WORK/sparse.tar" -C "$IT_WORK/copies"
rsync --sparse "$mp/sparse" "$IT_WORK/copies/rsync"
for c in cp sparse rsync; do
  cmp "$IT_WORK/sparse.ref" "$IT_WORK/copies/$c" || fail "the $c copy of the sparse file differs"
  b=$(blocks "$IT_WORK/copies/$c")
  ((b < 1024)) || fail "the $c copy of the sparse file is not sparse ($b sectors)"
done

# A writer that keeps the file open: its data may still be only in the kernel's page cache.
rm -rf "$IT_WORK/copies" && mkdir -p "$IT_WORK/copies"
python3 - "$mp/held" "$IT_WORK/part" "$IT_WORK/held.ref" "$IT_WORK/go" "$IT_WORK/done" <<'PY' &
import os, sys, time
COARSE = getattr(time, "CLOCK_REALTIME_COARSE", 5)
path, part, ref, go, done = sys.argv[1:]
data = open(part, "rb").read()
for p in (path, ref):
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.ftruncate(fd, 2 << 20)
    os.pwrite(fd, data, 300 * 4096)
    os.pwrite(fd, data[:5000], 0)
    if p == ref:
        os.close(fd)
    else:
        held = fd
open(go, "w").close()
while not os.path.exists(done):
    time.sleep(0.05)
os.close(held)
PY
writer=$!
for _ in $(seq 100); do [[ -e $IT_WORK/go ]] && break; sleep 0.1; done
[[ -e $IT_WORK/go ]] || fail "the writer did not start"
b=$(blocks "$mp/held")
((b > 0)) || fail "st_blocks is 0 for a file with unsynced data open for writing"
cp --sparse=always "$mp/held" "$IT_WORK/copies/cp"
(cd "$mp" && tar --sparse -cf "$IT_WORK/held.tar" held) && tar -xf "$IT_WORK/held.tar" -C "$IT_WORK/copies"
rsync --sparse "$mp/held" "$IT_WORK/copies/rsync"
touch "$IT_WORK/done"
wait "$writer" || fail "the writer failed"
for c in cp held rsync; do
  cmp "$IT_WORK/held.ref" "$IT_WORK/copies/$c" || fail "the $c copy of a file open for writing differs"
done
it_log "cp --sparse=always, tar --sparse and rsync --sparse copy sparse files byte for byte (closed and held open by a writer), and the copies stay sparse"

# 4. Device numbers: the largest major and minor Linux has.
mknod "$mp/dev" c 4095 1048575
[[ $(stat -c '%t %T' "$mp/dev") == "fff fffff" ]] || fail "the device number is $(stat -c '%t %T' "$mp/dev"), not fff fffff"
it_remount "$arr/meta" "$mp"
[[ $(stat -c '%t %T' "$mp/dev") == "fff fffff" ]] || fail "the device number after a remount is $(stat -c '%t %T' "$mp/dev")"
it_log "a device node keeps major 4095, minor 1048575"

# 5. ctime: writes (stamped by the kernel under the writeback cache), chmod, rename, link and
# truncate (stamped by raidfs), each after a reading of the coarse clock both use.
python3 - "$mp/times" "$IT_WORK/ctimes" <<'PY' || fail "a ctime is earlier than the clock reading taken before its change"
import os, sys, time
COARSE = getattr(time, "CLOCK_REALTIME_COARSE", 5)
d, out = sys.argv[1:]
os.mkdir(d)
bad = []
def check(what, path, before):
    c = os.stat(path).st_ctime_ns
    if c < before:
        bad.append(f"{what}: ctime {c} < {before}")
for n in range(200):
    p = os.path.join(d, f"f{n}")
    before = time.clock_gettime_ns(COARSE)
    with open(p, "wb") as f:
        f.write(os.urandom(3000 + n))
        f.flush()
        os.fsync(f.fileno())
    check("write", p, before)
    before = time.clock_gettime_ns(COARSE)
    os.chmod(p, 0o600 + n % 64)
    check("chmod", p, before)
    if n % 3 == 0:
        before = time.clock_gettime_ns(COARSE)
        os.truncate(p, 100)
        check("truncate", p, before)
    if n % 5 == 0:
        before = time.clock_gettime_ns(COARSE)
        os.link(p, p + ".l")
        check("link", p, before)
    if n % 4 == 0:  # appended, and flushed by the kernel at close well after it stamped it
        with open(p, "ab") as f:
            f.write(b"tail")
            time.sleep(0.02)
with open(out, "w") as f:
    for name in sorted(os.listdir(d)):
        st = os.stat(os.path.join(d, name))
        f.write(f"{name} {st.st_ctime_ns} {st.st_mtime_ns} {st.st_size}\n")
if bad:
    print("\n".join(bad[:10]))
    sys.exit(1)
PY
it_remount "$arr/meta" "$mp"
python3 - "$mp/times" "$IT_WORK/ctimes.after" <<'PY'
import os, sys
d, out = sys.argv[1:]
with open(out, "w") as f:
    for name in sorted(os.listdir(d)):
        st = os.stat(os.path.join(d, name))
        f.write(f"{name} {st.st_ctime_ns} {st.st_mtime_ns} {st.st_size}\n")
PY
if ! cmp -s "$IT_WORK/ctimes" "$IT_WORK/ctimes.after"; then
  diff "$IT_WORK/ctimes" "$IT_WORK/ctimes.after" | head -6 >&2
  fail "$(diff "$IT_WORK/ctimes" "$IT_WORK/ctimes.after" | grep -c '^>') files show other times after a remount than while mounted"
fi
it_log "ctime and mtime of $(wc -l <"$IT_WORK/ctimes") files: the same after a remount as shown while mounted; never before the clock reading taken before the change"
it_umount "$mp"
"$IT_BUILD/utils/raidfs-fsck" -n "$arr/meta" >"$IT_WORK/fsck.out" 2>&1 || { cat "$IT_WORK/fsck.out" >&2; fail "fsck -n found problems"; }
it_log "PASS"
