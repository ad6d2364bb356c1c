# shellcheck shell=bash
# Shared helpers of the integration tests that mount a real raidfs (sourced, not run).
#
#   source "$(dirname "$0")/lib.sh"
#   it_init BUILD_DIR NAME      # skips (exit 77) unless root, /dev/fuse and mount.raidfs exist;
#                               # makes $IT_WORK (a temp dir) and a trap that cleans up on any exit
#   it_make_array DIR N SIZE MKFS_ARGS...   # N sparse images DIR/m0.img.. + mkfs; DIR/meta is
#                                           # the SPEC to mount it by
#   it_mount SPEC MP [MOUNT_ARGS...]        # mounts, fails the test if it does not mount
#   it_umount MP                            # unmounts and waits for the daemon to exit
#   it_compare_trees A B                    # contents byte for byte, types, modes, sizes, mtimes
#   it_status MP                            # the raidfs.status text of a mount
#   fail "what"                             # prints FAIL: what (and the daemon log) and exits 1
#
# Environment: RAIDFS_IT_TRANSPORT=uring|classic (it_mount passes -o transport=... before the
# test's own options, which may override it; unset: mount.raidfs's default, uring),
# RAIDFS_IT_METADATA=dir|region (it_make_array: the metadata in the directory DIR/meta, the
# default; or a self-contained array, its metadata on the members, and DIR/meta a directory of
# links to the member images — mounting a directory that holds an array's members),
# RAIDFS_IT_TMPDIR (where the images go; default /var/tmp), RAIDFS_IT_FOREGROUND=1
# (run the daemon with -f in the background, its stderr in $IT_WORK/daemon.log, printed on a
# failure; the default is the detaching mount a user runs), RAIDFS_IT_KEEP=1 (keep $IT_WORK).
#
# Mount points and images live under a mktemp directory whose name has only [A-Za-z0-9/_-], so a
# daemon is found by its command line (pgrep -f "mount.raidfs.*MP") or by the files under the temp
# dir it holds open (/proc/PID/fd), and only processes using this test's own files are signalled.

IT_MOUNTS=()        # mount points this test mounted (and may still be mounted)
IT_DAEMON_WAIT=30   # seconds to wait for a daemon to exit after an unmount
IT_MOUNT_WAIT=30    # seconds to wait for a mount to appear

it_log() { printf '%s %s\n' "$(date +%T)" "$*"; }

fail() {
  printf 'FAIL: %s\n' "$*" >&2
  if [[ -n ${IT_WORK:-} && -s $IT_WORK/daemon.log ]]; then
    echo "--- last lines of the daemon log ($IT_WORK/daemon.log):" >&2
    tail -n 30 "$IT_WORK/daemon.log" >&2
  fi
  exit 1
}

skip() { echo "SKIP: $*"; exit 77; }

# it_init BUILD_DIR NAME
it_init() {
  local build_dir=${1:?build dir} name=${2:?test name}
  [[ $(id -u) -eq 0 ]] || skip "needs root (FUSE mounts of image files)"
  [[ -c /dev/fuse ]] || skip "no /dev/fuse"
  IT_BUILD=$(realpath "$build_dir")
  IT_MKFS=$IT_BUILD/utils/mkfs.raidfs
  IT_MOUNT_PROG=$IT_BUILD/utils/mount.raidfs
  [[ -x $IT_MKFS ]] || fail "no $IT_MKFS (build first)"
  [[ -x $IT_MOUNT_PROG ]] || skip "no $IT_MOUNT_PROG yet (mount.raidfs is not built)"
  local base=${RAIDFS_IT_TMPDIR:-/var/tmp}
  IT_WORK=$(mktemp -d "$base/raidfs-it-$name-XXXXXX")
  [[ $IT_WORK =~ ^[A-Za-z0-9/_-]+$ ]] || fail "temp dir name $IT_WORK has odd characters"
  trap it_cleanup EXIT
  trap 'exit 130' INT TERM
  IT_START=$SECONDS
  it_log "$name: work dir $IT_WORK"
}

# The pids of the daemons serving MP or holding any file under DIR open (both this test's own).
it_daemon_pids() {
  local mp=$1 dir=${2:-}
  {
    pgrep -f -- "mount\.raidfs.*$mp( |\$)" || true
    # Processes holding a member image or the database lock under DIR open (what fuser would say,
    # without needing psmisc; not those merely using files in the mount or logs under DIR).
    if [[ -n $dir && -d $dir ]]; then
      find /proc/[0-9]*/fd \( -lname "$dir/*.img*" -o -lname "$dir/*/LOCK" \) 2>/dev/null | cut -d/ -f3 || true
    fi
  } | sort -u | grep -v -x -e "$$" -e "$BASHPID" || true
}

