#!/usr/bin/env bash
# Goal: installed (scripts/install.sh), raidfs is mounted and unmounted like any filesystem, and
# its daemon's log can be read on a machine without a syslog daemon.
#   1. `mount -t raidfs SPEC MP` mounts (mount(8) finds /sbin/mount.raidfs); `umount SPEC`
#      unmounts by source as `umount MP` does by mount point;
#   2. an fstab line (mount -T FILE, the same parser as /etc/fstab) mounts by mount point and
#      by source, with raidfs options in it; `mount -o remount,ro MP` goes through mount(8);
#   3. -o log=PATH: the detached daemon's lines go to the file; the default is syslog where
#      /dev/log exists, else /var/log/raidfs.log; `raidfs status` names the log and shows the
#      last warnings (a degraded mount's).
#   usage: fs_install_test.sh BUILD_DIR
set -euo pipefail
source "$(dirname "$0")/lib.sh"
it_init "${1:?build dir}" fs_install

installed=$(/sbin/mount.raidfs --version 2>/dev/null || true)
[[ $installed == "$("$IT_MOUNT_PROG" --version)" ]] ||
  fail "/sbin/mount.raidfs is not this build's (${installed:-missing}): run scripts/install.sh"
transport=()
[[ -n ${RAIDFS_IT_TRANSPORT:-} ]] && transport=(-o "transport=$RAIDFS_IT_TRANSPORT")

arr=$IT_WORK/arr mp=$IT_WORK/mnt
it_make_array "$arr" 5 64M -l 5
mkdir -p "$mp"
it_random_file "$IT_WORK/data" 300000

# wait_gone MP: until the mount is gone and its daemon has let go of the images.
wait_gone() {
  for _ in $(seq 100); do
    if ! mountpoint -q "$1" && [[ -z $(it_daemon_pids "$1" "$arr") ]]; then return 0; fi
    sleep 0.1
  done
  fail "$1 is still mounted or its daemon still runs"
}

# 1. mount -t raidfs, umount by source: a member list as is; a metadata directory with -A
# (umount(8) of util-linux 2.38 takes a directory for a mount point and calls umount(2) on it).
mount -t raidfs "${transport[@]}" "$arr/meta" "$mp" || fail "mount -t raidfs failed"
mountpoint -q "$mp" || fail "mount -t raidfs mounted nothing"
cp "$IT_WORK/data" "$mp/data"
[[ $(findmnt -n -o SOURCE "$mp") == "$arr/meta" ]] || fail "the mount's source is $(findmnt -n -o SOURCE "$mp"), not $arr/meta"
umount -A "$arr/meta" || fail "umount -A METADIR failed"
wait_gone "$mp"
members=$(IFS=,; echo "${IT_MEMBERS[*]}")
mount -t raidfs "${transport[@]}" "$members" "$mp" || fail "mount -t raidfs MEMBER,MEMBER,... failed"
cmp "$IT_WORK/data" "$mp/data" || fail "the file differs when mounted by its members"
umount "$members" || fail "umount MEMBER,MEMBER,... (by source) failed"
wait_gone "$mp"
it_log "mount -t raidfs META MP, umount -A META; mount -t raidfs M0,M1,... MP, umount M0,M1,..."

# 2. An fstab line, mounted by mount point and by source.
printf '%s %s raidfs defaults,noatime,commit=2%s 0 0\n' "$arr/meta" "$mp" \
  "${RAIDFS_IT_TRANSPORT:+,transport=$RAIDFS_IT_TRANSPORT}" >"$IT_WORK/fstab"
mount -T "$IT_WORK/fstab" "$mp" || fail "mount of the fstab line by mount point failed"
cmp "$IT_WORK/data" "$mp/data" || fail "the file differs after mounting from fstab"
findmnt -n -o OPTIONS "$mp" | grep -q noatime || fail "noatime from the fstab line is not in effect"
mount -o remount,ro "$mp" || fail "mount -o remount,ro failed"
findmnt -n -o OPTIONS "$mp" | grep -q '^ro' || fail "remount,ro did not make the mount read-only"
mount -o remount,rw "$mp" || fail "mount -o remount,rw failed"
echo more >"$mp/more" || fail "not writable after remount,rw"
umount "$mp"
wait_gone "$mp"
mount -T "$IT_WORK/fstab" "$arr/meta" || fail "mount of the fstab line by source failed"
[[ $(cat "$mp/more") == more ]] || fail "the file written after remount,rw is gone"
umount "$mp"
wait_gone "$mp"
it_log "an fstab line mounts by mount point and by source; mount -o remount,ro / rw"

# 3. The log: a file named with -o log=, the default, and the last warnings in status.
mount -t raidfs "${transport[@]}" -o "log=$IT_WORK/raidfs.log" "$arr/meta" "$mp" || fail "mount with -o log= failed"
grep -q "raidfs\[[0-9]*\] $mp info: mounted" "$IT_WORK/raidfs.log" ||
  fail "the log file has no 'mounted' line: $(cat "$IT_WORK/raidfs.log")"
[[ $(it_status "$mp" | sed -n 's/^log: //p') == "$IT_WORK/raidfs.log" ]] || fail "status does not name the log file"
umount "$mp"
wait_gone "$mp"
grep -q "info: unmounted $mp" "$IT_WORK/raidfs.log" || fail "the log file has no 'unmounted' line"
mv "${IT_MEMBERS[1]}" "${IT_MEMBERS[1]}.gone"
mount -t raidfs "${transport[@]}" -o "log=$IT_WORK/raidfs.log" "$arr/meta" "$mp" 2>/dev/null || fail "the degraded mount failed"
grep -q "warning: .*degraded" "$IT_WORK/raidfs.log" || fail "the degraded mount's warning is not in the log file"
it_status "$mp" | grep -q "^recent: .* warning: .*degraded" || fail "status shows no recent warning: $(it_status "$mp")"
cmp "$IT_WORK/data" "$mp/data" || fail "the file differs on the degraded mount"
umount "$mp"
wait_gone "$mp"
mv "${IT_MEMBERS[1]}.gone" "${IT_MEMBERS[1]}"
want=/var/log/raidfs.log
[[ -S /dev/log || -e /dev/log ]] && want=syslog
mount -t raidfs "${transport[@]}" "$arr/meta" "$mp" 2>/dev/null || fail "mount failed"
[[ $(it_status "$mp" | sed -n 's/^log: //p') == "$want" ]] || fail "the default log is $(it_status "$mp" | sed -n 's/^log: //p'), not $want"
umount "$mp"
wait_gone "$mp"
it_log "-o log=FILE gets the daemon's lines; default log: $want; status shows the last warnings"
it_log "PASS"
