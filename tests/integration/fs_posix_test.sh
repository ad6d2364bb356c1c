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
#      never gets a ctime before a reading of the kernel's file clock taken just before it;
#   6. POSIX ACLs: setfacl/getfacl, enforced for another user, the mode in step (chmod, the
#      mask), default ACLs inherited instead of the umask, kept (with xattrs and holes) by cp -a,
#      rsync -aAX --sparse and tar --acls --xattrs --sparse, and across a remount;
#   7. O_TMPFILE: a file without a name, written, then named by linkat (kept across a remount),
#      or gone at its close; one opened O_EXCL cannot be named; after a SIGKILL the next mount
#      removes one that was never named, fsck clean throughout.
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
# 6. POSIX ACLs, checked as user 1000 (setpriv) where enforcement matters.
command -v setfacl >/dev/null || fail "setfacl is not installed (scripts/deps.sh installs acl)"
chmod o+x "$IT_WORK"
as_user() { setpriv --reuid=1000 --regid=1000 --clear-groups -- "$@"; }
mkdir "$mp/acl"
echo secret >"$mp/acl/f"
chmod 600 "$mp/acl/f"
as_user cat "$mp/acl/f" >/dev/null 2>&1 && fail "user 1000 reads a 0600 file of root's"
setfacl -m u:1000:r "$mp/acl/f" || fail "setfacl -m u:1000:r failed"
getfacl -cn "$mp/acl/f" | grep -qx "user:1000:r--" || fail "getfacl does not show user:1000:r--: $(getfacl -cn "$mp/acl/f")"
[[ $(stat -c %a "$mp/acl/f") == 640 ]] || fail "the mode is $(stat -c %a "$mp/acl/f") with mask r--, not 640"
[[ $(as_user cat "$mp/acl/f") == secret ]] || fail "the ACL does not let user 1000 read the file"
chmod 600 "$mp/acl/f"
getfacl -cn "$mp/acl/f" | grep -qx "mask::---" || fail "chmod 600 did not set the mask to ---: $(getfacl -cn "$mp/acl/f")"
as_user cat "$mp/acl/f" >/dev/null 2>&1 && fail "user 1000 still reads the file after chmod 600 (mask ---)"
chmod 640 "$mp/acl/f"
setfacl -d -m u:1000:rwx,o::- "$mp/acl" || fail "setfacl -d failed"
(umask 077 && echo new >"$mp/acl/new" && mkdir "$mp/acl/sub")
getfacl -cn "$mp/acl/new" | grep -q "^user:1000:rwx" || fail "the new file did not inherit the default ACL: $(getfacl -cn "$mp/acl/new")"
[[ $(stat -c %a "$mp/acl/new") == 660 ]] || fail "the new file's mode is $(stat -c %a "$mp/acl/new"), not 660 (default ACL, no umask)"
getfacl -cnd "$mp/acl/sub" | grep -q "^user:1000:rwx" || fail "the new directory did not inherit the default ACL"
[[ $(as_user cat "$mp/acl/new") == new ]] || fail "the inherited ACL does not let user 1000 read"
cp --sparse=always "$mp/sparse" "$mp/acl/sparse"
setfattr -n user.colour -v blue "$mp/acl/sparse"
acl_tree() { (cd "$1" && find . -print0 | sort -z | xargs -0 getfacl -n 2>/dev/null); }  # every ACL under DIR
acl_tree "$mp/acl" >"$IT_WORK/acl.ref"
cp -a "$mp/acl" "$mp/acl-cp"
rsync -aAX --sparse "$mp/acl/" "$mp/acl-rsync/"
(cd "$mp" && tar --acls --xattrs --sparse -cf "$IT_WORK/acl.tar" acl) && mkdir "$mp/acl-tar" && tar --acls --xattrs -xf "$IT_WORK/acl.tar" -C "$mp/acl-tar"
for c in acl-cp acl-rsync acl-tar/acl; do
  acl_tree "$mp/$c" | diff -u "$IT_WORK/acl.ref" - >&2 || fail "the ACLs of the $c copy differ"
  cmp "$IT_WORK/sparse.ref" "$mp/$c/sparse" || fail "the sparse file of the $c copy differs"
  b=$(blocks "$mp/$c/sparse")
  ((b < 1024)) || fail "the sparse file of the $c copy is not sparse ($b sectors)"
done
[[ $(getfattr --only-values -n user.colour "$mp/acl-rsync/sparse") == blue ]] || fail "rsync -aAX did not keep a user xattr"
[[ $(getfattr --only-values -n user.colour "$mp/acl-cp/sparse") == blue ]] || fail "cp -a did not keep a user xattr"
it_remount "$arr/meta" "$mp"
acl_tree "$mp/acl" | diff -u "$IT_WORK/acl.ref" - >&2 || fail "the ACLs differ after a remount"
[[ $(as_user cat "$mp/acl/f") == secret ]] || fail "after a remount the ACL does not let user 1000 read"
it_log "POSIX ACLs: enforced for user 1000, mode and mask in step, defaults inherited without the umask, kept by cp -a, rsync -aAX, tar --acls and a remount"