it_cleanup() {
  local rc=$? mp pids
  set +e
  for mp in "${IT_MOUNTS[@]}"; do
    if mountpoint -q "$mp" 2>/dev/null; then
      umount "$mp" 2>/dev/null || fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null
    fi
  done
  # Daemons still running (mount failed half way, a hung unmount): TERM, then KILL.
  if [[ -n ${IT_WORK:-} ]]; then
    for mp in "${IT_MOUNTS[@]}"; do
      pids=$(it_daemon_pids "$mp" "$IT_WORK")
      [[ -n $pids ]] && kill -TERM $pids 2>/dev/null
    done
    for _ in $(seq 50); do
      pids=$(for mp in "${IT_MOUNTS[@]}"; do it_daemon_pids "$mp" "$IT_WORK"; done)
      [[ -z $pids ]] && break
      sleep 0.1
    done
    [[ -n ${pids:-} ]] && kill -KILL $pids 2>/dev/null
    # Images and trees may be big: remove them unless asked to keep (and never on a live mount).
    local busy=0
    for mp in "${IT_MOUNTS[@]}"; do mountpoint -q "$mp" 2>/dev/null && busy=1; done
    if [[ ${RAIDFS_IT_KEEP:-0} == 1 || $busy == 1 ]]; then
      echo "kept $IT_WORK" >&2
    else
      rm -rf --one-file-system "$IT_WORK"
    fi
  fi
  if [[ $rc -eq 0 ]]; then it_log "PASS ($((SECONDS - ${IT_START:-0})) s)"; fi
  exit "$rc"
}

# it_make_array DIR N SIZE MKFS_ARGS... : N sparse image files DIR/m0.img ... and mkfs.raidfs over
# them; DIR/meta names the array (RAIDFS_IT_METADATA above). Sets IT_MEMBERS (the image paths, in
# order).
it_make_array() {
  local dir=$1 n=$2 size=$3; shift 3
  mkdir -p "$dir"
  IT_MEMBERS=()
  local i
  for ((i = 0; i < n; i++)); do
    truncate -s "$size" "$dir/m$i.img"
    IT_MEMBERS+=("$dir/m$i.img")
  done
  if [[ ${RAIDFS_IT_METADATA:-dir} == region ]]; then
    # The test's images are small: a region of 16 MiB unless the test says otherwise.
    local region=(-M 16M)
    [[ " $* " == *" -M "* ]] && region=()
    "$IT_MKFS" -q -f "${region[@]}" "$@" "${IT_MEMBERS[@]}" ||
      fail "mkfs.raidfs ${region[*]} $* (${n} x $size) failed"
    rm -rf "$dir/meta"
    mkdir -p "$dir/meta"
    for ((i = 0; i < n; i++)); do ln -s "../m$i.img" "$dir/meta/m$i.img"; done
    return
  fi
  "$IT_MKFS" -q -f -m "$dir/meta" "$@" "${IT_MEMBERS[@]}" ||
    fail "mkfs.raidfs -m $dir/meta $* (${n} x $size) failed"
}

# it_mount SPEC MP [ARGS...]: mounts and checks that MP is a mount; fails the test otherwise.
it_mount() {
  it_try_mount "$@" || fail "mount.raidfs $* failed: $(cat "$IT_WORK/mount.err" 2>/dev/null)"
}

# it_try_mount SPEC MP [ARGS...]: like it_mount but returns mount.raidfs's exit code (its stderr in
# $IT_WORK/mount.err) instead of failing; returns 99 if it said yes but nothing is mounted.
it_try_mount() {
  local spec=$1 mp=$2; shift 2
  [[ -n ${RAIDFS_IT_TRANSPORT:-} ]] && set -- -o "transport=$RAIDFS_IT_TRANSPORT" "$@"
  mkdir -p "$mp"
  [[ " ${IT_MOUNTS[*]} " == *" $mp "* ]] || IT_MOUNTS+=("$mp")
  local rc=0
  if [[ ${RAIDFS_IT_FOREGROUND:-0} == 1 ]]; then
    echo "=== $(date +%T) mount.raidfs $spec $mp $* -f" >>"$IT_WORK/daemon.log"
    "$IT_MOUNT_PROG" "$spec" "$mp" "$@" -f >>"$IT_WORK/daemon.log" 2>&1 &
    local pid=$! t
    for ((t = 0; t < IT_MOUNT_WAIT * 10; t++)); do
      mountpoint -q "$mp" && break
      if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid"; rc=$?
        tail -n 1 "$IT_WORK/daemon.log" >"$IT_WORK/mount.err"
        return $((rc == 0 ? 99 : rc))
      fi
      sleep 0.1
    done
    : >"$IT_WORK/mount.err"
  else
    timeout "$IT_MOUNT_WAIT" "$IT_MOUNT_PROG" "$spec" "$mp" "$@" 2>"$IT_WORK/mount.err" || rc=$?
    [[ $rc -eq 0 ]] || return "$rc"
  fi
  mountpoint -q "$mp" || { echo "mount.raidfs returned 0 but $mp is not a mount" >"$IT_WORK/mount.err"; return 99; }
  return 0
}

