#!/usr/bin/env bash
# Goal: nothing is silently wrong — blocks of a member image overwritten with random bytes behind
# raidfs's back are caught by their checksums, rebuilt from parity, returned correct and counted in
# the status (corrupt, reconstructed); blocks of sealed stripes are healed (rewritten in place) so
# that the image holds the right bytes again and the next mount reads them without rebuilding.
# Also, on RAID6, the same blocks corrupted on two members at once (at most two bad chunks in any
# row, data or parity) still read back correct.
# Method: files written and unmounted; random non-zero 4 KiB blocks in the data area (from 1 MiB
# on) of member images overwritten with dd-like writes (a pristine copy of each image kept);
# remount, compare every file, read the counters, unmount, compare the corrupted blocks of the
# image with the pristine copy, remount and compare again. Healing that does not happen, or
# does not restore the bytes, fails the test.
#   usage: fs_corrupt_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_corrupt

arr=$IT_WORK/arr mp=$IT_WORK/mnt src=$IT_WORK/src
it_make_tree "$src" 8
it_make_array "$arr" 6 64M -l 6 -c 16K
it_mount "$arr/meta" "$mp"
cp -a "$src" "$mp/tree" || fail "cp -a into raidfs failed"
it_umount "$mp"

# counters MP: "corrupt=N reconstructed=N healed=N" from the status (empty values if absent).
counters() {
  local c r h
  c=$(it_status_number "$1" '^ *corrupt')
  r=$(it_status_number "$1" '^ *reconstructed')
  h=$(it_status_number "$1" '^ *healed')
  echo "corrupt=${c:-?} reconstructed=${r:-?} healed=${h:-?}"
}

# restored IMAGE PRISTINE OFFSETS_FILE: how many of the listed blocks hold the pristine bytes again.
restored() {
  local n=0 off
  while read -r off; do
    cmp -s -n 4096 -i "$off:$off" "$1" "$2" && n=$((n + 1))
  done <"$3"
  echo "$n"
}

# --- one member, 48 random blocks --------------------------------------------------------------
cp --sparse=always "$arr/m2.img" "$IT_WORK/m2.pristine"
it_corrupt_blocks "$arr/m2.img" 48 11 "$IT_WORK/m2.offsets" >/dev/null || fail "could not corrupt m2.img"
cmp -s "$arr/m2.img" "$IT_WORK/m2.pristine" && fail "the corruption did not change m2.img"
it_mount "$arr/meta" "$mp"
it_compare_trees "$src" "$mp/tree" || fail "files read back wrong after 48 blocks of member 2 were corrupted"
it_log "one member corrupted: every file compares equal"
status1=$(it_status "$mp")
read -r corrupt reconstructed healed < <(counters "$mp" | sed -E 's/[a-z]+=//g')
it_log "counters after reading everything: corrupt=$corrupt reconstructed=$reconstructed healed=$healed"
[[ $corrupt =~ ^[0-9]+$ && $corrupt -gt 0 ]] ||
  fail "the status does not count corrupt blocks after 48 corrupted blocks were read: $status1"
[[ $reconstructed =~ ^[0-9]+$ && $reconstructed -gt 0 ]] ||
  fail "the status does not count reconstructed blocks: $status1"
[[ $healed =~ ^[0-9]+$ ]] || fail "the status has no healed count: $status1"
it_umount "$mp"

fixed=$(restored "$arr/m2.img" "$IT_WORK/m2.pristine" "$IT_WORK/m2.offsets")
it_log "after the unmount, $fixed of the 48 corrupted blocks of m2.img hold the right bytes again"
# Every stripe was sealed at the unmount, so every block that failed its checksum is healed, and
# each one healed holds the right bytes again.
((healed > 0)) || fail "no block was healed (self-heal rewrites corrupt blocks of sealed stripes): $status1"
((healed == corrupt)) || fail "$corrupt blocks failed their checksum but $healed were healed: $status1"
((fixed >= healed)) ||
  fail "the status says $healed blocks were healed but only $fixed corrupted blocks of m2.img hold the right bytes again"
