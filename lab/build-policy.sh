#!/bin/bash
# The SELinux policies the lab VM runs the tests under, built on the host from Debian's
# policy store with `semodule -p <copy>` (the host's own store and policy are not touched):
#   stock.33      Debian's reference policy as installed (selinux-policy-default)
#   lab-nonnp.33  + lab/selinux/*.cil but svirt-nnp.cil (no nnp_transition)
#   lab.33        + lab/selinux/*.cil (svirt-manager.cil: the manager's domain; svirt-launch.cil,
#                   svirt-nnp.cil: what it needs to start QEMU)
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
mapfile -t all < <(ls "$LAB_DIR"/selinux/*.cil)
mapfile -t nonnp < <(ls "$LAB_DIR"/selinux/*.cil | grep -v '/svirt-nnp\.cil$')
build lab-nonnp "${nonnp[@]}"
build lab "${all[@]}"
# the modules really are in: the manager's entry and nnp_transition only in the lab policies
sesearch "$work/out/lab.33" -A -s virtd_t -t svirt_t -c process2 2>/dev/null | grep -q nnp_transition ||
  lab_die "lab.33 lacks nnp_transition"
sesearch "$work/out/lab.33" -T -s unconfined_t -t virtd_exec_t 2>/dev/null | grep -q virtd_t ||
  lab_die "lab.33 lacks the manager's entry (unconfined_t -> virtd_t)"

rm -rf "$out"
mv "$work/out" "$out"
find "$LAB_CACHE" -maxdepth 1 -name 'policy-*' ! -path "$out" -exec rm -rf {} +
echo "$out"