# it_umount MP: unmounts, then waits (bounded) until the daemon has exited and no process holds
# the images or the metadata database open, so the next mount or a change to an image is safe.
it_umount() {
  local mp=$1 t pids err
  if mountpoint -q "$mp"; then
    err=$(umount "$mp" 2>&1) || err=$(fusermount3 -u "$mp" 2>&1) ||
      fail "cannot unmount $mp: $err"
  fi
  for ((t = 0; t < IT_DAEMON_WAIT * 10; t++)); do
    pids=$(it_daemon_pids "$mp" "$IT_WORK")
    [[ -z $pids ]] && break
    sleep 0.1
  done
  [[ -z $pids ]] ||
    fail "the daemon of $mp (pids $(echo $pids)) did not exit within $IT_DAEMON_WAIT s of the unmount"
  # A daemon's io_uring rings are torn down by the kernel after the process is gone, and the
  # member files registered with them (and their flock) are let go only then. Images a live
  # process holds (another array of the test) are not waited for.
  local img
  while IFS= read -r img; do
    for ((t = 0; t < IT_DAEMON_WAIT * 10; t++)); do
      flock -n -x "$img" true 2>/dev/null && break
      [[ -n $(find /proc/[0-9]*/fd -lname "$img" 2>/dev/null | head -1) ]] && break
      sleep 0.1
    done
    ((t < IT_DAEMON_WAIT * 10)) || fail "$img is still locked $IT_DAEMON_WAIT s after its daemon exited"
  done < <(find "$IT_WORK" -name '*.img' -type f 2>/dev/null)
}

# it_kill_daemon MP: SIGKILLs the daemon serving MP (a crash), unmounts the dead mount lazily and
# waits until nothing holds the images, so that the array can be mounted again.
it_kill_daemon() {
  local mp=$1 pids
  pids=$(it_daemon_pids "$mp" "$IT_WORK")
  [[ -n $pids ]] || fail "no daemon of $mp found to kill"
  kill -KILL $pids
  fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null || true
  it_umount "$mp"
}

