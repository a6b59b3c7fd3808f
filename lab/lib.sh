# shellcheck shell=bash
# Shared helpers of the svirt enforcement lab (sourced by lab/*.sh).

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$LAB_DIR/.." && pwd)
# Built artifacts live outside the repo, keyed by their inputs.
LAB_CACHE=${SVIRT_LAB_CACHE:-/var/cache/svirt-lab}

lab_log() { printf 'lab: %s\n' "$*" >&2; }
lab_die() {
  printf 'lab: FAILED: %s\n' "$*" >&2
  exit 1
}

# sha256 of stdin, first 16 hex digits
lab_hash() { sha256sum | cut -c1-16; }

# lab_have PKG: whether the Debian package is installed
lab_have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# lab_apt PKG...: installs the missing ones (Debian packages only)
lab_apt() {
  local need=() p
  for p in "$@"; do lab_have "$p" || need+=("$p"); done
  [ ${#need[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || lab_die "missing Debian packages: ${need[*]} (run as root)"
  lab_log "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || lab_die "apt-get install ${need[*]}"
}

# Phase timing: lab_phase NAME starts one (ending the previous), lab_phase_end ends the last.
LAB_PHASE=""
LAB_PHASE_T0=0
LAB_TIMINGS=()
lab_now_ms() { date +%s%3N; }
lab_phase_end() {
  [ -n "$LAB_PHASE" ] || return 0
  local ms=$(($(lab_now_ms) - LAB_PHASE_T0))
  LAB_TIMINGS+=("$(awk -v n="$LAB_PHASE" -v ms="$ms" 'BEGIN { printf "%-30s %7.1f s", n, ms / 1000 }')")
  printf 'lab: phase %s: %d.%01d s\n' "$LAB_PHASE" $((ms / 1000)) $((ms % 1000 / 100)) >&2
  LAB_PHASE=""
}
lab_phase() {
  lab_phase_end
  LAB_PHASE=$1
  LAB_PHASE_T0=$(lab_now_ms)
  lab_log "phase $1"
}
lab_print_timings() {
  local t
  printf '\nlab: timings\n' >&2
  for t in "${LAB_TIMINGS[@]}"; do printf '  %s\n' "$t" >&2; done
}
