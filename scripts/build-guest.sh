#!/bin/bash
# The real guest image for svirt's boot tests: Debian's kernel and an initramfs that is the
# whole root filesystem, built from Debian packages (scripts/guest/init says what the guest
# does). Kernel and busybox come from `apt-get download` (the host's /boot and /lib/modules
# are not touched); qemu-ga is the host's qemu-guest-agent with its shared-library closure.
# Cached by its inputs; prints the directory holding vmlinuz and initrd.img.
#   out: ${SVIRT_GUEST_CACHE:-/var/cache/svirt-guest}/<key>/{vmlinuz,initrd.img,version,config}
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
guest=$here/guest
CACHE=${SVIRT_GUEST_CACHE:-/var/cache/svirt-guest}
# the enforcement lab's download cache: its kernel package is reused when it is the same
LAB_DEBS=${SVIRT_LAB_CACHE:-/var/cache/svirt-lab}/debs

log() { printf 'build-guest: %s\n' "$*" >&2; }
die() {
  printf 'build-guest: FAILED: %s\n' "$*" >&2
  exit 1
}
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
updated=
apt_update() {
  [ -n "$updated" ] && return 0
  apt-get update -qq >/dev/null || die "apt-get update"
  updated=1
}

for p in busybox-static qemu-guest-agent; do
  have "$p" && continue
  [ "$(id -u)" -eq 0 ] || die "missing Debian package $p (run as root to install it)"
  log "apt-get install $p"
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >/dev/null ||
    die "apt-get install $p"
done

