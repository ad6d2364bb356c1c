#!/usr/bin/env bash
# Goal: with as many members gone as the array has parity (RAID6: 2, RAID5: 1), raidfs mounts
# degraded — named by its metadata directory, by an explicit member list, or by the metadata
# directory with -o members= — says so in its status, reads every file back byte for byte, and
# takes new writes that read back after a remount with the members still gone; members that come
# back after missing writes are not trusted (everything still reads correctly); one member more
# gone and the mount is refused with exit 1 and one line on stderr naming the missing members,
# and nothing is damaged by the refusal. A read-only degraded mount records nothing: the members,
# back, are trusted again. A member of the list whose superblock is gone (blanked, truncated)
# counts as missing when the array is named by its metadata directory, and stays an error when
# the user names it; a metadata directory of another array with -o members= is refused; a member
# truncated while mounted is shown failed, with its read errors counted.
# Method: image files renamed away (and back) between mounts; trees compared with diff -r.
#   usage: fs_degraded_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_degraded

join_by() { local IFS=$1; shift; echo "$*"; }

# take_away DIR I...: renames members away (they stay in DIR, so cleanup still finds their users).
take_away() { local dir=$1 i; shift; for i; do mv "$dir/m$i.img" "$dir/gone-m$i.img"; done; }
bring_back() { local dir=$1 i; shift; for i; do mv "$dir/gone-m$i.img" "$dir/m$i.img"; done; }

# present DIR N SEP: the member images present now, joined by SEP.
present() {
  local dir=$1 n=$2 sep=$3 i list=()
  for ((i = 0; i < n; i++)); do [[ -e $dir/m$i.img ]] && list+=("$dir/m$i.img"); done
  join_by "$sep" "${list[@]}"
}

expect_degraded() {
  local label=$1 mp=$2 text
  text=$(it_status "$mp") || fail "$label: cannot read the status (xattr raidfs.status) of $mp"
  grep -q -i -E '^state:.*degraded' <<<"$text" || fail "$label: the status does not say degraded: $text"
  return 0
}

compare() {
  it_compare_trees "$2" "$3" || fail "$1: files read back differ"
  it_log "$1: all files compare equal"
}

# expect_refused LABEL SPEC MP MISSING... : mount must fail with exit 1 and one line naming each
# missing member (by path or as "member I"); nothing may stay mounted or running.
expect_refused() {
  local label=$1 spec=$2 mp=$3 rc=0 err i; shift 3
  it_try_mount "$spec" "$mp" || rc=$?
  err=$(cat "$IT_WORK/mount.err")
  [[ $rc -ne 0 ]] || fail "$label: mounted with more members missing than the parity count"
  [[ $rc -eq 1 ]] || fail "$label: refused with exit code $rc (want 1): $err"
  [[ -n $err ]] || fail "$label: refused without a message on stderr"
  (($(grep -c . <<<"$err") == 1)) || fail "$label: the error is more than one line: $err"
  for i; do
    [[ $err == *"m$i.img"* || $err == *"member $i"* ]] || fail "$label: the error does not name missing member $i (m$i.img): $err"
  done
  mountpoint -q "$mp" && fail "$label: refused but $mp is mounted"
  [[ -z $(it_daemon_pids "$mp" "$IT_WORK") ]] || fail "$label: refused but a daemon is still running"
  it_log "$label: refused: $err"
}

