#!/usr/bin/env bash
# Goal: what fsync said is durable survives the daemon being killed (SIGKILL) in the middle of
# writes: after a lazy unmount and a remount, every fsynced file — new files and fsynced prefixes
# of files being appended to — reads back exactly, every other file reads without an error, and
# the filesystem takes writes again. (The bounded crash test of the whole system is bigger; this
# one is small.)
# Method: a Python writer creates files and appends to others, fsyncing each (and its directory)
# and only then recording name, length and sha256 in a log outside the mount; unsynced files are
# written in between. The daemon is killed while the writer runs, twice (the second time after
# more fsyncs, on the remounted array), each time followed by fusermount3 -u -z, a remount and
# the check of everything recorded so far.
#   usage: fs_killed_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_killed
command -v fusermount3 >/dev/null || skip "no fusermount3"

arr=$IT_WORK/arr mp=$IT_WORK/mnt log=$IT_WORK/fsynced.log
it_make_array "$arr" 6 128M -l 6 -c 16K
it_mount "$arr/meta" "$mp"
: >"$log"

cat >"$IT_WORK/writer.py" <<'PY'
import hashlib, os, random, sys
mp, log, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = random.Random(seed)
out = open(log, "a", buffering=1)
d = os.path.join(mp, f"round{seed}")
os.makedirs(d, exist_ok=True)
def fsync_dir():
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try: os.fsync(fd)
    finally: os.close(fd)
fsync_dir()
sizes = [1, 100, 4095, 4096, 4097, 16384, 65536, 65537, 200000, 1 << 20, 3 << 20]
appended = {f"append{j}": hashlib.sha256() for j in range(3)}
lengths = {name: 0 for name in appended}
i = 0
try:
    while True:
        i += 1
        kind = r.random()
        if kind < 0.45:
            name = f"file{i}"; data = r.randbytes(r.choice(sizes))
            fd = os.open(os.path.join(d, name), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
            os.write(fd, data); os.fsync(fd); os.close(fd); fsync_dir()
            out.write(f"file {d}/{name} {len(data)} {hashlib.sha256(data).hexdigest()}\n")
        elif kind < 0.8:
            name = r.choice(sorted(appended)); data = r.randbytes(r.choice(sizes[:8]))
            fd = os.open(os.path.join(d, name), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o644)
            os.write(fd, data); os.fsync(fd); os.close(fd); fsync_dir()
            appended[name].update(data); lengths[name] += len(data)
            out.write(f"prefix {d}/{name} {lengths[name]} {appended[name].hexdigest()}\n")
        else:
            name = f"nosync{i}"
            with open(os.path.join(d, name), "wb") as f: f.write(r.randbytes(r.choice(sizes)))
except OSError as e:
    print(f"writer stopped after {i} steps: {e}", file=sys.stderr)
PY

cat >"$IT_WORK/check.py" <<'PY'
import hashlib, os, sys
last = {}
for line in open(sys.argv[1]):
    kind, path, length, digest = line.split()
    last[path] = (kind, int(length), digest)
bad = 0
for path, (kind, length, digest) in sorted(last.items()):
    try:
        with open(path, "rb") as f: data = f.read()
    except OSError as e:
        print(f"{path}: fsynced ({length} bytes) but cannot be read: {e}"); bad += 1; continue
    if kind == "file" and len(data) != length:
        print(f"{path}: fsynced with {length} bytes, reads back {len(data)}"); bad += 1
    elif len(data) < length:
        print(f"{path}: {length} bytes fsynced by appends, reads back only {len(data)}"); bad += 1
    elif hashlib.sha256(data[:length]).hexdigest() != digest:
        print(f"{path}: the {length} fsynced bytes read back different"); bad += 1
# Every other file must read without an error (its content is whatever made it).
for root, dirs, files in os.walk(sys.argv[2]):
    for n in files:
        p = os.path.join(root, n)
        try:
            with open(p, "rb") as f:
                while f.read(1 << 20): pass
        except OSError as e:
            print(f"{p}: cannot be read after the crash: {e}"); bad += 1
print(f"{len(last)} fsynced files checked, {bad} bad")
sys.exit(1 if bad else 0)
PY

# crash_round ROUND FSYNCS: runs the writer until the log has FSYNCS more records, kills the daemon
# (SIGKILL), lazily unmounts, remounts, and checks everything fsynced in every round so far.
crash_round() {
  local round=$1 want=$2 before t pids
  before=$(wc -l <"$log")
  python3 "$IT_WORK/writer.py" "$mp" "$log" "$round" 2>"$IT_WORK/writer-$round.err" &
  local writer=$!
  for ((t = 0; t < 600; t++)); do
    (($(wc -l <"$log") - before >= want)) && break
    kill -0 "$writer" 2>/dev/null || { cat "$IT_WORK/writer-$round.err" >&2; fail "round $round: the writer stopped before the crash"; }
    sleep 0.1
  done
  (($(wc -l <"$log") - before >= want)) || fail "round $round: the writer made only $(($(wc -l <"$log") - before)) fsyncs in 60 s"
  pids=$(it_daemon_pids "$mp" "$IT_WORK")
  [[ -n $pids ]] || fail "round $round: no daemon found to kill"
  kill -KILL $pids
  it_log "round $round: killed the daemon (pid $(echo $pids)) after $(($(wc -l <"$log") - before)) fsyncs"
  wait "$writer" || true
  it_log "round $round: $(cat "$IT_WORK/writer-$round.err")"
  fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
  it_umount "$mp"   # waits until nothing holds the images any more
  it_mount "$arr/meta" "$mp"
  python3 "$IT_WORK/check.py" "$log" "$mp" >"$IT_WORK/check-$round.out" 2>&1 ||
    { cat "$IT_WORK/check-$round.out" >&2; fail "round $round: fsynced data lost or unreadable after the daemon was killed"; }
  it_log "round $round: $(tail -n 1 "$IT_WORK/check-$round.out")"
}

crash_round 1 25
crash_round 2 60

# The filesystem still works after the crashes: a new file, a clean unmount, a remount.
it_random_file "$IT_WORK/after" 3000000
cp "$IT_WORK/after" "$mp/after" || fail "writing after the crashes failed"
it_umount "$mp"
it_mount "$arr/meta" "$mp"
cmp "$IT_WORK/after" "$mp/after" || fail "a file written after the crashes reads back wrong after a clean remount"
python3 "$IT_WORK/check.py" "$log" "$mp" >/dev/null || fail "fsynced data changed after a clean remount"
it_umount "$mp"
