#!/usr/bin/env bash
# Goal: a tree of files copied into a mounted raidfs reads back byte for byte — right after the
# copy, after sync and a dropped page cache, after an unmount and a remount (one FUSE thread), and
# read-only — for file sizes around every boundary of the layout (4 KiB block, chunk, stripe data)
# and a big file; a mounted array cannot be mounted a second time.
# Method: RAID6 on 6 sparse images (64 KiB chunks: 4 data chunks, 256 KiB of data per stripe),
# then RAID5 on 3 images with a smaller tree; cp -a, then diff -r and a listing of types, modes,
# sizes and mtimes.
#   usage: fs_tree_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_tree

# make_tree DIR DATA_BYTES_PER_STRIPE BIG: files of the boundary sizes, nested dirs, links, modes.
make_tree() {
  local dir=$1 stripe=$2 big=$3 chunk=$((64 * 1024)) s
  mkdir -p "$dir/sizes" "$dir/a/b/c/d" "$dir/empty-dir" "$dir/a/b2"
  for s in 0 1 4095 4096 4097 $((chunk - 1)) $chunk $((chunk + 1)) $((stripe - 1)) $stripe \
           $((stripe + 1)) $((3 * 1024 * 1024)); do
    it_random_file "$dir/sizes/f$s" "$s"
  done
  if ((big)); then it_random_file "$dir/big-100M" $((100 * 1024 * 1024)); fi
  it_random_file "$dir/a/b/c/d/deep" 12345
  it_random_file "$dir/a/b2/x" 70000
  echo "hello raidfs" >"$dir/a/hello.txt"
  chmod 600 "$dir/a/hello.txt"
  chmod 750 "$dir/a/b"
  it_random_file "$dir/a/b/exec" 100 && chmod 755 "$dir/a/b/exec"
  ln -s ../sizes/f4097 "$dir/a/link-to-f4097"
  ln -s /nonexistent/target "$dir/a/dangling"
  touch -d '2001-02-03 04:05:06.123456789' "$dir/a/hello.txt"
}

# check LABEL SRC MP: the copy under MP/tree equals SRC.
check() {
  it_compare_trees "$2" "$3/tree" || fail "$1: the tree read back from raidfs differs from the source"
  it_log "$1: tree compares equal"
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

run_level() {
  local label=$1 n=$2 level=$3 stripe=$4 big=$5 src=$IT_WORK/src-$1 arr=$IT_WORK/$1 mp=$IT_WORK/mnt-$1
  make_tree "$src" "$stripe" "$big"
  it_make_array "$arr" "$n" 256M -l "$level" -c 64K
  it_mount "$arr/meta" "$mp"
  local t0=$SECONDS
  cp -a "$src" "$mp/tree" || fail "$label: cp -a into raidfs failed"
  it_log "$label: cp -a took $((SECONDS - t0)) s"
  check "$label (after cp)" "$src" "$mp"
  drop_caches
  check "$label (after sync + drop_caches)" "$src" "$mp"
  # The same array cannot be mounted twice (RAID6: by METADIR, RAID5: by member list): exit 1, one
  # line. (mount.raidfs retries a busy member for 10 s: an earlier daemon may still be exiting.)
  local members rc err spec
  members=$(IFS=,; echo "${IT_MEMBERS[*]}")
  spec=$arr/meta
  [[ $level == 5 ]] && spec=$members
  rc=0; it_try_mount "$spec" "$mp-twice" || rc=$?
  err=$(cat "$IT_WORK/mount.err")
  ((rc == 1)) || fail "$label: mounting the mounted array again ($spec) gave exit $rc (want 1): $err"
  [[ -n $err && $(grep -c . <<<"$err") -eq 1 ]] || fail "$label: refusing a second mount, want one line on stderr: $err"
  mountpoint -q "$mp-twice" && fail "$label: the array is mounted twice"
  it_log "$label: a second mount is refused: $err"
  # Remount by the member list this time (the other SPEC form), with one FUSE thread.
  it_umount "$mp"
  it_mount "$members" "$mp" -o threads=1
  check "$label (after remount)" "$src" "$mp"
  local status
  status=$(it_status "$mp") || fail "$label: cannot read the status (xattr raidfs.status)"
  grep -q -i -E '^state:.*(degraded|failed)' <<<"$status" && fail "$label: a healthy array's status says: $status"
  it_umount "$mp"
  # Read-only: everything reads, nothing can be written.
  it_mount "$arr/meta" "$mp" -o ro
  check "$label (mounted read-only)" "$src" "$mp"
  err=$(touch "$mp/new" 2>&1) && fail "$label: created a file on a read-only mount"
  [[ $err == *"Read-only file system"* ]] || fail "$label: creating a file on a read-only mount: want EROFS, got: $err"
  err=$(dd if=/dev/zero of="$mp/tree/sizes/f1" bs=1 count=1 conv=notrunc 2>&1) && fail "$label: wrote to a file on a read-only mount"
  it_umount "$mp"
  rm -rf "$src"
}

run_level raid6 6 6 $((4 * 64 * 1024)) 1
run_level raid5 3 5 $((2 * 64 * 1024)) 0
