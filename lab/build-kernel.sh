#!/bin/bash
# Debian's kernel and a busybox initramfs for the lab, from Debian packages fetched with
# `apt-get download` and unpacked into the cache (the host's /boot and /lib/modules are not
# touched). Prints the directory holding vmlinuz and initrd.img.
#   out: $LAB_CACHE/kernel-<key>/{vmlinuz,initrd.img,version}
set -euo pipefail
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/lib.sh"

# Modules the initramfs loads, in order (dependencies are resolved with modules.dep):
# virtio transport and disk, ext4 (+crc32c for metadata checksums), 9p over virtio for the
# read-only checkout, virtio-rng so getrandom() does not wait on a quiet TCG machine; bridge
# and veth for the many-hosts tests' namespaced LAN (test/support/hosts.ts).
MODULES="virtio_pci virtio_blk crc32c_generic ext4 9pnet_virtio 9p virtio_rng bridge veth"

meta=${SVIRT_LAB_KERNEL_PACKAGE:-linux-image-amd64}
image_pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
[ -n "$image_pkg" ] || {
  apt-get update -qq >/dev/null
  image_pkg=$(apt-cache depends "$meta" | awk '/Depends: linux-image-/ { print $2; exit }')
}
[ -n "$image_pkg" ] || lab_die "cannot resolve $meta to a kernel image package"
kver_pkg=$(apt-cache policy "$image_pkg" | awk '/Candidate:/ { print $2 }')
bb_ver=$(apt-cache policy busybox-static | awk '/Candidate:/ { print $2 }')
key=$({
  echo "$image_pkg $kver_pkg busybox-static $bb_ver $MODULES"
  cat "$LAB_DIR/guest/initramfs-init" "$0"
} | lab_hash)
out=$LAB_CACHE/kernel-$key
if [ -f "$out/initrd.img" ] && [ -f "$out/vmlinuz" ]; then
  echo "$out"
  exit 0
fi

mkdir -p "$LAB_CACHE/debs"
work=$(mktemp -d "$LAB_CACHE/.kernel-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
(cd "$LAB_CACHE/debs" && apt-get download "$image_pkg" busybox-static >/dev/null 2>&1) ||
  (apt-get update -qq >/dev/null && cd "$LAB_CACHE/debs" && apt-get download "$image_pkg" busybox-static >/dev/null) ||
  lab_die "apt-get download $image_pkg busybox-static"
kdeb=$(ls -t "$LAB_CACHE"/debs/"${image_pkg}"_*.deb | head -1)
bdeb=$(ls -t "$LAB_CACHE"/debs/busybox-static_*.deb | head -1)
# packages of earlier versions are of no use any more
find "$LAB_CACHE/debs" -name '*.deb' ! -path "$kdeb" ! -path "$bdeb" -delete
dpkg-deb -x "$kdeb" "$work/k"
dpkg-deb -x "$bdeb" "$work/bb"
kver=$(ls "$work/k/lib/modules")
bb=$work/bb/bin/busybox
"$bb" depmod -b "$work/k" "$kver"

# initramfs tree
r=$work/initramfs
mkdir -p "$r"/{bin,dev,proc,sys,newroot,lib/modules/"$kver"}
cp "$bb" "$r/bin/busybox"
cp "$LAB_DIR/guest/initramfs-init" "$r/init"
chmod 755 "$r/init" "$r/bin/busybox"
moddir=$work/k/lib/modules/$kver
: >"$r/modules.list"
declare -A seen=()
for m in $MODULES; do
  # file names mix - and _ (virtio-rng.ko): match either
  line=$(grep -E "/${m//_/[-_]}\.ko:" "$moddir/modules.dep") || lab_die "module $m not in $kver"
  # the module and its dependencies (modules.dep lists them after the colon)
  for f in ${line%%:*} ${line#*:}; do
    [ -n "${seen[$f]:-}" ] && continue
    seen[$f]=1
    mkdir -p "$r/lib/modules/$kver/$(dirname "$f")"
    cp "$moddir/$f" "$r/lib/modules/$kver/$f"
  done
  echo "$m" >>"$r/modules.list"
done
cp "$moddir"/modules.{order,builtin} "$r/lib/modules/$kver/"
"$bb" depmod -b "$r" "$kver"
(cd "$r" && find . | "$bb" cpio -o -H newc 2>/dev/null | gzip -1) >"$work/initrd.img"

mkdir -p "$out.tmp"
cp "$work/k/boot/vmlinuz-$kver" "$out.tmp/vmlinuz"
cp "$work/initrd.img" "$out.tmp/initrd.img"
cp "$work/k/boot/config-$kver" "$out.tmp/config"
echo "$kver" >"$out.tmp/version"
rm -rf "$out"
mv "$out.tmp" "$out"
find "$LAB_CACHE" -maxdepth 1 -name 'kernel-*' ! -path "$out" -exec rm -rf {} +
echo "$out"
