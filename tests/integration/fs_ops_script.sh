#!/usr/bin/env bash
# The POSIX operations that fs_ops_test.sh runs on tmpfs and on raidfs: every step prints the
# command, its stdout, its stderr and its exit status, and nothing that legitimately differs between
# two filesystems (inode numbers, device ids, directory sizes, block counts, times not set by the
# script). Two runs must print the same text.
# (fs_ops_test.sh prints long runs of one character, as in 255-byte names, as <COUNTxCHAR>.)
#   usage: fs_ops_script.sh DIR SCRATCH   (DIR: an empty directory on the filesystem under test;
#                                          SCRATCH: a directory elsewhere for captured output)
set -uo pipefail
dir=${1:?dir} scratch=${2:?scratch}
cd "$dir" || exit 1
umask 022
export LC_ALL=C TZ=UTC

# run CMD...: prints "$ CMD", then its output ("| "), errors ("! ") and status. Error messages
# name paths relative to DIR; the absolute path, if any, becomes <DIR>.
run() {
  printf '$ %s\n' "$*"
  "$@" >"$scratch/out" 2>"$scratch/err"
  local rc=$?
  sed -e "s|$dir|<DIR>|g" -e 's/^/| /' "$scratch/out"
  sed -e "s|$dir|<DIR>|g" -e 's/^/! /' "$scratch/err"
  echo "rc=$rc"
}
section() { printf '\n### %s\n' "$*"; }

# py CODE: a Python snippet with helpers (attempt(f, *args) prints the result, OK, or
# "ERR <ENAME>"; renameat2(old, new, flags)), shown in the transcript as "$ py CODE".
cat >"$scratch/prelude.py" <<'PY'
import os, sys, errno, ctypes, stat, hashlib
libc = ctypes.CDLL(None, use_errno=True)
def err(e): print('ERR', errno.errorcode.get(e.errno, e.errno))
def renameat2(a, b, flags):
    libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if libc.renameat2(-100, a.encode(), -100, b.encode(), flags) != 0:
        e = ctypes.get_errno(); raise OSError(e, os.strerror(e))
def attempt(f, *a, **kw):
    try:
        r = f(*a, **kw); print('OK' if r is None else r)
    except OSError as e: err(e)
PY
py() {
  printf '$ py %s\n' "$1"
  { cat "$scratch/prelude.py"; printf '%s\n' "$1"; } >"$scratch/snippet.py"
  python3 "$scratch/snippet.py" >"$scratch/out" 2>"$scratch/err"
  local rc=$?
  sed -e "s|$dir|<DIR>|g" -e 's/^/| /' "$scratch/out"
  sed -e "s|$dir|<DIR>|g" -e "s|$scratch|<SCRATCH>|g" -e 's/^/! /' "$scratch/err"
  echo "rc=$rc"
}
sha() { sha256sum "$@" | cut -c1-16; }
statf() { stat -c '%n type=%F mode=%a uid=%u gid=%g size=%s nlink=%h' "$@"; }
statd() { stat -c '%n type=%F mode=%a uid=%u gid=%g nlink=%h' "$@"; }

section "mkdir / rmdir"
run mkdir a
run mkdir a
run mkdir a/b
run mkdir -p a/b/c/d
run statd a a/b
run rmdir a
run rmdir nonexistent
run rmdir a/b/c/d
run rmdir a/b/c
run statd a/b
run mkdir nonexistent/x
run touch a/file
run rmdir a/file
run mkdir a/file/x
run ls a

