#!/usr/bin/env bash
# Goal: a self-contained array (mkfs.raidfs without -m: the metadata on the members, mirrored on
# m+1 of them) needs nothing of the host: it mounts by its members alone — a list, the directory
# holding them, UUID=<array> over block devices —; it survives the loss of any m members, those
# holding the metadata's copies included, byte for byte; replaced members get their metadata
# copies back, so that after replacing two, two *others* can go; a damaged copy of the metadata
# on one member is read around, healed, found by scrub and by fsck, which repairs it; a full
# metadata region is a one-line ENOSPC, to new files and new data, status warns of it, files can
# still be removed, and what was written before it filled is stored (unsynced: its commit may
# use the reserve that new work is refused at).
# Method: RAID6 on six 256 MiB images (the default region: 64 MiB mirrored, 32 MiB on each
# member), files of random bytes, members renamed away, new images, loop devices for UUID=.
#   usage: fs_selfcontained_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_selfcontained
admin=$IT_BUILD/utils/raidfs fsck=$IT_BUILD/utils/raidfs-fsck

arr=$IT_WORK/arr mp=$IT_WORK/mnt src=$IT_WORK/src
mkdir -p "$arr" "$src"
for i in 0 1 2 3 4 5; do truncate -s 256M "$arr/m$i.img"; done
out=$("$IT_MKFS" -f "$arr"/m{0..5}.img) || fail "mkfs.raidfs without -m failed: $out"
[[ $out == *"metadata on the members: 64.00 MiB, mirrored on 3 of them (32.00 MiB on each)"* ]] ||
  fail "mkfs does not say where the metadata went: $out"
[[ ! -e $arr/meta ]] || fail "mkfs made a metadata directory"
uuid=$(sed -n 's/^raidfs array \([0-9a-f-]*\).*/\1/p' <<<"$out")
list=$(printf '%s,' "$arr"/m{0..5}.img) list=${list%,}

# --- 1. mounted by its members: a list, then their directory ---------------------------------
it_mount "$list" "$mp"
it_status "$mp" | grep -q '^metadata: on the members, .* mirrored on 3 members' ||
  fail "status does not show the metadata region: $(it_status "$mp" | grep '^metadata')"
for s in 1 4095 65536 1000000 5000000; do it_random_file "$src/f$s" "$s"; done
mkdir -p "$src/dir"
for i in $(seq 200); do echo "file $i" >"$src/dir/n$i"; done
cp -a "$src"/. "$mp"/ && sync -f "$mp" || fail "copying the files in failed"
it_umount "$mp"
it_mount "$arr" "$mp"
diff -r "$src" "$mp" >/dev/null || fail "the files differ when mounted by the members' directory"
it_umount "$mp"
out=$("$fsck" -n "$arr" 2>&1) || fail "fsck -n by the members' directory: $out"
[[ $out == *"metadata on the members"* && $out == *"pass 1b: the metadata region"* ]] ||
  fail "fsck does not check the metadata region: $out"
it_log "mounted by a member list and by the directory holding them; fsck -n clean"

# --- 2. UUID= finds the members among the block devices ----------------------------------------
loops=()
for i in 0 1 2 3 4 5; do loops+=("$(losetup -f --show "$arr/m$i.img")") || fail "losetup failed"; done
release_loops() { for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done; loops=(); }
it_mount "UUID=$uuid" "$mp" || { release_loops; fail "mount by UUID failed"; }
diff -r "$src" "$mp" >/dev/null || { release_loops; fail "the files differ when mounted by UUID"; }
it_status "$mp" | grep -q "^member 0: active /dev/loop" || { release_loops; fail "not mounted from the loop devices"; }
it_umount "$mp"
# On devices that say their cache is write-through, a metadata fsync still reaches them before
# it returns: the region is written through the members' page cache, which only its flush sends
# on (a flush skipped for such members left a synced commit in memory until writeback).
for l in "${loops[@]}"; do echo "write through" >"/sys/block/${l#/dev/}/queue/write_cache"; done
sectors_written() {
  local n=0 l
  for l in "${loops[@]}"; do n=$((n + $(awk '{print $7}' "/sys/block/${l#/dev/}/stat"))); done
  echo "$n"
}
it_mount "UUID=$uuid" "$mp" || { release_loops; fail "mount by UUID over write-through devices failed"; }
before=$(sectors_written)
mkdir "$mp/synced" && python3 -c 'import os, sys; os.fsync(os.open(sys.argv[1], os.O_RDONLY))' "$mp" ||
  { release_loops; fail "mkdir + fsync of the directory failed"; }
