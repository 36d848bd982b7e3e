#!/usr/bin/env bash
# Builds the sluice image with podman, offline (FROM scratch: no base image
# is pulled): a static binary (CGO_ENABLED=0) stamped with the version,
# tagged localhost/sluice:<version> and localhost/sluice:latest.
#   bash deploy/build-image.sh
# Env: VERSION (default: git describe --tags --always --dirty),
# IMAGE (default localhost/sluice). Installs podman with apt-get if absent.
# Prints the image's name and size last.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v podman >/dev/null; then
  echo "build-image: podman is not installed; installing it (apt-get install podman)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman >/dev/null
fi
IMAGE=${IMAGE:-localhost/sluice}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
# An image tag allows [A-Za-z0-9_.-], at most 128 characters.
TAG=$(printf '%s' "$VERSION" | tr -c 'A-Za-z0-9_.-' '-' | cut -c1-128)

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$ctx/data" "$root/tmp" "$root/etc/ssl/certs"
chmod 1777 "$root/tmp"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X sluice/internal/version.stamp=$VERSION" \
  -o "$root/sluice" ./cmd/sluice
# The store: an empty /data owned by the gate's user (COPY --chown in the
# Containerfile; the directory is created by that COPY, not by rootfs/).
# The user the gate runs as, by name too (for ps and error messages).
echo 'sluice:x:65532:65532:sluice:/data:/sbin/nologin' >"$root/etc/passwd"
echo 'sluice:x:65532:' >"$root/etc/group"
# The CA bundle, for an https:// backend and a shop's JWKS.
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
else
  echo "build-image: no /etc/ssl/certs/ca-certificates.crt (apt-get install ca-certificates): the image will trust no CA" >&2
fi
cp deploy/Containerfile "$ctx/Containerfile"
# docker format: the OCI format has no HEALTHCHECK.
podman build --quiet --format docker --build-arg "VERSION=$VERSION" \
  -t "$IMAGE:$TAG" -t "$IMAGE:latest" -f "$ctx/Containerfile" "$ctx" >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$IMAGE:$TAG")
echo "built $IMAGE:$TAG (also $IMAGE:latest), $size bytes ($((size / 1024 / 1024)) MiB)"
