#!/usr/bin/env bash
# Regenerates docs/report.png, the README's picture of a job report: runs
# the job on the bundled sample (seed 42) and renders its
# _shardprep/report.html in headless Chromium (Debian package chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null 2>&1 || export PATH="$PATH:/usr/local/go/bin"
command -v chromium >/dev/null 2>&1 || { echo "report-screenshot: needs chromium (apt-get install chromium)" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/shardprep-shot.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/shardprep" ./cmd/shardprep
"$tmp/shardprep" run --seed 42 --job-name abalone-sample --output "$tmp/out" --quiet >/dev/null 2>&1
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
  --user-data-dir="$tmp/profile" --window-size=1000,2300 \
  --screenshot="$tmp/report.png" "file://$tmp/out/_shardprep/report.html" >/dev/null 2>&1
mkdir -p docs
mv "$tmp/report.png" docs/report.png
echo "report-screenshot: wrote docs/report.png"