# it_check_without ARR MP SRC LABEL MEMBERS...: unmounts MP, takes the given members of the array
# made in ARR away, mounts it degraded read-only and compares every file of SRC with the same
# name on the mount, then brings the members back and mounts ARR/meta on MP again.
it_check_without() {
  local arr=$1 mp=$2 src=$3 label=$4 i f; shift 4
  it_umount "$mp"
  for i; do mv "$arr/m$i.img" "$arr/away-m$i.img"; done
  it_mount "$arr/meta" "$mp" -o ro
  for f in "$src"/*; do
    cmp "$f" "$mp/$(basename "$f")" || fail "$label: $(basename "$f") reads back wrong with members $* away"
  done
  it_umount "$mp"
  for i; do mv "$arr/away-m$i.img" "$arr/m$i.img"; done
  it_mount "$arr/meta" "$mp"
  it_log "$label: every file reads back with members $* away"
}

it_remount() {
  local spec=$1 mp=$2; shift 2
  it_umount "$mp"
  it_mount "$spec" "$mp" "$@"
}

# it_status MP: the status text: `raidfs status MP` (the admin tool), or where it is not built, the
# virtual xattr raidfs.status of the root that it reads.
it_status() {
  if [[ -x ${IT_BUILD:-/nonexistent}/utils/raidfs ]]; then
    "$IT_BUILD/utils/raidfs" status "$1"
    return
  fi
  python3 - "$1" <<'PY'
import os, sys
sys.stdout.write(os.getxattr(sys.argv[1], "raidfs.status").decode(errors="replace"))
PY
}

# it_status_number MP REGEX: the first number on the first status line matching REGEX
# (case-insensitive); empty if there is none.
it_status_number() {
  it_status "$1" | grep -i -E -m1 -- "$2" | grep -o -E '[0-9]+' | head -n 1 || true
}

# it_tree_listing DIR: one line per entry: type, mode, size (files), mtime (not for symlinks), name,
# link target. Directory sizes and times differ legitimately between filesystems and are left out.
it_tree_listing() {
  (cd "$1" && find . -mindepth 1 \( -type d -printf 'd %m - %TY-%Tm-%Td+%TT %p\n' \) -o \
      \( -type l -printf 'l - - - %p -> %l\n' \) -o \
      \( -printf '%y %m %s %TY-%Tm-%Td+%TT %p\n' \) | LC_ALL=C sort)
}

# it_compare_trees A B: every entry the same (type, mode, size, mtime, link target) and every file
# byte for byte. Prints the differences (both kinds) and returns 1 if there are any.
it_compare_trees() {
  local a=$1 b=$2 bad=0
  diff -u --label "$a" --label "$b" <(it_tree_listing "$a") <(it_tree_listing "$b") >"$IT_WORK/tree.diff" || bad=1
  if ((bad)); then
    echo "listings (type mode size mtime name) differ ($(grep -c '^[-+][^-+]' "$IT_WORK/tree.diff") lines):" >&2
    head -n 30 "$IT_WORK/tree.diff" >&2
  fi
  if ! diff -r --no-dereference -q "$a" "$b" >"$IT_WORK/content.diff" 2>&1; then
    echo "contents differ ($(wc -l <"$IT_WORK/content.diff") entries):" >&2
    head -n 20 "$IT_WORK/content.diff" >&2
    bad=1
  fi
  return "$bad"
}

# it_random_file PATH BYTES: BYTES random bytes (urandom).
it_random_file() {
  local path=$1 bytes=$2
  if ((bytes == 0)); then : >"$path"; return; fi
  head -c "$bytes" /dev/urandom >"$path"
}

# it_sum_tree DIR: sha256 of every regular file, sorted by name (to compare a tree with itself later).
it_sum_tree() {
  (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
}

# it_make_tree DIR [MIB]: a tree of random files: sizes around 4 KiB and 16/64 KiB boundaries, a
# few of hundreds of KiB, one of MIB MiB (default 4), nested directories, a symlink, an empty file
# and an empty directory.
it_make_tree() {
  local dir=$1 mib=${2:-4} s i
  mkdir -p "$dir/d1/d2/d3" "$dir/empty" "$dir/many"
  for s in 0 1 100 4095 4096 4097 16383 16384 16385 65535 65536 65537 200000 1000000; do
    it_random_file "$dir/f$s" "$s"
  done
  for i in $(seq 1 40); do it_random_file "$dir/many/m$i" $((i * 997)); done
  it_random_file "$dir/d1/d2/d3/deep" 300000
  it_random_file "$dir/d1/big" $((mib * 1024 * 1024))
  ln -s ../f4096 "$dir/d1/link"
  chmod 640 "$dir/f100"
}

# it_corrupt_blocks IMAGE COUNT SEED [OFFSETS_FILE]: overwrites COUNT random 4 KiB blocks of the
# data area of a member image (from 1 MiB on, before the backup superblock in the last MiB), chosen
# among blocks that hold something (not all zeros), with random bytes. With OFFSETS_FILE present,
# corrupts the offsets listed there instead (one per line); without, writes the offsets it chose
# to OFFSETS_FILE (if given) and to stdout.
it_corrupt_blocks() {
  python3 - "$@" <<'PY'
import os, random, sys
image, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
listing = sys.argv[4] if len(sys.argv) > 4 else None
r = random.Random(seed)
with open(image, "r+b") as f:
    size = os.fstat(f.fileno()).st_size
    if listing and os.path.exists(listing):
        chosen = [int(line) for line in open(listing) if line.strip()]
    else:
        start, end = 1 << 20, size - (1 << 20)
        candidates = []
        off = start
        while off < end:
            try:
                off = os.lseek(f.fileno(), off, os.SEEK_DATA) & ~4095
            except OSError:
                break
            if off >= end:
                break
            f.seek(off)
            if f.read(4096).count(0) != 4096:
                candidates.append(off)
            off += 4096
        if len(candidates) < count:
            sys.exit(f"{image}: only {len(candidates)} non-zero blocks in the data area, want {count}")
        chosen = sorted(r.sample(candidates, count))
        if listing:
            with open(listing, "w") as out:
                out.write("".join(f"{o}\n" for o in chosen))
    for off in chosen:
        f.seek(off)
        f.write(r.randbytes(4096))
        print(off)
    f.flush(); os.fsync(f.fileno())
PY
}
