#!/bin/sh
# Installs what svirt needs on a Debian 12 host (as root), then builds it. Idempotent:
# packages already present are not touched, and a second run only rebuilds.
set -eu
cd "$(dirname "$0")/.."

need=""
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# qemu-system-x86 + qemu-utils: the hypervisor and qemu-img; gcc + libc6-dev: the native helpers;
# libsqlite3-dev: svirt-cleanup, the monitor's hook in C, reads and writes the store;
# iproute2 + nftables + dnsmasq-base + passt: bridges and taps, network objects (NAT rules, DHCP) and user NICs;
# apparmor: apparmor_parser for the AppArmor driver's compile checks; selinux-policy-default +
# python3-selinux: the reference policy for offline SELinux access decisions; attr: getfattr for humans;
# busybox-static + qemu-guest-agent: the real guest image of the boot tests (scripts/build-guest.sh);
# ovmf: UEFI firmware and its descriptors (<os firmware='efi'>, pflash + nvram); util-linux: losetup (block disk tests).
# swtpm + swtpm-tools: the TPM emulator and swtpm_setup of <tpm> devices (virtiofsd comes with qemu-system-common).
# chromium: the report test opens svirt report's page headless and keeps a screenshot.
# virt-manager + xvfb + xdotool: the virt-manager acceptance test (a real window under Xvfb, keys typed into its console).
# virtinst, libvirt-dbus + dbus-daemon, ansible (community.libvirt) + python3-lxml: the drop-in tests drive them (docs/storage.md).
# openssh-server + netcat-openbsd + gnutls-bin: the qemu+ssh and qemu+tls tests (a private sshd in a test namespace;
# `nc -U` is libvirt's remote helper when virt-ssh-helper is absent; certtool makes the test certificates).
# strace: the durability tests watch which writes and syncs reach the store's WAL.
for p in qemu-system-x86 qemu-utils gcc libc6-dev libsqlite3-dev make python3 apparmor selinux-policy-default python3-selinux attr libvirt-clients python3-libvirt busybox-static qemu-guest-agent ovmf util-linux swtpm swtpm-tools iproute2 nftables dnsmasq-base passt chromium virtinst libvirt-dbus dbus-daemon ansible python3-lxml virt-manager xvfb xdotool openssh-server netcat-openbsd gnutls-bin strace; do
  have "$p" || need="$need $p"
done
if [ -n "$need" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages:$need (run this script as root to install them)" >&2
    exit 1
  fi
  echo "setup: installing$need"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $need >/dev/null
  # The tests run their own sshd inside a namespace; a host sshd that the package just started is not wanted.
  case " $need " in
    *" openssh-server "*) command -v systemctl >/dev/null && systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true ;;
  esac
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run -s build
echo "setup: ok"
