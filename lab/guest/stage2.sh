#!/bin/sh
# svirt lab, stage 2: run by PID 1 (lab/guest/init) from the read-only checkout at /opt/svirt.
# Finishes the system set-up, runs the enforcement tests (dist/test/enforce) as an
# administrator would run svirt, writes the node:test report into the run folder (/mnt,
# shared with the host) and powers the VM off. Under SELinux this runs as initrc_t and the
# tests as unconfined_t (a root login's domain on Debian).
export PATH=/usr/sbin:/usr/bin HOME=/root LANG=C.UTF-8 TMPDIR=/tmp
MODE=$(sed -n 's/.*svirt_lab=\([a-z]*\).*/\1/p' /proc/cmdline)
say() { echo "svirt-lab: $*"; }
finish() {
  echo "$1" >/mnt/exit-code
  $RUN /bin/sh -c dmesg >/mnt/dmesg.txt 2>&1
  sync
  say "uptime $(cut -d' ' -f1 /proc/uptime) s, powering off (exit $1)"
  echo o >/proc/sysrq-trigger
  sleep 600
}
fail() {
  say "FATAL: $*"
  echo "$*" >/mnt/fatal
  finish 125
}

mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run || fail "mount /run"
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts || fail "mount /dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm || fail "mount /dev/shm"
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
# cgroup v2, as a systemd host has it: svirt makes a cgroup per guest (docs/cgroups.md)
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || fail "mount /sys/fs/cgroup"
echo svirt-lab-"$MODE" >/proc/sys/kernel/hostname
# No auditd: AVC and AppArmor records go to the kernel log through printk, which drops
# them beyond 10 per 5 s unless the rate limit is off. The tests read them there.
echo 0 >/proc/sys/kernel/printk_ratelimit
cd /opt/svirt || fail "no checkout"

case "$MODE" in
selinux)
  restorecon -R /run /dev /tmp
  [ "$(getenforce)" = Enforcing ] || fail "SELinux is not enforcing: $(getenforce)"
  # The policy the tests run under: Debian's reference policy plus lab/selinux/*.cil
  # (built on the host by lab/build-policy.sh); the stock one stays in /etc/selinux.
  if [ -f /mnt/policy/lab.33 ]; then
    # selinuxfs takes a policy in one write only
    dd if=/mnt/policy/lab.33 of=/sys/fs/selinux/load bs=16M iflag=fullblock status=none ||
      fail "load /mnt/policy/lab.33"
  fi
  # Two booleans an administrator must turn on (both off in Debian's policy):
  # virt_use_execmem: TCG guests need executable memory for their JIT (no svirt_tcg_t);
  # allow_execmem: node (svirt itself, V8's JIT) in unconfined_t needs execmem as well.
  setsebool virt_use_execmem=on allow_execmem=on || fail "setsebool virt_use_execmem=on allow_execmem=on"
  RUN="runcon unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023"
  say "SELinux $(getenforce), policy $(sestatus 2>/dev/null | sed -n 's/^Loaded policy name: *//p'), tests run as unconfined_t"
  ;;
apparmor)
  [ -d /sys/kernel/security/apparmor ] || fail "no AppArmor in the kernel (securityfs)"
  [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] || fail "AppArmor is not enabled"
  RUN=
  say "AppArmor enabled, $(wc -l </sys/kernel/security/apparmor/profiles) profiles loaded"
  ;;
*) fail "no svirt_lab=selinux|apparmor on the kernel command line" ;;
esac

export SVIRT_LAB="$MODE" SVIRT_LAB_POLICY_DIR=/mnt/policy
# The confined install the tests drive (docs/confinement.md): a copy of the checkout's build
# on the root image (9p carries no SELinux labels, and the AppArmor profile names the install
# path), labelled and profiled by scripts/confine-install.sh as an administrator would. svirt
# then runs as the manager (virtd_t / svirt-manager) whenever the tests start it through
# the launcher, $SVIRT_LAB_ENTRY. The tests themselves run from the checkout.
INSTALL=/usr/local/lib/svirt
copy_build() {
  mkdir -p "$1/native" "$1/node_modules" || return 1
  cp -a /opt/svirt/dist /opt/svirt/bin /opt/svirt/package.json "$1/" &&
    cp -a /opt/svirt/native/out "$1/native/" &&
    cp -a /opt/svirt/node_modules/better-sqlite3 /opt/svirt/node_modules/bindings \
      /opt/svirt/node_modules/file-uri-to-path "$1/node_modules/"
}
copy_build "$INSTALL" || fail "copy the build to $INSTALL"
if [ -f /mnt/patch.mjs ]; then
  # lab/run.sh --patch: the tests run against a patched copy of the build (a proposed fix)
  node /mnt/patch.mjs "$INSTALL" || fail "the patch failed"
fi
# The hostile-request test's build: the same, with the image-entrypoint check (issue 15)
# taken out by lab/test-build.mjs, so the request reaches the manager's own confinement.
copy_build "$INSTALL-test" || fail "copy the build to $INSTALL-test"
node /opt/svirt/lab/test-build.mjs "$INSTALL-test" >/mnt/test-build.txt 2>&1 || fail "lab/test-build.mjs: $(cat /mnt/test-build.txt)"
sh /opt/svirt/policy/confine-install.sh --state-dir /tmp --image-dir /tmp "$INSTALL" "$INSTALL-test" ||
  fail "scripts/confine-install.sh"
export SVIRT_LAB_ENTRY=$INSTALL/native/out/svirt SVIRT_LAB_TEST_ENTRY=$INSTALL-test/native/out/svirt
if [ -f /mnt/debug.sh ]; then
  # a developer's experiment instead of the tests (lab/run.sh --debug FILE)
  $RUN /bin/sh /mnt/debug.sh >/mnt/debug.out 2>&1
  finish $?
fi
set --
for f in dist/test/enforce/*.test.js; do [ -f "$f" ] && set -- "$@" "$f"; done
[ $# -gt 0 ] || fail "no dist/test/enforce/*.test.js in the checkout (build first)"
say "running $*"
$RUN node --test --test-concurrency=1 \
  --test-reporter=tap --test-reporter-destination=/mnt/results.tap \
  --test-reporter=spec --test-reporter-destination=stdout "$@"
finish $?
