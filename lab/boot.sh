#!/bin/bash
# Boots the lab VM once and collects what the tests inside reported.
#   lab/boot.sh MODE KERNEL_DIR ROOTFS POLICY_DIR RUN_DIR [DEBUG_SCRIPT [PATCH_SCRIPT [GUEST_DIR]]]
# MODE is selinux or apparmor. RUN_DIR (emptied first) is shared with the VM as /mnt and
# ends up holding console.log, results.tap (node:test's TAP), exit-code, dmesg.txt.
# Exit status: the tests' (0 = all passed); 124 when the VM hit the hard timeout; 125 when
# it did not come up or stage 2 failed. Env: SVIRT_LAB_TIMEOUT (s, default 1500),
# SVIRT_LAB_ACCEL (tcg, default, or kvm), SVIRT_LAB_MEM (MiB, default 2048),
# SVIRT_LAB_BOOT_TIMEOUT (s until stage 2 must have started, default 120).
set -uo pipefail
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/lib.sh"

mode=$1 kdir=$2 rootfs=$3 policy=$4 run=$5 debug=${6:-} patch=${7:-} guest=${8:-}
# the real guest's boot under nested TCG takes about 6 min of the VM's time (test/enforce/guest-boot.test.ts)
timeout_s=${SVIRT_LAB_TIMEOUT:-1500}
boot_timeout_s=${SVIRT_LAB_BOOT_TIMEOUT:-120}
accel=${SVIRT_LAB_ACCEL:-tcg}
mem=${SVIRT_LAB_MEM:-2048}
# TCG: every feature QEMU can emulate. KVM: the host's CPU without IA32_ARCH_CAPABILITIES,
# which a nested hypervisor may refuse to set (QEMU then aborts: "failed to set MSR 0x10a")
cpu=max
[ "$accel" = kvm ] && cpu=host,-arch-capabilities
case "$mode" in
selinux) lsm="security=selinux selinux=1 enforcing=1" ;;
apparmor) lsm="apparmor=1 security=apparmor" ;;
*) lab_die "mode must be selinux or apparmor, not '$mode'" ;;
esac

rm -rf "$run"
mkdir -p "$run/policy"
[ "$mode" = selinux ] && cp "$policy"/*.33 "$run/policy/"
[ -n "$debug" ] && cp "$debug" "$run/debug.sh"
[ -n "$patch" ] && cp "$patch" "$run/patch.mjs"
# the real guest image (scripts/build-guest.sh), booted by test/enforce/guest-boot.test.ts
[ -n "$guest" ] && mkdir -p "$run/guest" && cp "$guest/vmlinuz" "$guest/initrd.img" "$run/guest/"
console=$run/console.log

qemu=(qemu-system-x86_64 -name "svirt-lab-$mode" -machine q35 -accel "$accel" -cpu "$cpu" -m "$mem" -smp 2
  -nographic -no-reboot -nodefaults -no-user-config
  -kernel "$kdir/vmlinuz" -initrd "$kdir/initrd.img"
  # log_buf_len: the tests read AVC / AppArmor records back from the kernel log
  -append "console=ttyS0 panic=-1 quiet log_buf_len=8M $lsm svirt_lab=$mode"
  # the cached image is never written: writes go to a throw-away overlay
  -drive "file=$rootfs,format=raw,if=virtio,snapshot=on"
  -device virtio-rng-pci
  -virtfs "local,path=$REPO_DIR,mount_tag=svirt,security_model=none,readonly=on"
  -virtfs "local,path=$run,mount_tag=labrun,security_model=none"
  -chardev "file,id=con,path=$console" -serial chardev:con)

# QEMU in the background, by pid, so the timeouts can stop exactly it
"${qemu[@]}" >"$run/qemu.out" 2>&1 &
qpid=$!
trap 'kill "$qpid" 2>/dev/null' EXIT INT TERM
start=$(date +%s)
up=0
status=
while kill -0 "$qpid" 2>/dev/null; do
  now=$(date +%s)
  if [ "$up" = 0 ] && grep -q 'svirt-lab: \(SELinux\|AppArmor\)' "$console" 2>/dev/null; then
    up=1
    lab_log "$mode: VM up after $((now - start)) s"
  fi
  if [ "$up" = 0 ] && [ $((now - start)) -ge "$boot_timeout_s" ]; then
    lab_log "$mode: VM did not come up within $boot_timeout_s s"
    status=125
    break
  fi
  if [ $((now - start)) -ge "$timeout_s" ]; then
    lab_log "$mode: hard timeout ($timeout_s s)"
    status=124
    break
  fi
  sleep 1
done
if kill -0 "$qpid" 2>/dev/null; then
  kill "$qpid" 2>/dev/null
  sleep 2
  kill -9 "$qpid" 2>/dev/null
fi
wait "$qpid" 2>/dev/null
trap - EXIT INT TERM
if [ -z "$status" ]; then
  if [ -f "$run/exit-code" ]; then
    status=$(cat "$run/exit-code")
  else
    lab_log "$mode: the VM stopped without a report"
    status=125
  fi
fi
if [ "$status" != 0 ]; then
  [ -f "$run/fatal" ] && lab_log "$mode: $(cat "$run/fatal")"
  lab_log "$mode: last console lines ($console):"
  tail -n 40 "$console" | sed 's/^/    /' >&2
  [ -s "$run/qemu.out" ] && sed 's/^/    qemu: /' "$run/qemu.out" >&2
fi
exit "$status"