after=$(sectors_written)
((after > before)) || { release_loops; fail "an fsync on write-through members wrote nothing to them ($before sectors before, $after after)"; }
rmdir "$mp/synced"
it_umount "$mp"
# Through mount(8) (installed by scripts/install.sh): it resolves UUID= itself with libblkid,
# which knows no raidfs, so there the array is uuid=... — on the command line and in fstab.
if [[ -x /sbin/mount.raidfs ]]; then
  mount -t raidfs "uuid=$uuid" "$mp" || { release_loops; fail "mount -t raidfs uuid=$uuid failed"; }
  IT_MOUNTS+=("$mp")
  diff -r "$src" "$mp" >/dev/null || { release_loops; fail "the files differ when mounted by mount -t raidfs uuid="; }
  it_umount "$mp"
  printf 'uuid=%s %s raidfs defaults,nofail 0 0\n' "$uuid" "$mp" >"$IT_WORK/fstab"
  mount -T "$IT_WORK/fstab" "$mp" || { release_loops; fail "the fstab line by uuid= did not mount"; }
  [[ $(findmnt -n -o SOURCE "$mp") == "uuid=$uuid" ]] || { release_loops; fail "the mount's source is not uuid=$uuid"; }
  it_umount "$mp"
fi
release_loops
rc=0; out=$("$IT_MOUNT_PROG" "UUID=00000000-0000-4000-8000-000000000000" "$mp" 2>&1) || rc=$?
((rc != 0)) && [[ $(wc -l <<<"$out") -eq 1 && $out == *"no block device holds a member"* ]] ||
  fail "an unknown UUID is not one clear line: $out"
it_log "mounted by UUID=$uuid over loop devices (mount.raidfs, mount -t raidfs uuid=, an fstab line); an unknown UUID refused in one line"

# --- 3. any two members gone, those with the journal's copies too ------------------------------
# Row 0 of the region (the journal) has its copies on members 0, 1 and 2.
for pair in "0 1" "1 2" "3 5"; do
  read -r a b <<<"$pair"
  mv "$arr/m$a.img" "$arr/away-a.img"
  mv "$arr/m$b.img" "$arr/away-b.img"
  it_mount "$arr" "$mp" -o ro
  diff -r "$src" "$mp" >/dev/null || fail "files differ with members $a and $b gone"
  it_umount "$mp"
  mv "$arr/away-a.img" "$arr/m$a.img"
  mv "$arr/away-b.img" "$arr/m$b.img"
done
it_log "every file reads back with members 0+1, 1+2 (metadata copies among them), 3+5 gone"

# --- 4. replace two members (written while they are away), then lose two others ---------------
mv "$arr/m0.img" "$IT_WORK/old-m0.img"
mv "$arr/m2.img" "$IT_WORK/old-m2.img"
it_mount "$list" "$mp"
it_random_file "$src/degraded" 3000000
cp "$src/degraded" "$mp/degraded" && sync -f "$mp" || fail "writing while degraded failed"
for i in 0 2; do
  truncate -s 256M "$IT_WORK/new$i.img"
  "$admin" replace --wait "$mp" "$i" "$IT_WORK/new$i.img" >"$IT_WORK/replace.out" 2>&1 ||
    fail "replacing member $i failed: $(cat "$IT_WORK/replace.out")"
done
it_status "$mp" | grep -q '^state: healthy' || fail "not healthy after two replaces: $(it_status "$mp" | grep member)"
it_umount "$mp"
mv "$arr/m1.img" "$arr/away-1.img"
mv "$arr/m4.img" "$arr/away-4.img"
new_list=$(printf '%s,' "$IT_WORK/new0.img" "$IT_WORK/new2.img" "$arr/m3.img" "$arr/m5.img")
it_mount "${new_list%,}" "$mp" -o ro
diff -r "$src" "$mp" >/dev/null || fail "files differ after the replaces with members 1 and 4 gone"
it_umount "$mp"
mv "$arr/away-1.img" "$arr/m1.img"
mv "$arr/away-4.img" "$arr/m4.img"
mv "$IT_WORK/new0.img" "$arr/m0.img"
mv "$IT_WORK/new2.img" "$arr/m2.img"
rm -f "$IT_WORK"/old-m*.img
it_log "members 0 and 2 replaced; then every file reads back with 1 and 4 gone (metadata from the new ones)"

# --- 5. one member's copy of the metadata damaged ------------------------------------------------
# region_of MEMBER: "offset bytes" of the region on that member, from its superblock.
region_of() {
  python3 - "$1" <<'PY'
import struct, sys
with open(sys.argv[1], "rb") as f:
    sb = f.read(4096)
print(*struct.unpack_from("<QQ", sb, 2792))
PY
}
damage_region() {  # scribbles over member $1's whole copy of the region
  read -r off bytes < <(region_of "$arr/m$1.img")
  dd if=/dev/urandom of="$arr/m$1.img" bs=1M seek=$((off >> 20)) count=$((bytes >> 20)) conv=notrunc status=none
}
damage_region 1
rc=0; out=$("$fsck" -n "$arr" 2>&1) || rc=$?
((rc == 4)) && [[ $out == *"problem: metadata region: "*" bad copies"* ]] ||
  fail "fsck -n does not report the damaged metadata copies (exit $rc): $out"
