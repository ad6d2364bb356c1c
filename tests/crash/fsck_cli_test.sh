#!/usr/bin/env bash
# Goal: raidfs-fsck as a user runs it. Bits flipped in random live data blocks and parity on the
# member images are all found by -n (exit 4), repaired by -y (exit 1), and a second -n is clean
# (exit 0) with every file intact; a mounted array is refused (exit 8), bad usage is exit 16.
# Method: a tree of files written through a mount (RAID6, then RAID5); after the unmount, one bit
# flipped in each of 40 random non-zero 4 KiB blocks of the data area on each of m members (at
# most m damaged chunks per row: repairable); fsck; remount; every file compared by sha256.
#   usage: fsck_cli_test.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../integration/lib.sh"
it_init "${1:?build dir}" fsck_cli
fsck=$IT_BUILD/utils/raidfs-fsck
[[ -x $fsck ]] || fail "no $fsck (build first)"

# expect_exit CODE WHAT COMMAND...: runs COMMAND (output in $IT_WORK/last.out), checks its exit code.
expect_exit() {
  local want=$1 what=$2 rc=0; shift 2
  "$@" >"$IT_WORK/last.out" 2>&1 || rc=$?
  [[ $rc -eq $want ]] || { cat "$IT_WORK/last.out" >&2; fail "$what: exit $rc, want $want"; }
}

# flip_bits IMAGE COUNT SEED: one bit in each of COUNT random non-zero blocks of the data area.
flip_bits() {
  python3 - "$@" <<'PY'
import os, random, sys
image, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
with open(image, "r+b") as f:
    size = os.fstat(f.fileno()).st_size
    candidates, off = [], 1 << 20
    while off < size - (1 << 20):
        try:
            off = os.lseek(f.fileno(), off, os.SEEK_DATA) & ~4095
        except OSError:
            break
        if off >= size - (1 << 20):
            break
        f.seek(off)
        if f.read(4096).count(0) < 4096:
            candidates.append(off)
        off += 4096
    for off in r.sample(candidates, min(count, len(candidates))):
        at = off + r.randrange(4096)
        f.seek(at); b = f.read(1)[0]
        f.seek(at); f.write(bytes([b ^ (1 << r.randrange(8))]))
    f.flush(); os.fsync(f.fileno())
PY
}

expect_exit 0 "--help" "$fsck" --help
expect_exit 0 "--version" "$fsck" --version
expect_exit 16 "no SPEC" "$fsck"
expect_exit 16 "-n with -y" "$fsck" -n -y /nonexistent
expect_exit 8 "a SPEC that does not exist" "$fsck" -n "$IT_WORK/nonexistent"

run_level() {
  local name=$1 parity=$2; shift 2
  local arr=$IT_WORK/$name mp=$IT_WORK/$name-mnt i
  it_make_array "$arr" 6 64M "$@"
  it_mount "$arr/meta" "$mp"
  it_make_tree "$mp/tree" 8
  expect_exit 8 "$name: fsck of a mounted array" "$fsck" -n "$arr/meta"
  grep -q "in use (mounted?): unmount it first" "$IT_WORK/last.out" || fail "$name: no clear in-use message"
  (cd "$mp" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) >"$IT_WORK/$name.sums"
  it_umount "$mp"
  expect_exit 0 "$name: fsck -n of a clean array" "$fsck" -n "$arr/meta"
  for ((i = 0; i < parity; i++)); do flip_bits "$arr/m$((i * 3)).img" 40 "$i"; done
  expect_exit 4 "$name: fsck -n of the damaged array" "$fsck" -n "$arr/meta"
  it_log "$name: -n: $(tail -n 2 "$IT_WORK/last.out" | head -n 1)"
  expect_exit 1 "$name: fsck -y" "$fsck" -y "$arr/meta"
  it_log "$name: -y: $(tail -n 1 "$IT_WORK/last.out")"
  expect_exit 0 "$name: fsck -n after -y" "$fsck" -n "$arr/meta"
  expect_exit 0 "$name: fsck -p of the repaired array" "$fsck" -p "$arr/meta"
  it_mount "$arr/meta" "$mp"
  (cd "$mp" && sha256sum --quiet -c "$IT_WORK/$name.sums") || fail "$name: files differ after the repair"
  it_umount "$mp"
}

run_level raid6 2 -l 6 -c 16K
run_level raid5 1 -l 5 -c 64K
