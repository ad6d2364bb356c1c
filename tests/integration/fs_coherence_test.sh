#!/usr/bin/env bash
# Goal: what a program reads on the mount is what was last written, whichever way it was written,
# and sizes survive operations that drop unsynced data.
#   1. buffered reads racing asynchronous O_DIRECT writes (io_uring and libaio-style AIO) of the
#      same range see the new bytes once the writes have completed (dio_read_race);
#   2. a 64 KiB file zeroed block by block with fallocate --zero-range (xfs_io fzero's call)
#      right after it was written keeps its size and reads as zeros, before and after a remount;
#   3. opens racing unlinks and renames over the same name: a descriptor that opened never sees
#      ENOENT and reads back what it wrote, however often the name is replaced meanwhile.
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

python3 - "$mp" <<'PY' || fail "an open file handle lost its inode to a concurrent unlink or rename"
import errno, os, sys, threading, time
mp = sys.argv[1]
stop = threading.Event()
problems, counts, lock = [], {"handles": 0, "refused": 0, "replaced": 0}, threading.Lock()
def replacer(w):
    i = 0
    while not stop.is_set():
        i += 1
        tmp = f"{mp}/race-tmp{w}"
        with open(tmp, "wb") as f:
            f.write(b"r" * 5000)
        try:
            if i % 2 == 0:
                os.unlink(f"{mp}/race")
            os.rename(tmp, f"{mp}/race")
            with lock: counts["replaced"] += 1
        except FileNotFoundError:
            pass
def opener(w):
    block = bytes([w + 1]) * 4096
    while not stop.is_set():
        try:
            fd = os.open(f"{mp}/race", os.O_RDWR)
        except FileNotFoundError:
            with lock: counts["refused"] += 1
            continue
        try:
            os.pwrite(fd, block, 8192 * (w + 1))
            st = os.fstat(fd)
            back = os.pread(fd, 4096, 8192 * (w + 1))
            if back != block:
                raise OSError(0, f"read back {len(back)} bytes, not what was written")
            if st.st_size < 8192 * (w + 1) + 4096:
                raise OSError(0, f"size {st.st_size} after a write past it")
            with lock: counts["handles"] += 1
        except OSError as e:
            with lock: problems.append(f"opener {w}: {e}")
        finally:
            os.close(fd)
threads = [threading.Thread(target=replacer, args=(w,)) for w in range(2)]
threads += [threading.Thread(target=opener, args=(w,)) for w in range(2)]
for t in threads: t.start()
time.sleep(4)
stop.set()
for t in threads: t.join()
print(f"{counts['handles']} handles used, {counts['refused']} opens after the name was gone, "
      f"{counts['replaced']} replacements, {len(problems)} problems")
for p in problems[:5]: print("   ", p)
sys.exit(1 if problems or counts["handles"] < 20 else 0)
PY
it_umount "$mp"

# SEEK_DATA/SEEK_HOLE see data the kernel still holds (written, not synced, not yet sent to the
# daemon under the writeback cache): never ENXIO for it; and cp, tar --sparse, rsync --sparse
# copy such files byte for byte.
it_mount "$arr/meta" "$mp"
python3 - "$mp/seek" <<'PY' || fail "SEEK_DATA/SEEK_HOLE miss data that is not yet synced"
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"x" * 5000, 0)
d = os.lseek(fd, 0, os.SEEK_DATA)
h = os.lseek(fd, 0, os.SEEK_HOLE)
assert d == 0 and h >= 5000, (d, h)
os.pwrite(fd, b"y" * 4096, 1 << 20)
assert os.lseek(fd, 1 << 20, os.SEEK_DATA) == 1 << 20
os.close(fd)
PY
it_random_file "$IT_WORK/part" 70000
truncate -s 3M "$mp/sparse"
dd if="$IT_WORK/part" of="$mp/sparse" bs=4096 seek=200 conv=notrunc status=none
cp "$mp/sparse" "$IT_WORK/sparse.ref"   # what the file holds, read through the page cache
mkdir -p "$IT_WORK/copies"
cp --sparse=always "$mp/sparse" "$IT_WORK/copies/cp"
cmp "$IT_WORK/sparse.ref" "$IT_WORK/copies/cp" || fail "cp --sparse=always of an unsynced file differs"
(cd "$mp" && tar --sparse -cf "$IT_WORK/sparse.tar" sparse) && tar -xf "$IT_WORK/sparse.tar" -C "$IT_WORK/copies"
cmp "$IT_WORK/sparse.ref" "$IT_WORK/copies/sparse" || fail "tar --sparse of an unsynced file differs"
if command -v rsync >/dev/null; then
  rsync --sparse "$mp/sparse" "$IT_WORK/copies/rsync"
  cmp "$IT_WORK/sparse.ref" "$IT_WORK/copies/rsync" || fail "rsync --sparse of an unsynced file differs"
