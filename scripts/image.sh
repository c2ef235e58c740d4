#!/usr/bin/env bash
# Builds the shardprep container image (container/Dockerfile) and prints
# its size.
#
#   scripts/image.sh            offline: static binary built here, then the
#                               image from it (no base image is pulled)
#   scripts/image.sh --source   the binary is built inside the golang image
#                               (needs registry access)
#
# Environment: IMAGE (tag, default localhost/shardprep:dev), ENGINE (podman
# or docker; default: podman if present), CA_BUNDLE (default
# /etc/ssl/certs/ca-certificates.crt), GO (default go).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
image=${IMAGE:-localhost/shardprep:dev}
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
go=${GO:-go}
engine=${ENGINE:-}
if [[ -z $engine ]]; then
	if command -v podman >/dev/null; then engine=podman
	elif command -v docker >/dev/null; then engine=docker
	else echo "image.sh: neither podman nor docker is installed (apt-get install podman)" >&2; exit 1
	fi
fi

# podman keeps each stage as an image unless told not to cache layers.
build_flags=()
[[ $(basename "$engine") == podman ]] && build_flags+=(--layers=false)

mode=prebuilt
case ${1:-} in
	"") ;;
	--source) mode=source ;;
	*) echo "usage: scripts/image.sh [--source]" >&2; exit 2 ;;
esac

if [[ $mode == source ]]; then
	"$engine" build "${build_flags[@]}" -f "$root/container/Dockerfile" -t "$image" "$root"
else
	[[ -r $ca ]] || { echo "image.sh: no CA bundle at $ca (apt-get install ca-certificates, or set CA_BUNDLE)" >&2; exit 1; }
	ctx=$(mktemp -d)
	trap 'rm -rf "$ctx"' EXIT
	mkdir -p "$ctx/etc/ssl/certs" "$ctx/tmp"
	chmod 1777 "$ctx/tmp"
	GO=$go "$root/scripts/build.sh" "$ctx/shardprep"
	cp "$ca" "$ctx/etc/ssl/certs/ca-certificates.crt"
	cp "$root/container/passwd" "$root/container/group" "$ctx/etc/"
	chmod 0644 "$ctx/etc/passwd" "$ctx/etc/group" "$ctx/etc/ssl/certs/ca-certificates.crt"
	"$engine" build "${build_flags[@]}" --target image-prebuilt -f "$root/container/Dockerfile" -t "$image" "$ctx"
fi

size=$("$engine" image inspect --format '{{.Size}}' "$image")
echo "image $image: $size bytes ($(( (size + 524288) / 1048576 )) MiB)"