section "create, write, append, read"
run sh -c 'echo hello > f'
run sh -c 'printf world >> f'
run sh -c 'printf "\n%s\n" "line 3" >> f'
run cat f
run statf f
run dd if=/dev/zero of=f bs=1 count=3 seek=2 conv=notrunc status=none
run od -c f
py "
fd = os.open('ap', os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
os.write(fd, b'one'); os.lseek(fd, 0, 0); os.write(fd, b'two'); os.close(fd)
print(open('ap','rb').read())"
py "
fd = os.open('excl', os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640); os.close(fd)
attempt(os.open, 'excl', os.O_CREAT | os.O_EXCL | os.O_WRONLY)"
run statf excl
# Writes at scattered offsets and sizes, read back at other offsets.
py "
import random
r = random.Random(7); data = bytearray(300000)
fd = os.open('scatter', os.O_CREAT | os.O_RDWR, 0o644)
for i in range(200):
    off = r.randrange(0, 290000); n = r.randrange(1, 9000)
    buf = bytes(r.getrandbits(8) for _ in range(min(n, 64))) * (n // 64 + 1)
    buf = buf[:n]; end = min(off + n, len(data)); buf = buf[:end - off]
    os.pwrite(fd, buf, off); data[off:end] = buf
size = os.fstat(fd).st_size
ok = all(os.pread(fd, n, off) == bytes(data[off:min(off + n, size)]) for off, n in
         [(r.randrange(0, size), r.randrange(1, 20000)) for _ in range(100)])
print('size', size, 'reads ok', ok)
os.close(fd)"

# Shared writable mmap, then read(2) of the same bytes; a copy inside the filesystem
# (copy_file_range where cp uses it); an O_TRUNC overwrite of a bigger file.
py "
import mmap
fd = os.open('mm', os.O_CREAT | os.O_RDWR, 0o644); os.ftruncate(fd, 3 * 4096 + 5)
m = mmap.mmap(fd, 3 * 4096 + 5); m[4000:4200] = b'M' * 200; m[-5:] = b'tail!'; m.flush(); m.close()
os.close(fd); data = open('mm', 'rb').read()
print(len(data), data.count(b'M'), data[-5:], data[4000:4200] == b'M' * 200)"
run cp scatter scatter-copy
run cmp scatter scatter-copy
run sh -c 'echo short > scatter-copy; stat -c %s scatter-copy; cat scatter-copy'

section "truncate"
run sh -c 'head -c 10000 /dev/zero | tr "\0" x > t'
run truncate -s 100000 t
run statf t
run sh -c 'head -c 10000 t | tr -d x | wc -c; tail -c 90000 t | tr -d "\0" | wc -c'
run truncate -s 5000 t
run statf t
run sh -c 'tr -d x < t | wc -c'
run truncate -s 8192 t
run sh -c 'tail -c 3192 t | tr -d "\0" | wc -c'
run truncate -s 0 t
run statf t
run truncate -s 1G t
run statf t
run truncate -s 12345 t
run sha t
run truncate -s -1 nonexistent-dir/x
py "
fd = os.open('t2', os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b'a' * 20000); os.ftruncate(fd, 100); os.lseek(fd, 0, 2); os.write(fd, b'b')
os.pwrite(fd, b'c', 9000)
print(os.fstat(fd).st_size, os.pread(fd, 200, 0).count(b'a'), os.pread(fd, 10000, 0).count(b'\0'))
os.close(fd)"

section "chmod, chown"
run chmod 600 f
run statf f
run chmod 4755 f
run stat -c '%A' f
run chmod u=rwx,g=,o=x a
run statd a
run chown 1234:5678 f
run statf f
run chown :99 f
run stat -c '%u %g' f
run chown 42 a
run statd a
run chmod 644 nonexistent

section "utimens"
run touch -d '2001-02-03 04:05:06.123456789' f
run stat -c 'mtime=%y atime=%x' f
run touch -m -d '1999-12-31 23:59:59.5' f
run stat -c 'mtime=%y' f
run touch -a -d '2030-01-01 00:00:00.000000001' f
run stat -c 'atime=%x' f
run touch -d '1960-06-01 12:00:00' old
run stat -c 'mtime=%y' old
run touch -d '2002-02-02 02:02:02.2' a
run stat -c 'mtime=%y' a
py "
os.utime('f', ns=(1, 1700000000123456789)); s = os.stat('f'); print(s.st_mtime_ns)"
# A write moves mtime (to now): only 'it changed' is comparable.
py "
before = os.stat('f').st_mtime_ns
with open('f', 'ab') as fh: fh.write(b'!')
print('mtime moved on write:', os.stat('f').st_mtime_ns != before)"

section "hard links"
run ln f g
run stat -c '%h' f g
run cmp f g
run ln f a/g2
run stat -c '%h' f
run rm g
run stat -c '%h' f a/g2
run ln f a/g2
run ln a hardlink-to-dir
run ln nonexistent x
run rm a/g2
run stat -c '%h' f

section "symlinks"
run ln -s f sl
run readlink sl
run cmp sl f
run stat -c '%F %s' sl
run ln -s does/not/exist dangling
run readlink dangling
run cat dangling
long=$(printf 'x%.0s' {1..1000})
run ln -s "$long" longlink
run sh -c "readlink longlink | wc -c"
run ln -s f sl
run ln -sfn g sl
run readlink sl
run mkdir sdir
run ln -s ../f sdir/up
run cmp sdir/up f
run readlink f

section "rename"
run sh -c 'echo AAA > r1; echo BBB > r2'
run mv r1 r2
run cat r2
run ls r1
run mkdir d1 d2 d3
run touch d1/in d3/full
run mv -T d1 d2
run ls d2
run mv -T d2 d3
run ls d2 d3
py "attempt(os.rename, 'd2', 'd3')"
py "attempt(os.rename, 'r2', 'd3')"
py "attempt(os.rename, 'd2', 'r2')"
py "attempt(os.rename, 'd2', 'd2/sub')"
py "attempt(os.rename, 'nonexistent', 'x')"
py "attempt(os.rename, 'r2', 'r2')"
py "attempt(os.rename, 'r2', 'nonexistent-dir/r2')"
run mv r2 d2/r2
run cat d2/r2
run mv d2 d3/d2moved
run ls -R d3
run statd d3
run mv d3/d2moved .
run statd d3 d2moved

section "renameat2"
run sh -c 'echo X > x1; echo Y > y1; mkdir ed; touch ed/inside'
py "attempt(renameat2, 'x1', 'y1', 1)"
py "attempt(renameat2, 'x1', 'x2', 1)"
run cat x2 y1
py "attempt(renameat2, 'x2', 'y1', 2)"
run cat x2 y1
py "attempt(renameat2, 'x2', 'ed', 2)"
run ls ed x2
run cat ed
py "attempt(renameat2, 'x2', 'nonexistent', 2)"
py "attempt(renameat2, 'x2', 'y1', 3)"
py "attempt(renameat2, 'ed', 'x2', 2)"
run ls ed

section "fifo, device node"
run mkfifo p
run stat -c '%F %a' p
run sh -c '(echo through-the-fifo > p &) ; cat p'
run mknod cdev c 1 3
run stat -c '%F %t %T' cdev
run mkfifo p

section "unlink while open"
py "
fd = os.open('open-unlinked', os.O_CREAT | os.O_RDWR, 0o644)
os.write(fd, b'before')
os.unlink('open-unlinked')
print('listed:', 'open-unlinked' in os.listdir('.'), 'nlink:', os.fstat(fd).st_nlink)
data = os.urandom(1 << 20)
os.write(fd, data); os.fsync(fd)
print('read back ok:', os.pread(fd, len(data), 6) == data and os.pread(fd, 6, 0) == b'before')
print('size:', os.fstat(fd).st_size)
os.close(fd)
attempt(os.stat, 'open-unlinked')"

# Renamed over while open: the open file keeps its data until closed.
py "
open('victim', 'wb').write(b'old content' * 1000); open('winner', 'wb').write(b'new')
fd = os.open('victim', os.O_RDONLY)
os.rename('winner', 'victim')
print('open fd reads:', os.pread(fd, 11, 0), os.fstat(fd).st_size, 'nlink', os.fstat(fd).st_nlink)
os.close(fd)
print('name reads:', open('victim', 'rb').read())"

section "name length"
n255=$(printf 'n%.0s' {1..255}) n256=$(printf 'n%.0s' {1..256})
run touch "$n255"
run mkdir "d$(printf 'n%.0s' {1..254})"
run sh -c 'ls | grep -c "^nnnnnnnnnn"'
run touch "$n256"
run mkdir "$n256"
run stat -c '%s' "$n255"
run mv "$n255" "$n256"
run rm "$n255"
run sh -c 'printf "%s\n" * | awk "{ print length }" | sort -n | tail -n 2'

section "xattrs"
run touch xf
py "attempt(os.setxattr, 'xf', 'user.a', b'1')"
py "attempt(os.getxattr, 'xf', 'user.a')"
py "attempt(os.setxattr, 'xf', 'user.a', b'2', os.XATTR_CREATE)"
py "attempt(os.setxattr, 'xf', 'user.a', b'3', os.XATTR_REPLACE)"
py "attempt(os.getxattr, 'xf', 'user.a')"
py "attempt(os.setxattr, 'xf', 'user.b', b'x', os.XATTR_REPLACE)"
py "attempt(os.setxattr, 'xf', 'user.b', b'', os.XATTR_CREATE)"
py "attempt(os.getxattr, 'xf', 'user.b')"
py "attempt(os.setxattr, 'xf', 'user.big', bytes(range(256)) * 16)"
py "print(hashlib.sha256(os.getxattr('xf', 'user.big')).hexdigest()[:16])"
py "print(sorted(os.listxattr('xf')))"
py "attempt(os.removexattr, 'xf', 'user.a')"
py "attempt(os.removexattr, 'xf', 'user.a')"
py "attempt(os.getxattr, 'xf', 'user.a')"
py "print(sorted(os.listxattr('xf')))"
py "attempt(os.setxattr, 'a', 'user.dir', b'on a dir')"
py "attempt(os.getxattr, 'a', 'user.dir')"
py "attempt(os.setxattr, 'sl', 'user.x', b'1', 0, follow_symlinks=False)"
py "attempt(os.getxattr, 'xf', 'user.' + 'k' * 250)"
py "attempt(os.setxattr, 'xf', 'user.' + 'k' * 250, b'long name')"
py "attempt(os.getxattr, 'xf', 'user.' + 'k' * 250)"
run ln xf xf-link
py "attempt(os.getxattr, 'xf-link', 'user.b')"

section "sparse files"
run truncate -s 10M sp
run dd if=/dev/urandom of="$scratch/blk" bs=4096 count=1 status=none
run dd if="$scratch/blk" of=sp bs=4096 seek=1280 conv=notrunc status=none
run statf sp
run sh -c 'head -c 5242880 sp | tr -d "\0" | wc -c'
run sh -c 'tail -c 5238784 sp | tr -d "\0" | wc -c'
run sh -c "dd if=sp bs=4096 skip=1280 count=1 status=none | cmp - $scratch/blk"
run sh -c "dd if=$scratch/blk of=sp bs=1 seek=20000000 conv=notrunc status=none; stat -c %s sp"
run sh -c 'head -c 20000000 sp | tail -c 14753024 | tr -d "\0" | wc -c'
# SEEK_DATA/SEEK_HOLE answers differ between filesystems (a filesystem may report all data), so
# they are checked for validity, not compared: data is never inside a claimed hole, and the holes
# and data ranges the answers describe are consistent with the file's bytes.
py "
size = os.stat('sp').st_size
fd = os.open('sp', os.O_RDONLY)
content = os.pread(fd, size, 0)
bad = []
for off in [0, 4096, 5 << 20, (5 << 20) + 100, (5 << 20) + 4096, 8 << 20, 20000000, size - 1]:
    try:
        d = os.lseek(fd, off, os.SEEK_DATA)
        if not (off <= d < size) or content[off:d].count(0) != d - off: bad.append(('data', off, d))
    except OSError as e:
        if e.errno != errno.ENXIO or content[off:].count(0) != size - off: bad.append(('data', off, e.errno))
    h = os.lseek(fd, off, os.SEEK_HOLE)
    if not (off <= h <= size) or (h < size and content[h] != 0): bad.append(('hole', off, h))
for whence in (os.SEEK_DATA, os.SEEK_HOLE):
    try: r = os.lseek(fd, size, whence); bad.append(('past end', whence, r))
    except OSError as e:
        if e.errno != errno.ENXIO: bad.append(('past end', whence, e.errno))
print('seek answers valid' if not bad else bad)
os.close(fd)"

section "fallocate"
run fallocate -l 1M fa
run statf fa
run sh -c 'tr -d "\0" < fa | wc -c'
run sh -c 'head -c 65536 /dev/zero | tr "\0" y > fp'
run fallocate -p -o 4096 -l 8192 fp
run statf fp
run sh -c 'head -c 4096 fp | tr -d y | wc -c; head -c 12288 fp | tail -c 8192 | tr -d "\0" | wc -c; tail -c 53248 fp | tr -d y | wc -c'
run fallocate -p -o 60000 -l 100000 fp
run statf fp
run sh -c 'tail -c 5536 fp | tr -d "\0" | wc -c'
run fallocate -n -o 0 -l 2M fp
run statf fp
run fallocate -o 100000 -l 50000 fp
run statf fp
run sha fp
# FALLOC_FL_ZERO_RANGE: tmpfs does not have it; where it is supported it must zero the range.
run sh -c 'if fallocate -z -o 10 -l 100 fp 2>/dev/null; then head -c 110 fp | tail -c 100 | tr -d "\0" | wc -c; else echo 0; fi; head -c 10 fp | tr -d y | wc -c; stat -c %s fp'

section "a directory of 5000 entries"
run mkdir big
run sh -c 'cd big && seq -f "entry-%05g" 5000 | xargs touch'
run sh -c 'ls big | wc -l'
run sh -c 'ls -f big | LC_ALL=C sort | sha256sum | cut -c1-16'
run sh -c 'ls big | tail -n 1'
run sh -c 'find big -type f | wc -l'
run sh -c 'cd big && seq -f "entry-%05g" 1 2 5000 | xargs rm'
run sh -c 'ls big | wc -l'
run sh -c 'ls -f big | LC_ALL=C sort | sha256sum | cut -c1-16'
py "
names = os.listdir('big'); print(len(names), len(set(names)))
for n in names[:100]: os.unlink('big/' + n)
print(len(os.listdir('big')))"
run sh -c 'ls big | wc -l'
run rm -r big
run ls big

section "statfs"
# Values differ between filesystems; check they are sane (comparable only as a verdict).
run sh -c 'stat -f -c "%S %b %f %a %l %c" . | awk "{ ok = \$1 > 0 && \$2 > 0 && \$3 <= \$2 && \$4 <= \$3 && \$5 == 255; print (ok ? \"statfs sane\" : \"statfs insane: \" \$0) }"'
run sh -c 'df -P . | tail -n 1 | awk "{ print (\$2 > 0 && \$3 + \$4 <= \$2 + 1 ? \"df sane\" : \"df insane: \" \$0) }"'

section "rm -r and the final tree"
run rm -r a/file d2moved
run sh -c 'find . -mindepth 1 -printf "%y %M %p\n" | LC_ALL=C sort | grep -v -e "^d" '
run sh -c 'find . -mindepth 1 -type d | LC_ALL=C sort'