meta=${SVIRT_GUEST_KERNEL_PACKAGE:-linux-image-amd64}
kernel_pkg() { apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }'; }
image_pkg=$(kernel_pkg)
[ -n "$image_pkg" ] || {
  apt_update
  image_pkg=$(kernel_pkg)
}
[ -n "$image_pkg" ] || die "cannot resolve $meta to a kernel image package"
kver_pkg=$(apt-cache policy "$image_pkg" | awk '/Candidate:/ { print $2 }')
bb_ver=$(dpkg-query -W -f='${Version}' busybox-static)
ga=/usr/sbin/qemu-ga
[ -x "$ga" ] || die "no $ga after installing qemu-guest-agent"
# qemu-ga's shared libraries (and the loader), as the host resolves them
libs=$(ldd "$ga" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[ -n "$libs" ] || die "ldd $ga named no libraries"
key=$({
  echo "$image_pkg $kver_pkg busybox-static $bb_ver"
  # shellcheck disable=SC2086
  sha256sum "$ga" $libs /bin/busybox
  cat "$0" "$guest"/*
} | sha256sum | cut -c1-16)
out=$CACHE/$key
built() { [ -f "$out/initrd.img" ] && [ -f "$out/vmlinuz" ]; }
if built; then
  echo "$out"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "no image for key $key in $CACHE; building one needs root"
# one build at a time (tests of several checkouts may ask at once); the winner's image serves all
mkdir -p "$CACHE/debs"
exec 9>"$CACHE/.lock"
flock -w 900 9 || die "another build holds $CACHE/.lock"
if built; then
  echo "$out"
  exit 0
fi
work=$(mktemp -d "$CACHE/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
kdeb=$(ls -t "$CACHE"/debs/"${image_pkg}_${kver_pkg//:/%3a}"_*.deb 2>/dev/null | head -1 || true)
if [ -z "$kdeb" ]; then
  lab=$(ls -t "$LAB_DEBS"/"${image_pkg}_${kver_pkg//:/%3a}"_*.deb 2>/dev/null | head -1 || true)
  if [ -n "$lab" ]; then
    cp "$lab" "$CACHE/debs/"
  else
    log "apt-get download $image_pkg"
    (cd "$CACHE/debs" && apt-get download "$image_pkg" >/dev/null 2>&1) ||
      (apt_update && cd "$CACHE/debs" && apt-get download "$image_pkg" >/dev/null) ||
      die "apt-get download $image_pkg"
  fi
  kdeb=$(ls -t "$CACHE"/debs/"${image_pkg}"_*.deb | head -1)
fi
# kernel packages of other versions are of no use any more
find "$CACHE/debs" -name '*.deb' ! -path "$kdeb" -delete
log "unpacking $(basename "$kdeb")"
dpkg-deb -x "$kdeb" "$work/k"
kver=$(ls "$work/k/lib/modules")
bb=/bin/busybox
"$bb" depmod -b "$work/k" "$kver"
moddir=$work/k/lib/modules/$kver

# the root filesystem
r=$work/root
mkdir -p "$r"/{bin,sbin,dev,proc,sys,run,tmp,root,var,etc/acpi/PWRF,etc/svirt-guest,usr/bin,usr/sbin,usr/share/udhcpc,lib64}
mkdir -p "$r/lib/modules/$kver"
chmod 1777 "$r/tmp"
chmod 700 "$r/root"
cp "$bb" "$r/bin/busybox"
install -m 755 "$guest/init" "$r/init"
install -m 755 "$guest/udhcpc.script" "$r/usr/share/udhcpc/default.script"
install -m 755 "$guest/shutdown" "$r/sbin/shutdown"
install -m 755 "$guest/net-up" "$r/sbin/net-up"
install -m 644 "$guest/mdev.conf" "$r/etc/mdev.conf"
install -m 644 "$guest/boot-modules" "$r/etc/svirt-guest/boot-modules"
printf '#!/bin/sh\nsync\nexec poweroff -f\n' >"$r/etc/acpi/PWRF/00000080"
chmod 755 "$r/etc/acpi/PWRF/00000080"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$r/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$r/etc/group"
printf 'PRETTY_NAME="svirt guest (Debian kernel %s, busybox)"\nNAME="svirt guest"\nID=svirt-guest\nID_LIKE=debian\nVERSION_ID=%s\n' \
  "$kver" "$key" >"$r/etc/os-release"
printf '127.0.0.1 localhost\n127.0.1.1 svirt-guest\n' >"$r/etc/hosts"
: >"$r/etc/resolv.conf"

# qemu-ga and its libraries, at the paths the host resolved them to
cp "$ga" "$r/usr/sbin/qemu-ga"
for l in $libs; do
  mkdir -p "$r$(dirname "$l")"
  cp -L "$l" "$r$l"
done

# modules and their dependencies (modules.dep lists them after the colon)
declare -A seen=()
while read -r m; do
  case "$m" in '' | '#'*) continue ;; esac
  # built in: nothing to copy
  grep -qE "/${m//_/[-_]}\.ko\$" "$moddir/modules.builtin" && continue
  # file names mix - and _ (virtio-rng.ko): match either
  line=$(grep -E "/${m//_/[-_]}\.ko:" "$moddir/modules.dep") || die "module $m not in $kver"
  for f in ${line%%:*} ${line#*:}; do
    [ -n "${seen[$f]:-}" ] && continue
    seen[$f]=1
    mkdir -p "$r/lib/modules/$kver/$(dirname "$f")"
    cp "$moddir/$f" "$r/lib/modules/$kver/$f"
  done
done <"$guest/modules"
cp "$moddir"/modules.{order,builtin} "$r/lib/modules/$kver/"
"$bb" depmod -b "$r" "$kver"
(cd "$r" && find . | LC_ALL=C sort | "$bb" cpio -o -H newc -R 0:0 2>/dev/null | gzip -6) >"$work/initrd.img"

mkdir -p "$work/out"
cp "$work/k/boot/vmlinuz-$kver" "$work/out/vmlinuz"
cp "$work/initrd.img" "$work/out/initrd.img"
cp "$work/k/boot/config-$kver" "$work/out/config"
echo "$kver" >"$work/out/version"
chmod 755 "$work/out"
chmod 644 "$work/out"/*
rm -rf "$out"
mv "$work/out" "$out"
# keep the three newest images (other checkouts may still use theirs), drop the rest
ls -1dt "$CACHE"/[0-9a-f]*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
log "built $out ($(du -k "$out/initrd.img" | cut -f1) KiB initrd, kernel $kver)"
echo "$out"
