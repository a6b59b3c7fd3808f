#!/bin/sh
# Confines svirt's manager on this host (docs/confinement.md), for one or more svirt
# packages (ROOT: the directory holding bin/, dist/ and native/out/):
#   SELinux (when the kernel runs it): labels ROOT/native/out/svirt, the launcher,
#     virtd_exec_t, so executing it enters the manager's domain virtd_t (the policy module
#     policy/selinux/svirt.cil must be installed: semodule -i policy/selinux/svirt.cil),
#     svirt's own programs bin_t (what virtd_t may execute) and the native addons lib_t.
#   AppArmor (when the kernel runs it): writes /etc/apparmor.d/svirt-manager for these
#     paths (policy/apparmor/gen-manager-profile.mjs) and loads it in enforce mode.
# Then run svirt as ROOT/native/out/svirt (put it, or a symlink to it, on PATH as `svirt`).
#   sh policy/confine-install.sh [--state-dir D]... [--runtime-dir D]... [--image-dir D]... ROOT...
# Defaults: /var/lib/svirt, /run/svirt, /var/lib/svirt/images. chcon labels do not survive a
# full relabel: make them lasting with `semanage fcontext -a -t virtd_exec_t ROOT/native/out/svirt`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
opts=
while [ $# -gt 0 ]; do
  case "$1" in
  --state-dir | --runtime-dir | --image-dir)
    [ $# -ge 2 ] || { echo "confine-install: $1 needs a value" >&2; exit 2; }
    opts="$opts $1 $2"
    shift 2
    ;;
  --*) echo "confine-install: unknown option $1" >&2; exit 2 ;;
  *) break ;;
  esac
done
[ $# -gt 0 ] || { echo "usage: confine-install.sh [--state-dir D]... [--runtime-dir D]... [--image-dir D]... ROOT..." >&2; exit 2; }
roots=
for root in "$@"; do
  [ -x "$root/native/out/svirt" ] || { echo "confine-install: no launcher $root/native/out/svirt (npm run build)" >&2; exit 1; }
  roots="$roots --root $root"
done

if [ -e /sys/fs/selinux/enforce ]; then
  for root in "$@"; do
    chcon -t virtd_exec_t "$root/native/out/svirt"
    chcon -t bin_t "$root/native/out/svirt-exec" "$root/native/out/svirt-monitor" "$root/native/out/svirt-probe" \
      "$root/native/out/svirt-devfilter"
    # native addons are shared libraries: the manager maps them executable
    find "$root/native/out" "$root/node_modules" -name '*.node' -type f -exec chcon -t lib_t {} +
    echo "confine-install: $root/native/out/svirt is $(stat -c %C "$root/native/out/svirt")"
  done
fi
if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ]; then
  # shellcheck disable=SC2086 # word splitting of the collected options is intended
  node "$here/apparmor/gen-manager-profile.mjs" $roots $opts >/etc/apparmor.d/.svirt-manager.tmp
  mv /etc/apparmor.d/.svirt-manager.tmp /etc/apparmor.d/svirt-manager
  apparmor_parser --replace --skip-cache /etc/apparmor.d/svirt-manager
  echo "confine-install: AppArmor profile svirt-manager loaded (/etc/apparmor.d/svirt-manager)"
fi
