#!/usr/bin/env bash
# Builds the operator and emulator images from the repository's Dockerfile with buildah (no
# daemon, no image pulled): the static release binaries are compiled on the host first, then
# `buildah bud --build-arg BINARIES=prebuilt` runs the Dockerfile with a build context holding
# them (see the Dockerfile's header). Each image is written as a docker-archive tarball, ready for
# `ctr images import` (hack/node.sh) or `skopeo copy` to a registry.
#
#   hack/image/build.sh     prints the paths of the two tarballs, one per line
#
# Cached under $VPN_PBR_CACHE/image (default ~/.cache/vpn-pbr-operator/image): the cargo target
# directory of the static build, the build context and the tarballs. cargo rebuilds only what
# changed; buildah runs only when a binary or the Dockerfile changed. IMAGE_DIR moves the
# buildah state, the stamp and the tarballs elsewhere (hack/first-run.sh builds them again that
# way) while the static build stays in the cache.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${VPN_PBR_CACHE:-$HOME/.cache/vpn-pbr-operator}
DIR=${IMAGE_DIR:-$CACHE/image}
BUILD_TARGET=$CACHE/image/target
TAG=${IMAGE_TAG:-$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml")}
OPERATOR_IMAGE=vpn-pbr-operator:$TAG
EMULATOR_IMAGE=vpc-emulator:$TAG
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

"$ROOT/hack/debian-packages.sh" buildah binutils >&2
[ -s "$CA_BUNDLE" ] || { echo "no CA bundle at $CA_BUNDLE (Debian package ca-certificates; or set CA_BUNDLE)" >&2; exit 1; }

mkdir -p "$DIR/context"
triple=$(rustc -vV | sed -n 's/^host: //p')
start=$SECONDS
# --target keeps build scripts and proc macros dynamic (RUSTFLAGS apply to the target only).
(cd "$ROOT" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR="$BUILD_TARGET" \
  cargo build --release --locked --target "$triple" \
    -p vpn-pbr-operator --bin vpn-pbr-operator -p vpc-emulator --bin vpc-emulator >&2)
echo "static release binaries ($triple) ready in $((SECONDS - start))s" >&2
for b in vpn-pbr-operator vpc-emulator; do
  bin=$BUILD_TARGET/$triple/release/$b
  if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
    echo "$bin is dynamically linked; expected a static binary" >&2; exit 1
  fi
  cmp -s "$bin" "$DIR/context/$b" || install -m 0755 "$bin" "$DIR/context/$b"
done
cmp -s "$CA_BUNDLE" "$DIR/context/ca-certificates.crt" || install -m 0644 "$CA_BUNDLE" "$DIR/context/ca-certificates.crt"
echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' > "$DIR/context/passwd.new"
cmp -s "$DIR/context/passwd.new" "$DIR/context/passwd" && rm "$DIR/context/passwd.new" || mv "$DIR/context/passwd.new" "$DIR/context/passwd"

stamp=$( (cat "$ROOT/Dockerfile"; echo "$TAG"; sha256sum "$DIR"/context/*) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$DIR/images.stamp" 2>/dev/null)" = "$stamp" ] && [ -s "$DIR/vpn-pbr-operator.tar" ] && [ -s "$DIR/vpc-emulator.tar" ]; then
  echo "images unchanged: $OPERATOR_IMAGE, $EMULATOR_IMAGE" >&2
else
  start=$SECONDS
  # A private, daemonless image store under the cache (vfs needs no mounts); whatever else
  # buildah writes stays under the cache too (hack/image/buildah.sh).
  B=("$ROOT/hack/image/buildah.sh" "$DIR")
  for spec in "operator:$OPERATOR_IMAGE:vpn-pbr-operator" "emulator:$EMULATOR_IMAGE:vpc-emulator"; do
    target=${spec%%:*}; rest=${spec#*:}; image=${rest%:*}; file=${rest##*:}
    "${B[@]}" bud --quiet --layers=false --pull=never --build-arg BINARIES=prebuilt \
      --target "$target" -t "$image" -f "$ROOT/Dockerfile" "$DIR/context" >&2
    rm -f "$DIR/$file.tar"
    "${B[@]}" push --quiet "$image" "docker-archive:$DIR/$file.tar.tmp:$image" >&2
    mv "$DIR/$file.tar.tmp" "$DIR/$file.tar"
  done
  "${B[@]}" rmi --all --force >/dev/null 2>&1 || true
  echo "$stamp" > "$DIR/images.stamp"
  echo "built $OPERATOR_IMAGE and $EMULATOR_IMAGE from $ROOT/Dockerfile in $((SECONDS - start))s" >&2
fi
echo "$DIR/vpn-pbr-operator.tar"
echo "$DIR/vpc-emulator.tar"