# 6b. Set-ID bits (raidfs clears them itself: FUSE_HANDLE_KILLPRIV_V2): a write or truncate by a
# user without CAP_FSETID clears set-user-ID, and set-group-ID where group-execute is set; root's
# keeps them; a user's write drops file capabilities.
command -v setcap >/dev/null || fail "setcap is not installed (scripts/deps.sh installs libcap2-bin)"
mkdir "$mp/setid" && chmod 777 "$mp/setid"
for m in 4777 2777 2767 6777; do echo data >"$mp/setid/f$m" && chmod "$m" "$mp/setid/f$m"; done
echo more >>"$mp/setid/f4777"
[[ $(stat -c %a "$mp/setid/f4777") == 4777 ]] || fail "root's write cleared set-user-ID: $(stat -c %a "$mp/setid/f4777")"
as_user sh -c "echo more >>'$mp/setid/f4777'"
[[ $(stat -c %a "$mp/setid/f4777") == 777 ]] || fail "a user's write left mode $(stat -c %a "$mp/setid/f4777"), not 777"
as_user sh -c "echo more >>'$mp/setid/f2777'"
[[ $(stat -c %a "$mp/setid/f2777") == 777 ]] || fail "a user's write left set-group-ID with group-execute: $(stat -c %a "$mp/setid/f2777")"
as_user sh -c "echo more >>'$mp/setid/f2767'"
[[ $(stat -c %a "$mp/setid/f2767") == 2767 ]] || fail "a user's write cleared set-group-ID without group-execute: $(stat -c %a "$mp/setid/f2767")"
as_user truncate -s 1 "$mp/setid/f6777"
[[ $(stat -c %a "$mp/setid/f6777") == 777 ]] || fail "a user's truncate left mode $(stat -c %a "$mp/setid/f6777"), not 777"
echo data >"$mp/setid/cap" && chmod 777 "$mp/setid/cap"
setcap cap_net_raw+ep "$mp/setid/cap" || fail "setcap on raidfs failed"
getcap "$mp/setid/cap" | grep -q cap_net_raw || fail "getcap does not show the capability set"
as_user sh -c "echo more >>'$mp/setid/cap'"
[[ -z $(getcap "$mp/setid/cap") ]] || fail "a user's write left the file capability: $(getcap "$mp/setid/cap")"
it_remount "$arr/meta" "$mp"
[[ $(stat -c %a "$mp/setid/f4777"):$(stat -c %a "$mp/setid/f2767") == 777:2767 ]] || fail "set-ID bits differ after a remount"
[[ $(cat "$mp/setid/f2777") == $'data\nmore' ]] || fail "the user's appended data is not there after a remount"
it_log "set-ID bits: cleared by a user's write and truncate (set-group-ID only with group-execute), kept by root's write; a user's write drops file capabilities"

# 7. O_TMPFILE.
python3 - "$mp" "$IT_WORK/part" <<'PY' || fail "O_TMPFILE files do not behave"
import ctypes, errno, os, sys
mp, part = sys.argv[1:]
data = open(part, "rb").read()
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, AT_EMPTY_PATH = -100, 0x1000
def name(fd, path):  # linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH): what the man page names
    if libc.linkat(fd, b"", AT_FDCWD, path.encode(), AT_EMPTY_PATH) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
fd = os.open(mp, os.O_TMPFILE | os.O_RDWR, 0o640)
os.write(fd, data)
st = os.fstat(fd)
assert st.st_nlink == 0 and st.st_size == len(data), (st.st_nlink, st.st_size)
assert os.listdir(mp).count("tmp-named") == 0
name(fd, os.path.join(mp, "tmp-named"))
assert os.fstat(fd).st_nlink == 1
os.close(fd)
with open(os.path.join(mp, "tmp-named"), "rb") as f:
    assert f.read() == data
fd = os.open(mp, os.O_TMPFILE | os.O_RDWR | os.O_EXCL, 0o600)
try:
    name(fd, os.path.join(mp, "tmp-excl"))
    sys.exit("an O_TMPFILE | O_EXCL file was named")
except OSError as e:
    assert e.errno == errno.ENOENT, e
os.close(fd)
before = os.statvfs(mp).f_bfree
fd = os.open(mp, os.O_TMPFILE | os.O_WRONLY, 0o600)
os.write(fd, os.urandom(4 << 20))
os.fsync(fd)
os.close(fd)
# FUSE sends RELEASE after close() has returned, so the space comes back shortly after.
import time
for _ in range(100):
    if os.statvfs(mp).f_bfree >= before - 16:
        break
    time.sleep(0.05)
assert os.statvfs(mp).f_bfree >= before - 16, "the space of a closed unnamed file did not come back in 5 s"
PY
it_remount "$arr/meta" "$mp"
cmp "$IT_WORK/part" "$mp/tmp-named" || fail "the named O_TMPFILE file differs after a remount"
python3 -c 'import os, sys, time; fd = os.open(sys.argv[1], os.O_TMPFILE | os.O_RDWR); os.write(fd, b"x" * 100000); os.fsync(fd); open(sys.argv[2], "w").close(); time.sleep(60)' "$mp" "$IT_WORK/tmp-open" &
holder=$!
for _ in $(seq 100); do [[ -e $IT_WORK/tmp-open ]] && break; sleep 0.1; done
it_kill_daemon "$mp"
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
out=$("$IT_BUILD/utils/raidfs-fsck" -n "$arr/meta" 2>&1) || fail "fsck -n after a SIGKILL with an unnamed file open: $out"
it_mount "$arr/meta" "$mp"
it_log "O_TMPFILE: named by linkat and kept across a remount, gone at close unnamed, O_EXCL never named, removed at mount after a SIGKILL"

it_umount "$mp"
"$IT_BUILD/utils/raidfs-fsck" -n "$arr/meta" >"$IT_WORK/fsck.out" 2>&1 || { cat "$IT_WORK/fsck.out" >&2; fail "fsck -n found problems"; }
it_log "PASS"