fi
it_log "SEEK_DATA/SEEK_HOLE and sparse copies (cp, tar$(command -v rsync >/dev/null && echo ", rsync")) see unsynced data"
it_umount "$mp"

# readdir while names in the directory are renamed: every listing holds each file once (a rename
# within the directory keeps the entry's place), never more entries than exist.
it_mount "$arr/meta" "$mp"
python3 - "$mp/many" <<'PY' || fail "readdir during renames returned an entry twice or too many"
import os, sys, threading
d = sys.argv[1]
os.mkdir(d)
n = 3000
for i in range(n):
    open(os.path.join(d, f"f{i}"), "w").close()
stop = threading.Event()
problems, listings = [], [0]
def renamer():
    i, to_g = 0, True
    while not stop.is_set():
        a, b = (f"f{i}", f"g{i}") if to_g else (f"g{i}", f"f{i}")
        os.rename(os.path.join(d, a), os.path.join(d, b))
        i += 1
        if i == n: i, to_g = 0, not to_g
def reader():
    while not stop.is_set():
        with os.scandir(d) as it:
            inodes = [e.inode() for e in it]
        listings[0] += 1
        if len(inodes) != len(set(inodes)) or len(inodes) > n:
            problems.append(f"{len(inodes)} entries, {len(set(inodes))} inodes, of {n}")
t = [threading.Thread(target=renamer), threading.Thread(target=reader)]
for x in t: x.start()
threading.Event().wait(4)
stop.set()
for x in t: x.join()
print(f"{listings[0]} listings during renames, {len(problems)} wrong")
for p in problems[:3]: print("   ", p)
sys.exit(1 if problems or listings[0] < 3 else 0)
PY
it_log "readdir during renames in the directory: each file listed once"
it_umount "$mp"

# A directory removed while open (rmdir, or renamed over by another) lives until it is closed:
# fstat and readdir on the open descriptor work (empty, nlink 0), as on ext4; after the close,
# and after a SIGKILL with one still open, fsck finds nothing wrong.
it_mount "$arr/meta" "$mp"
python3 - "$mp" <<'PY' || fail "a directory removed while open did not live on until closed"
import os, sys
mp = sys.argv[1]
for d in ("a", "b", "c"): os.mkdir(os.path.join(mp, d))
fb = os.open(os.path.join(mp, "b"), os.O_RDONLY | os.O_DIRECTORY)
os.rename(os.path.join(mp, "a"), os.path.join(mp, "b"))   # a over the empty, open b
fc = os.open(os.path.join(mp, "c"), os.O_RDONLY | os.O_DIRECTORY)
os.rmdir(os.path.join(mp, "c"))
for fd, what in ((fb, "renamed over"), (fc, "removed")):
    st = os.fstat(fd)
    assert st.st_nlink == 0, (what, st.st_nlink)
    assert os.listdir(fd) == [], what
os.close(fb)
os.close(fc)
PY
# One still open when the daemon is killed: an orphan directory, which fsck accepts and the next
# mount removes.
python3 - "$mp" >"$IT_WORK/holder.out" <<'PY' &
import os, sys, time
d = os.path.join(sys.argv[1], "kept-open")
os.mkdir(d)
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
os.rmdir(d)
print("ready", flush=True)
time.sleep(60)
PY
holder=$!
for ((t = 0; t < 100; t++)); do grep -q ready "$IT_WORK/holder.out" && break; sleep 0.1; done
grep -q ready "$IT_WORK/holder.out" || fail "the holder did not get its directory open"
it_kill_daemon "$mp"
kill $holder 2>/dev/null || true  # after the daemon: its close must not reach it
wait $holder 2>/dev/null || true
# (the killed daemon's member files are let go a moment after it dies: its rings are torn down
# asynchronously)
for ((t = 0; t < 50; t++)); do
  rc=0; out=$("$IT_BUILD/utils/raidfs-fsck" -n "$arr/meta" 2>&1) || rc=$?
  [[ $rc -ne 0 && $out == *"in use"* ]] || break
  sleep 0.1
done
((rc == 0)) || fail "fsck with an orphan directory left by a SIGKILL: $out"
it_mount "$arr/meta" "$mp"
it_umount "$mp"
out=$("$IT_BUILD/utils/raidfs-fsck" -n "$arr/meta" 2>&1) || fail "fsck after the mount removed the orphan directory: $out"
it_log "directories removed while open lived until closed; an orphan one after a SIGKILL is removed at mount; fsck clean"
