#!/usr/bin/env bash
# Goal: mkfs.raidfs creates a usable array and refuses every kind of bad input with one clear line
# and a non-zero exit, writing nothing. Method: image files in a temp dir; each case checks the
# exit code, the message, and that the members were left as they were.
#   usage: mkfs_test.sh BUILD_DIR
set -uo pipefail
build=$(realpath "${1:?build dir}")
mkfs=$build/utils/mkfs.raidfs
demo_dir=$(mktemp -d /dev/shm/raidfs-mkfs-XXXXXX)
trap 'rm -rf "$demo_dir"' EXIT
cd "$demo_dir"
failures=0

# expect CODE SUBSTRING -- command...: runs the command, checks its exit code and stderr.
expect() {
  local code=$1 text=$2; shift 3
  local err rc
  err=$("$@" 2>&1 >/dev/null); rc=$?
  if [[ $rc -ne $code || $err != *"$text"* ]]; then
    echo "FAIL: $* -> rc=$rc (want $code), stderr: $err (want: $text)"; failures=$((failures + 1))
  else
    echo "ok: ${text:-exit $code}"
  fi
  if [[ $code -ne 0 && $(printf '%s\n' "$err" | grep -c .) -gt 2 ]]; then
    echo "FAIL: error is more than one line: $err"; failures=$((failures + 1))
  fi
}

for i in 0 1 2 3 4 5; do truncate -s 64M m$i.img; done

# Success: prints the geometry and capacity; the metadata exists; members carry superblocks.
out=$("$mkfs" -L demo -m meta m{0..5}.img) || { echo "FAIL: mkfs on good members"; failures=$((failures + 1)); }
[[ $out == *"RAID6: 6 members, 4 data + 2 parity"* && $out == *"usable capacity 251.75 MiB"* ]] \
  || { echo "FAIL: geometry not printed: $out"; failures=$((failures + 1)); }
[[ -f meta/CURRENT ]] || { echo "FAIL: no metadata database"; failures=$((failures + 1)); }
[[ $(head -c 8 m3.img | tr -d '\0') == RAIDFSMB ]] || { echo "FAIL: no superblock on m3"; failures=$((failures + 1)); }
"$mkfs" -q -l 5 -c 1M -m meta5 m0.img m1.img m2.img -f >/dev/null || { echo "FAIL: RAID5 1M"; failures=$((failures + 1)); }
"$mkfs" -q -p 3 -c 4K -m meta7 m{0..4}.img -f || { echo "FAIL: triple parity"; failures=$((failures + 1)); }

expect 0 "" -- "$mkfs" --help
expect 0 "" -- "$mkfs" --version
expect 16 "see --help" -- "$mkfs"
expect 1 "1 members are too few for 2 parity" -- "$mkfs" m0.img
expect 16 "see --help" -- "$mkfs" -m x --bogus m0.img m1.img m2.img
expect 16 "" -- "$mkfs" -l 7 -m x m0.img m1.img m2.img
expect 1 "already a member of raidfs array" -- "$mkfs" -m fresh m{0..5}.img
[[ ! -e fresh ]] || { echo "FAIL: a refused mkfs left its metadata dir"; failures=$((failures + 1)); }
expect 1 "holds a metadata database already" -- "$mkfs" -m meta m{0..5}.img
expect 1 "too few for 2 parity: need at least 4" -- "$mkfs" -f -m x m0.img m1.img m2.img
expect 1 "listed twice" -- "$mkfs" -f -m x m0.img m1.img m0.img m3.img
ln -sf m1.img alias.img
expect 1 "same device as m1.img (listed twice)" -- "$mkfs" -f -m x m0.img m1.img alias.img m3.img
truncate -s 1M tiny.img
expect 1 "tiny.img: too small" -- "$mkfs" -f -l 5 -m x m0.img m1.img tiny.img
expect 1 "missing.img: No such file or directory" -- "$mkfs" -f -l 5 -m x m0.img m1.img missing.img
expect 1 "not a power of two" -- "$mkfs" -f -c 48K -m x m{0..3}.img
expect 16 "'-4K' is not a size" -- "$mkfs" -f -c -4K -m x m{0..3}.img
expect 16 "'4X' is not a size" -- "$mkfs" -f -c 4X -m x m{0..3}.img
expect 16 "is too large" -- "$mkfs" -f -c 99999999999999999999K -m x m{0..3}.img
expect 1 "-m: an empty path" -- "$mkfs" -f -m "" m{0..3}.img
expect 1 "missing.img: No such file or directory" -- "$mkfs" -f -m new/nested/meta m0.img m1.img missing.img m3.img
[[ ! -e new ]] || { echo "FAIL: a refused mkfs left the directories it created (new/nested)"; failures=$((failures + 1)); }
expect 1 "cannot create" -- "$mkfs" -f -m /proc/raidfs-no m{0..3}.img
mkdir -p busy && touch busy/file
expect 1 "busy: not empty" -- "$mkfs" -f -m busy m{0..3}.img
expect 1 "not a block device or a regular file" -- "$mkfs" -f -l 5 -m x m0.img m1.img /dev/null

# Another filesystem on a member: refused without -f.
truncate -s 64M e0.img e1.img e2.img
if command -v mkfs.ext4 >/dev/null; then
  mkfs.ext4 -q -F e1.img
  expect 1 "e1.img: holds ext2/3/4 data (use -f to overwrite)" -- "$mkfs" -l 5 -m x e0.img e1.img e2.img
  [[ $(head -c 8 e0.img | tr -d '\0') == "" ]] || { echo "FAIL: refused mkfs wrote to e0"; failures=$((failures + 1)); }
  expect 0 "" -- "$mkfs" -f -l 5 -m x e0.img e1.img e2.img
fi

# A member in use: a mounted block device (ext4 on a loop device) cannot be opened O_EXCL.
if [[ $(id -u) -eq 0 ]] && command -v mkfs.ext4 >/dev/null && loop=$(losetup -f --show e1.img 2>/dev/null); then
  mkfs.ext4 -q -F "$loop" && mkdir -p mnt && mount "$loop" mnt
  expect 1 "$loop: in use" -- "$mkfs" -f -l 5 -m loopmeta e0.img "$loop" e2.img
  umount mnt
  expect 0 "" -- "$mkfs" -f -l 5 -m loopmeta e0.img "$loop" e2.img
  losetup -d "$loop"
fi

# Self-contained (no -m): the metadata region on the members; -M sizes it.
expect 1 "too small for a metadata region of 64.0 MiB" -- "$mkfs" -f m{0..3}.img
expect 1 "at least 8 MiB" -- "$mkfs" -f -M 4M m{0..3}.img
expect 16 "excludes" -- "$mkfs" -f -M 16M -m x m{0..3}.img
out=$("$mkfs" -f -M 16M m{0..5}.img) || { echo "FAIL: mkfs -M 16M"; failures=$((failures + 1)); }
[[ $out == *"metadata on the members: 16.00 MiB, mirrored on 3 of them (8.00 MiB on each)"* ]] \
  || { echo "FAIL: the region is not described: $out"; failures=$((failures + 1)); }
[[ $(od -An -tu4 -j8 -N4 m2.img | tr -d ' ') == 2 ]] || { echo "FAIL: not superblock format 2"; failures=$((failures + 1)); }
echo "ok: self-contained: -M 16M, too small, refusals"

echo "$failures failure(s)"
[[ $failures -eq 0 ]]
