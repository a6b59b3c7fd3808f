#!/bin/bash
# The SELinux policies the lab VM runs the tests under, built on the host from Debian's
# policy store with `semodule -p <copy>` (the host's own store and policy are not touched):
#   stock.33      Debian's reference policy as installed (selinux-policy-default)
#   lab-nonnp.33  + lab/selinux/svirt-launch.cil (no nnp_transition)
#   lab.33        + lab/selinux/svirt-launch.cil + lab/selinux/svirt-nnp.cil
# Prints the directory. out: $LAB_CACHE/policy-<key>/
set -euo pipefail
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/lib.sh"

lab_apt selinux-policy-default policycoreutils setools
policy=/etc/selinux/default/policy/policy.33
key=$({
  sha256sum "$policy"
  cat "$0" "$LAB_DIR"/selinux/*.cil
} | lab_hash)
out=$LAB_CACHE/policy-$key
if [ -f "$out/lab.33" ]; then
  echo "$out"
  exit 0
fi
work=$(mktemp -d "$LAB_CACHE/.policy-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/out"
cp "$policy" "$work/out/stock.33"

# build NAME CIL...: the stock store plus these modules, compiled into $work/out/NAME.33
build() {
  local name=$1 root=$work/$1
  shift
  mkdir -p "$root/etc" "$root/var/lib"
  cp -a /etc/selinux "$root/etc/"
  cp -a /var/lib/selinux "$root/var/lib/"
  # users of the store's seusers that this host lacks are reported, not fatal
  semodule -n -p "$root" "${@/#/-i}" 2>"$root.log" || {
    cat "$root.log" >&2
    lab_die "semodule -i $*"
  }
  cp "$root/etc/selinux/default/policy/policy.33" "$work/out/$name.33"
}
build lab-nonnp "$LAB_DIR/selinux/svirt-launch.cil"
build lab "$LAB_DIR/selinux/svirt-launch.cil" "$LAB_DIR/selinux/svirt-nnp.cil"
# the modules really are in: the transition only in the lab policies
sesearch "$work/out/lab.33" -A -s unconfined_t -t svirt_t -c process2 2>/dev/null | grep -q nnp_transition ||
  lab_die "lab.33 lacks nnp_transition"
rm -rf "$out"
mv "$work/out" "$out"
find "$LAB_CACHE" -maxdepth 1 -name 'policy-*' ! -path "$out" -exec rm -rf {} +
echo "$out"
