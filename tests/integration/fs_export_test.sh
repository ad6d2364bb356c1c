#!/usr/bin/env bash
# Goal: file handles work on raidfs (the export support an NFS server re-exporting the mount
# needs): name_to_handle_at of a file and a directory, the kernel's caches dropped, then
# open_by_handle_at gives the same file (content byte for byte) and directory, also after a
# remount; a removed file's handle is stale (ESTALE), never another file.
# Method: tests/integration/file_handle.cc; `echo 2 > /proc/sys/vm/drop_caches` evicts the
# inodes so that the kernel must ask the daemon (LOOKUP of "." and "..").
#   usage: fs_export_test.sh BUILD_DIR FILE_HANDLE_PROGRAM
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_export
fh=${2:?file_handle program}
command -v fusermount3 >/dev/null || skip "no fusermount3"

arr=$IT_WORK/arr mp=$IT_WORK/mnt src=$IT_WORK/src
it_make_array "$arr" 4 64M -p 1
mkdir -p "$src"
it_mount "$arr/meta" "$mp"
mkdir -p "$mp/d/e"
it_random_file "$src/f" $((1048576 + 77))
cp "$src/f" "$mp/d/e/f"
echo gone >"$mp/d/g"
sync -f "$mp"
"$fh" save "$mp/d/e/f" "$IT_WORK/f.handle" || fail "name_to_handle_at of a file"
"$fh" save "$mp/d/e" "$IT_WORK/e.handle" || fail "name_to_handle_at of a directory"
"$fh" save "$mp/d/g" "$IT_WORK/g.handle" || fail "name_to_handle_at of g"
rm "$mp/d/g"
e_ino=$(stat -c %i "$mp/d/e")

check() {
  local when=$1
  echo 2 >/proc/sys/vm/drop_caches
  "$fh" cat "$mp" "$IT_WORK/f.handle" >"$IT_WORK/f.out" || fail "$when: open_by_handle_at of the file failed"
  cmp "$src/f" "$IT_WORK/f.out" || fail "$when: the file opened by handle reads back wrong"
  read -r ino mode < <("$fh" stat "$mp" "$IT_WORK/e.handle") || fail "$when: open_by_handle_at of the directory failed"
  [[ $ino == "$e_ino" && $mode == 40* ]] || fail "$when: the directory's handle opened inode $ino mode $mode (want $e_ino, a directory)"
  rc=0; "$fh" cat "$mp" "$IT_WORK/g.handle" >/dev/null 2>&1 || rc=$?
  ((rc == 2)) || fail "$when: a removed file's handle was not stale (exit $rc)"
  it_log "$when: file and directory opened by handle, removed file's handle stale"
}
check "caches dropped"
it_remount "$arr/meta" "$mp"
check "after a remount"