rc=0; out=$("$fsck" -p "$arr" 2>&1) || rc=$?
((rc == 1)) && [[ $out == *"fixed: metadata region: "*"bad copies, rewritten from good ones"* ]] ||
  fail "fsck -p does not repair the metadata copies (exit $rc): $out"
out=$("$fsck" -n "$arr" 2>&1) || fail "fsck -n after fsck -p: $out"
it_log "a member's metadata copy damaged: fsck -n found it (exit 4), fsck -p repaired it (exit 1)"

# Member 0 holds the first copy of rows 0 and 2 (the journal's first area, the first files):
# the copy reads try first.
damage_region 0
it_mount "$arr" "$mp"
diff -r "$src" "$mp" >/dev/null || fail "files differ with member 0's metadata copy damaged"
"$admin" scrub --wait "$mp" >/dev/null || fail "raidfs scrub failed"
line=$(it_status "$mp" | grep '^scrub_metadata:') || fail "status shows no metadata scrub"
bad=$(grep -o -E '[0-9]+ bad copies' <<<"$line" | grep -o -E '^[0-9]+' || true)
healed=$(it_status "$mp" | grep '^metadata:' | grep -o -E '[0-9]+ bad copies healed' | grep -o -E '^[0-9]+')
((healed > 0)) || fail "reads met no damaged copy to heal: $(it_status "$mp" | grep '^metadata:')"
"$admin" scrub --wait "$mp" >/dev/null || fail "the second scrub failed"
it_status "$mp" | grep -q '^scrub_metadata: .* 0 bad copies' ||
  fail "a second scrub still finds bad metadata copies: $(it_status "$mp" | grep '^scrub_metadata')"
it_umount "$mp"
out=$("$fsck" -n "$arr" 2>&1) || fail "fsck -n after the scrub: $out"
it_log "member 0's metadata copy damaged: read around ($healed healed by reads), scrub repaired $bad more, fsck clean"

# --- 6. a full metadata region -------------------------------------------------------------------
small=$IT_WORK/small
mkdir -p "$small"
for i in 0 1 2 3; do truncate -s 64M "$small/s$i.img"; done
"$IT_MKFS" -q -f -l 5 -M 8M "$small"/s{0..3}.img || fail "mkfs -M 8M failed"
it_mount "$small" "$mp"
echo kept >"$mp/kept" && : >"$mp/late" && sync -f "$mp"
# Files with an xattr of 3000 random bytes each, until the metadata refuses them; then new data
# must be refused too (before it is acknowledged). The region's use moves as RocksDB flushes and
# compacts, so while a data write still finds room, the filling goes on.
files=$(python3 - "$mp" <<'PY'
import errno, os, sys
mp = sys.argv[1]
late = os.open(f"{mp}/late", os.O_WRONLY)
first_refused = None
for i in range(20000):
    try:
        path = f"{mp}/x{i}"
        open(path, "w").close()
        os.setxattr(path, "user.pad", os.urandom(3000))
        continue
    except OSError as e:
        if e.errno != errno.ENOSPC:
            print(i, errno.errorcode.get(e.errno, e.errno), e.strerror)
            sys.exit(0)
        if first_refused is None:
            first_refused = f"{i} ENOSPC {e.strerror}"
    try:
        os.pwrite(late, os.urandom(1 << 20), 0)
        os.fsync(late)
    except OSError as e:
        print(first_refused, "| data:", errno.errorcode.get(e.errno, e.errno), e.strerror)
        sys.exit(0)
print("fit")
PY
)
[[ $files != fit ]] || fail "20000 files with 3000-byte xattrs fit in an 8 MiB metadata region?"
[[ $files == *" ENOSPC No space left on device | "* ]] || fail "a full metadata region is not ENOSPC: $files"
[[ $files == *"| data: ENOSPC No space left on device" ]] ||
  fail "new data on a full metadata region is not ENOSPC: $files"
it_status "$mp" | grep -q '^metadata: .*NEARLY FULL' ||
  fail "status does not warn of the full metadata region: $(it_status "$mp" | grep '^metadata')"
[[ $(cat "$mp/kept") == kept ]] || fail "a file stored before the region filled reads back wrong"
# Removals may use half the reserve the other writes are refused at: a full region can be emptied.
rm -f "$mp"/x* || fail "removing files from a full metadata region failed"
[[ -z $(find "$mp" -name 'x*' -print -quit) ]] || fail "files are left after the removal"
it_umount "$mp"
it_mount "$small" "$mp" -o ro
[[ $(cat "$mp/kept") == kept ]] || fail "after a remount, the file reads back wrong"
it_umount "$mp"
it_log "a full metadata region: ENOSPC after ${files%% *} files and to new data, status warns, removals still work, what was stored stays"
