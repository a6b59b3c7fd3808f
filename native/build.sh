#!/bin/sh
# Builds svirt's native helpers from source into native/out/:
#   svirt-exec, svirt-monitor, svirt-devfilter, svirt-cleanup (programs; svirt-cleanup links
#   Debian's libsqlite3), svirt (svirt-launcher.c: the
#   manager's confined entry point, docs/confinement.md) and svirt_native.node (the N-API addon).
# Run from anywhere (npm run build:native). No downloads, no node-gyp.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out="$here/out"
CC=${CC:-cc}
CFLAGS="-O2 -Wall -Wextra -Werror -std=gnu11"

node_include() {
	for dir in /usr/include/node "$(dirname "$(dirname "$(command -v node)")")/include/node"; do
		if [ -f "$dir/node_api.h" ]; then
			echo "$dir"
			return 0
		fi
	done
	echo "build.sh: node_api.h not found (looked in /usr/include/node and next to node)" >&2
	return 1
}

mkdir -p "$out"
inc=$(node_include)

# Each target is built to a temporary name and renamed, so a failed build never leaves a
# half-written binary where svirt looks for it.
build() {
	target=$1
	shift
	echo "cc -> native/out/$target"
	rm -f "$out/.$target.tmp"
	# explicit returns: set -e does not apply inside the `if !` below
	$CC $CFLAGS "$@" -o "$out/.$target.tmp" || return 1
	mv -f "$out/.$target.tmp" "$out/$target" || return 1
}

cd "$here"
# svirt-exec runs the helpers (passt, dnsmasq, swtpm, virtiofsd): static, it starts ~0.5 ms
# sooner (no ld.so, half the page faults). It uses no NSS. QEMU itself is confined by the
# monitor's child with the same code (confine.c), one exec fewer on every start.
if ! build svirt-exec -static svirt-exec.c confine.c spec.c json.c 2>/dev/null; then
	echo "build.sh: static link failed, building svirt-exec dynamically" >&2
	build svirt-exec svirt-exec.c confine.c spec.c json.c
fi
build svirt-probe svirt-probe.c
build svirt-devfilter svirt-devfilter.c devfilter.c
# The node the launcher execs is fixed here: the one the addon is built for.
node_bin=$(readlink -f "$(command -v node)")
build svirt svirt-launcher.c -DSVIRT_NODE="\"$node_bin\""
# Static when libc.a is there: the monitor lives as long as its guest, so its resident
# size matters (about 0.7 MB static, 1.2 MB dynamic).
monitor_src="svirt-monitor.c confine.c spec.c json.c"
# shellcheck disable=SC2086
if ! build svirt-monitor -static $monitor_src 2>/dev/null; then
	echo "build.sh: static link failed, building svirt-monitor dynamically" >&2
	# shellcheck disable=SC2086
	build svirt-monitor $monitor_src
fi
# svirt-cleanup (the monitor's hook for plain guests) is static for the same start-up reason as
# the monitor: no dynamic loading of libsqlite3 on the path from QEMU's exit to its cleanup.
# (The linker's warning about sqlite's dlopen is for extensions, which svirt-cleanup never loads.)
cleanup_src="svirt-cleanup.c cleanup-fs.c json.c open-path.c proc-stat.c"
# shellcheck disable=SC2086
if ! build svirt-cleanup -static $cleanup_src -lsqlite3 -lm 2>/dev/null; then
	echo "build.sh: static link failed, building svirt-cleanup dynamically" >&2
	# shellcheck disable=SC2086
	build svirt-cleanup $cleanup_src -lsqlite3
fi
build svirt_native.node -shared -fPIC -I"$inc" svirt-native.c open-path.c open-as.c access.c devfilter.c spawn.c map-file.c proc-stat.c fd-watch.c store-ext.c -pthread
echo "native helpers built in $out"
