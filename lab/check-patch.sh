#!/bin/bash
# Tries a --patch script of lab/run.sh on a throw-away copy of the checkout's build (what
# lab/guest/stage2.sh patches inside the VM) and fails loudly when the patch no longer
# applies: the script fails, or the build comes out unchanged. lab/run.sh runs it before it
# boots anything; run it alone to see whether a proposed fix still fits the code.
#   lab/check-patch.sh PATCH_SCRIPT
# A patch script is `node PATCH_SCRIPT COPY`; it edits COPY/dist/... and must throw when the
# code it patches is not there.
set -euo pipefail
# shellcheck source=lab/lib.sh
. "$(dirname "$0")/lib.sh"

patch=${1:-}
[ -n "$patch" ] || lab_die "usage: lab/check-patch.sh PATCH_SCRIPT"
[ -f "$patch" ] || lab_die "no patch script $patch"
[ -d "$REPO_DIR/dist" ] || lab_die "no dist/ to patch: build first"
copy=$(mktemp -d)
trap 'rm -rf "$copy"' EXIT
cp -a "$REPO_DIR/dist" "$REPO_DIR/bin" "$REPO_DIR/package.json" "$copy/"
node "$patch" "$copy" >&2 || lab_die "the patch $patch does not apply to this build (it failed on a copy; see above)"
if diff -rq "$REPO_DIR/dist" "$copy/dist" >/dev/null && diff -rq "$REPO_DIR/bin" "$copy/bin" >/dev/null &&
  cmp -s "$REPO_DIR/package.json" "$copy/package.json"; then
  lab_die "the patch $patch changed nothing in the build: it no longer applies"
fi
lab_log "the patch $patch applies to this build"