grep -E '^member 2:' <<<"$status1" | grep -q -E 'checksum [1-9]' ||
  fail "member 2's checksum errors are not counted: $(grep -E '^member 2:' <<<"$status1")"

# Second mount: still correct; healed blocks are not corrupt any more.
it_mount "$arr/meta" "$mp"
it_compare_trees "$src" "$mp/tree" || fail "files read back wrong on the mount after the healing one"
read -r corrupt2 _ _ < <(counters "$mp" | sed -E 's/[a-z]+=//g')
it_log "second mount: every file compares equal; corrupt=$corrupt2 (was $corrupt, healed $healed)"
((corrupt2 <= corrupt - healed)) ||
  fail "the second read found $corrupt2 corrupt blocks; after $healed of $corrupt were healed at most $((corrupt - healed)) should remain"
it_umount "$mp"

# Put back the blocks of m2 that were not healed (parity, unused space: a read never checks them),
# so that below no row has more bad chunks than intended.
while read -r off; do
  dd if="$IT_WORK/m2.pristine" of="$arr/m2.img" bs=4096 skip=$((off / 4096)) seek=$((off / 4096)) count=1 \
    conv=notrunc status=none
done <"$IT_WORK/m2.offsets"
# The data area only: the superblocks were rewritten by the clean unmounts since.
data_bytes=$(($(stat -c %s "$arr/m2.img") - 1048576 - 4096))
cmp -s -i 1048576 -n "$data_bytes" "$arr/m2.img" "$IT_WORK/m2.pristine" ||
  fail "m2.img's data area differs from its pristine copy after the repair"

# --- RAID6: two members corrupted at the same offsets (any row: at most two bad chunks) ---------
it_corrupt_blocks "$arr/m0.img" 32 23 "$IT_WORK/m0.offsets" >/dev/null || fail "could not corrupt m0.img"
cp "$IT_WORK/m0.offsets" "$IT_WORK/m4.offsets"
it_corrupt_blocks "$arr/m4.img" 32 29 "$IT_WORK/m4.offsets" >/dev/null || fail "could not corrupt m4.img"
it_mount "$arr/meta" "$mp"
it_compare_trees "$src" "$mp/tree" ||
  fail "files read back wrong after the same 32 blocks of members 0 and 4 were corrupted (RAID6 must rebuild two bad chunks per row)"
it_log "two members corrupted at the same offsets: every file compares equal ($(counters "$mp"))"
it_umount "$mp"

# --- three members corrupted at the same offsets: beyond RAID6; never silently wrong ------------
# A file whose blocks cannot be rebuilt must fail to read (EIO), not return wrong bytes.
it_corrupt_blocks "$arr/m1.img" 24 31 "$IT_WORK/m1.offsets" >/dev/null || fail "could not corrupt m1.img"
for i in 3 5; do
  cp "$IT_WORK/m1.offsets" "$IT_WORK/m$i.offsets"
  it_corrupt_blocks "$arr/m$i.img" 24 $((31 + i)) "$IT_WORK/m$i.offsets" >/dev/null || fail "could not corrupt m$i.img"
done
it_mount "$arr/meta" "$mp"
unreadable=0
while IFS= read -r -d '' f; do
  rel=${f#"$mp/tree/"}
  if cat "$f" >"$IT_WORK/readback" 2>/dev/null; then
    cmp -s "$IT_WORK/readback" "$src/$rel" ||
      fail "$rel read back WRONG without an error after the same blocks of members 1, 3 and 5 were corrupted (silent corruption)"
  else
    unreadable=$((unreadable + 1))
  fi
done < <(find "$mp/tree" -type f -print0)
it_log "three members corrupted at the same offsets: $unreadable file(s) fail to read, none reads wrong ($(counters "$mp"))"
((unreadable > 0)) || fail "three bad chunks in some rows, yet every file read back fine: was anything corrupted?"
# Reads that failed because blocks were beyond repair are counted too.
failed3=$(it_status_number "$mp" '^ *unreadable')
[[ $failed3 =~ ^[0-9]+$ && $failed3 -gt 0 ]] ||
  fail "$unreadable file(s) failed to read because blocks were beyond repair, but the status counts unreadable=$failed3"
it_umount "$mp"