# run_case LABEL N LEVEL EXTRA MISSING...: the whole story on one array.
run_case() {
  local label=$1 n=$2 level=$3 extra=$4; shift 4
  local missing=("$@") arr=$IT_WORK/$label mp=$IT_WORK/mnt-$label src=$IT_WORK/src-$label
  it_make_tree "$src" 6
  it_make_array "$arr" "$n" 96M -l "$level" -c 16K
  it_mount "$arr/meta" "$mp"
  cp -a "$src" "$mp/tree" || fail "$label: cp -a into the healthy array failed"
  it_umount "$mp"

  # Read-only first: it serves degraded but records nothing, so the members, back, are trusted.
  take_away "$arr" "${missing[@]}"
  it_mount "$arr/meta" "$mp" -o ro
  expect_degraded "$label: read-only, members ${missing[*]} gone" "$mp"
  compare "$label: degraded read-only (members ${missing[*]} gone)" "$src" "$mp/tree"
  it_umount "$mp"
  bring_back "$arr" "${missing[@]}"
  it_mount "$arr/meta" "$mp"
  it_status "$mp" | grep -q -i -E '^state:.*degraded' &&
    fail "$label: a read-only mount recorded members ${missing[*]} as missing"
  it_umount "$mp"

  take_away "$arr" "${missing[@]}"
  it_mount "$arr/meta" "$mp"
  expect_degraded "$label: by METADIR, members ${missing[*]} gone" "$mp"
  compare "$label: degraded (members ${missing[*]} gone), by METADIR" "$src" "$mp/tree"

  # Writes while degraded: new files, an overwrite in the middle of a file, an append.
  mkdir -p "$src/new"
  it_random_file "$src/new/n1" $((3 * 1024 * 1024 + 5))
  it_random_file "$src/new/n2" 5000
  it_random_file "$IT_WORK/patch" 70000
  dd if="$IT_WORK/patch" of="$src/d1/big" bs=1 seek=100000 conv=notrunc status=none
  head -c 12345 "$IT_WORK/patch" >>"$src/f65536"
  cp -a "$src/new" "$mp/tree/new" || fail "$label: writing new files while degraded failed"
  dd if="$IT_WORK/patch" of="$mp/tree/d1/big" bs=1 seek=100000 conv=notrunc status=none ||
    fail "$label: overwriting while degraded failed"
  head -c 12345 "$IT_WORK/patch" >>"$mp/tree/f65536" || fail "$label: appending while degraded failed"
  touch -r "$src/d1/big" "$mp/tree/d1/big"; touch -r "$src/f65536" "$mp/tree/f65536"
  touch -r "$src/d1" "$mp/tree/d1"; touch -r "$src" "$mp/tree"
  sync
  compare "$label: after writes while degraded" "$src" "$mp/tree"
  it_umount "$mp"

  it_mount "$(present "$arr" "$n" ,)" "$mp"
  expect_degraded "$label: by member list" "$mp"
  compare "$label: remounted by the list of present members, still degraded" "$src" "$mp/tree"
  it_umount "$mp"

  it_mount "$arr/meta" "$mp" -o "members=$(present "$arr" "$n" :)"
  expect_degraded "$label: METADIR -o members=" "$mp"
  compare "$label: remounted by METADIR -o members=present ones" "$src" "$mp/tree"
  it_umount "$mp"

  # The members come back, stale (they missed the writes): they must not be trusted.
  bring_back "$arr" "${missing[@]}"
  it_mount "$arr/meta" "$mp"
  compare "$label: with the stale members back" "$src" "$mp/tree"
  it_log "$label: status with the stale members back: $(it_status "$mp" | grep -i -E 'degraded|missing|member' | tr '\n' ';')"
  it_umount "$mp"

  # One member more gone than the parity count: refused, by METADIR and by member list.
  take_away "$arr" "${missing[@]}" "$extra"
  expect_refused "$label: by METADIR, members ${missing[*]} $extra gone" "$arr/meta" "$mp" "${missing[@]}" "$extra"
  expect_refused "$label: by member list, members ${missing[*]} $extra gone" "$(present "$arr" "$n" ,)" "$mp" "${missing[@]}" "$extra"
  # The refusal changed nothing: with the extra member back the array mounts and reads correctly.
  bring_back "$arr" "$extra"
  it_mount "$arr/meta" "$mp"
  compare "$label: mounted again after the refusals" "$src" "$mp/tree"
  it_umount "$mp"
  rm -rf "$src"
}

run_case raid6 6 6 2 1 4
run_case raid5 4 5 0 2

# A blank member: the array's own list counts it missing; a list the user names does not.
blank_case() {
  local arr=$IT_WORK/blank mp=$IT_WORK/mnt-blank other=$IT_WORK/other src=$IT_WORK/src-blank out
  it_make_array "$arr" 4 64M -l 5 -c 16K
  it_make_tree "$src" 2
  it_mount "$arr/meta" "$mp"
  cp -a "$src" "$mp/tree"
  it_umount "$mp"
  truncate -s 0 "$arr/m2.img"
  truncate -s 64M "$arr/m2.img"   # blank, as a replaced disk
  it_mount "$arr/meta" "$mp"
  it_status "$mp" | grep -q "state: degraded" || fail "blank member: the mount is not degraded: $(it_status "$mp")"
  it_status "$mp" | grep -q "m2.img: no raidfs superblock" || fail "blank member: status does not name it: $(it_status "$mp")"
  compare "blank member: by METADIR" "$src" "$mp/tree"
  it_umount "$mp"
  out=$("$IT_BUILD/utils/raidfs-fsck" -n "$arr/meta" 2>&1) || fail "blank member: fsck -n by METADIR: $out"
  local rc=0
  it_try_mount "$(present "$arr" 4 ,)" "$mp" || rc=$?
  ((rc == 1)) || fail "blank member named by the user: mount returned $rc, want 1"
  grep -q "m2.img: no raidfs superblock" "$IT_WORK/mount.err" || fail "blank member named by the user: $(cat "$IT_WORK/mount.err")"
  # Another array's metadata directory with these members: refused, nothing mounted.
  it_make_array "$other" 4 32M -l 5
  rc=0
  it_try_mount "$other/meta" "$mp" -o "members=$arr/m0.img:$arr/m1.img:$arr/m3.img" || rc=$?
  ((rc == 1)) || fail "METADIR of another array with -o members=: mount returned $rc, want 1"
  grep -q "belongs to array" "$IT_WORK/mount.err" || fail "METADIR of another array: $(cat "$IT_WORK/mount.err")"
  it_log "blank member: degraded by METADIR, refused by name; another array's METADIR refused"

  # A member truncated while mounted: reads rebuild what it held, and status says it failed.
  local fresh=$IT_WORK/fresh
  it_make_array "$fresh" 4 64M -l 5 -c 16K
  it_mount "$fresh/meta" "$mp"
  cp -a "$src" "$mp/tree"
  sync -f "$mp"
  truncate -s 2M "$fresh/m1.img"
  echo 3 >/proc/sys/vm/drop_caches
  compare "member truncated while mounted" "$src" "$mp/tree"
  local status
  status=$(it_status "$mp")
  grep -q "state: degraded" <<<"$status" || fail "a member truncated while mounted: not degraded: $status"
  grep -E '^member 1:' <<<"$status" | grep -q -E 'failed .*read [1-9]' ||
    fail "a member truncated while mounted is not shown failed with its read errors: $(grep -E '^member 1:' <<<"$status")"
  it_log "member truncated while mounted: $(grep -E '^member 1:' <<<"$status")"
  it_umount "$mp"
}
blank_case
