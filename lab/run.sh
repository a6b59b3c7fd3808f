#!/bin/bash
# svirt enforcement lab (npm run test:enforce): boots Debian's kernel under QEMU twice, once
# with SELinux enforcing (Debian's reference policy) and once with AppArmor, and runs
# svirt's enforcement tests (test/enforce) inside each. See docs/lab.md.
#
#   lab/run.sh [--only selinux|apparmor] [--serial] [--no-build] [--debug FILE] [--patch FILE]
#
#   --only     one of the two boots
#   --serial   one VM after the other (default: both at once, one vCPU thread each)
#   --no-build use the checkout's dist/ and native/out as they are
#   --debug    run FILE (sh, as the tests would run) in the VM instead of the tests; its
#              output is in $SVIRT_LAB_CACHE/runs/MODE/debug.out
#   --patch    run the tests against a copy of the build patched in the VM by the node
#              script FILE (`node FILE COPY` edits COPY/dist/...): proves a proposed fix
#              without touching the checkout. Tried on the host first (lab/check-patch.sh):
#              a patch that fails or changes nothing stops the run before any VM boots
# Env: SVIRT_LAB_CACHE (default /var/cache/svirt-lab), SVIRT_LAB_TIMEOUT (s per VM, 1500),
# SVIRT_LAB_ACCEL (tcg | kvm), SVIRT_LAB_MEM (MiB, 2048).
set -uo pipefail
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/lib.sh"

modes="selinux apparmor"
parallel=1
build=1
debug=
patch=
while [ $# -gt 0 ]; do
  case "$1" in
  --only)
    modes=$2
    shift
    ;;
  --serial) parallel=0 ;;
  --no-build) build=0 ;;
  --debug)
    debug=$(realpath "$2")
    shift
    ;;
  --patch)
    patch=$(realpath "$2")
    shift
    ;;
  *) lab_die "unknown argument $1 (see the head of lab/run.sh)" ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || lab_die "run as root (apt, the image build and the cache need it)"
[ "$(uname -m)" = x86_64 ] || lab_die "the lab needs an x86_64 host"
t0=$(lab_now_ms)

lab_phase "host packages"
lab_apt qemu-system-x86 qemu-utils e2fsprogs attr policycoreutils selinux-policy-default setools apparmor gzip

if [ "$build" = 1 ]; then
  lab_phase "svirt build (scripts/setup.sh)"
  mkdir -p "$LAB_CACHE"
  (cd "$REPO_DIR" && sh scripts/setup.sh) >"$LAB_CACHE/build.log" 2>&1 || {
    tail -n 30 "$LAB_CACHE/build.log" >&2
    lab_die "scripts/setup.sh (log: $LAB_CACHE/build.log)"
  }
fi
[ -x "$REPO_DIR/native/out/svirt-exec" ] || lab_die "no native/out/svirt-exec: build first"
[ -n "$debug" ] || ls "$REPO_DIR"/dist/test/enforce/*.test.js >/dev/null 2>&1 || lab_die "no dist/test/enforce/*.test.js: build first"
if [ -n "$patch" ]; then
  lab_phase "patch check"
  bash "$LAB_DIR/check-patch.sh" "$patch" || lab_die "--patch $patch"
fi

lab_phase "kernel + initramfs"
kdir=$(bash "$LAB_DIR/build-kernel.sh") || lab_die "build-kernel.sh"
lab_log "kernel $(cat "$kdir/version") in $kdir"
lab_phase "root image"
rootfs=$(bash "$LAB_DIR/build-rootfs.sh") || lab_die "build-rootfs.sh"
lab_log "root image $rootfs"
lab_phase "guest image"
guest=$(bash "$REPO_DIR/scripts/build-guest.sh") || lab_die "scripts/build-guest.sh"
lab_log "guest image $guest"
policy=
if [[ " $modes " == *" selinux "* ]]; then
  lab_phase "SELinux policies"
  policy=$(bash "$LAB_DIR/build-policy.sh") || lab_die "build-policy.sh"
  lab_log "policies in $policy"
fi

declare -A pids=() rc=()
boot_one() {
  local mode=$1
  bash "$LAB_DIR/boot.sh" "$mode" "$kdir" "$rootfs" "$policy" "$LAB_CACHE/runs/$mode" "$debug" "$patch" "$guest"
}
if [ "$parallel" = 1 ]; then
  lab_phase "VMs ($modes, in parallel)"
  for m in $modes; do
    boot_one "$m" &
    pids[$m]=$!
  done
  for m in $modes; do
    wait "${pids[$m]}"
    rc[$m]=$?
  done
else
  for m in $modes; do
    lab_phase "VM $m"
    boot_one "$m"
    rc[$m]=$?
  done
fi
lab_phase_end

failed=0
for m in $modes; do
  run=$LAB_CACHE/runs/$m
  printf '\n===== %s (%s) =====\n' "$m" "$run" >&2
  if [ -n "$debug" ]; then
    cat "$run/debug.out" >&2 2>/dev/null
  elif [ -f "$run/results.tap" ]; then
    # the summary node:test appends, and every failed test with its first diagnostic lines
    grep -E '^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ' "$run/results.tap" | sed 's/^/  /' >&2
    grep -nE '^ *not ok ' "$run/results.tap" | sed 's/^/  /' >&2
  else
    lab_log "$m: no results.tap"
  fi
  if [ "${rc[$m]}" != 0 ]; then
    lab_log "$m: FAILED (status ${rc[$m]})"
    failed=1
  else
    lab_log "$m: ok"
  fi
done
lab_print_timings
printf '  %-30s %7.1f s\n' total "$(awk -v ms=$(($(lab_now_ms) - t0)) 'BEGIN { print ms / 1000 }')" >&2
exit "$failed"
