#!/usr/bin/env bash
# Runs shardprep's tests against a real MinIO: builds minio and mc once (cached in
# ${SHARDPREP_CACHE:-~/.cache/shardprep}/bin), starts a private MinIO, runs
# `go vet` and `go test -count=1`, and always stops MinIO again.
#
#   scripts/test.sh                      all packages
#   scripts/test.sh -run Conformance     all packages, extra go test flags
#   scripts/test.sh ./storage/... -v     only these packages (first argument not a flag)
#
# Exits with the status of go vet / go test.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"

if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  pkgs=()
  while [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; do pkgs+=("$1"); shift; done
else
  pkgs=(./...)
fi

scripts/minio.sh install
state=$(mktemp -d "${TMPDIR:-/tmp}/shardprep-test.XXXXXX")
trap 'scripts/minio.sh stop "$state/minio.env" || true; rm -rf "$state"' EXIT
scripts/minio.sh start "$state/minio.env"
# shellcheck source=/dev/null
source "$state/minio.env"

go vet "${pkgs[@]}"
status=0
# The command tests run real processes and builds; on a busy machine they
# outlast go test's default 10 minutes.
go test -count=1 -timeout 30m "${pkgs[@]}" "$@" || status=$?
exit "$status"
