#!/usr/bin/env bash
# Builds shardprep as the container image ships it: a static binary (cgo
# off: no dynamic loader and no libc to map at start-up, some 5 ms of a
# run on a small VM), without this machine's paths, its symbol table or
# DWARF.
#
#   scripts/build.sh [OUT [FLAGS...]]   writes OUT (default ./shardprep); FLAGS go
#                                       to go build (e.g. -tags shardprep_nostats)
#
# Environment: GO (default go).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"
go=${GO:-go}
out=${1:-shardprep}
shift || true
[[ $out == /* ]] || out=$PWD/$out
# The toolchain records the commit (vcs.revision) inside a git checkout;
# -X main.commit is the fallback "shardprep version" prints otherwise.
rev=$(git -C "$root" rev-parse HEAD 2>/dev/null || true)
cd "$root"
CGO_ENABLED=0 "$go" build -trimpath -ldflags "-s -w -X main.commit=$rev" "$@" -o "$out" ./cmd/shardprep
