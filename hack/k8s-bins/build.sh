#!/usr/bin/env bash
# Builds Kubernetes binaries from the k8s.io/kubernetes Go module into a cache outside the repo;
# a binary already present is not built again.
#
#   hack/k8s-bins/build.sh          kube-apiserver and kubectl (the control plane of the tests)
#   hack/k8s-bins/build.sh --node   also kubelet, kube-controller-manager and kube-scheduler
#                                   (the local node of hack/node.sh), about 5 min each on 2 cores
#
# A binary of the tested version the machine already has ($KUBEBUILDER_ASSETS, as envtest uses
# it, or PATH) is linked into the cache instead (hack/reuse-binary.sh); then no Go toolchain is
# needed. Prints the directory of the binaries.
#
# K8S_VERSION picks another version (`make k8s-floor`: the chart's floor). The go.mod and go.sum
# committed here are those of the default version; another one gets a module of its own,
# generated once under the cache ($CACHE/k8s-bins/v<version>) with only the binaries asked for
# as tools (the module proxy may lack staging modules of an old release that others need).
set -euo pipefail
# shellcheck source=hack/reuse-binary.sh
. "$(dirname "$0")/../reuse-binary.sh"
# shellcheck source=hack/go-tool.sh
. "$(dirname "$0")/../go-tool.sh"
DEFAULT_K8S=1.37.2
K8S=${K8S_VERSION:-$DEFAULT_K8S}
STAGING=v0.${K8S#1.}
go_tool_cache k8s-bins
OUT=${OUT:-$CACHE/k8s/v$K8S}
BINS="kube-apiserver kubectl"
[ "${1:-}" = "--node" ] && BINS="$BINS kubelet kube-controller-manager kube-scheduler"
missing=""
for b in $BINS; do
  [ -x "$OUT/$b" ] || reuse_binary "$b" "v$K8S" "$OUT" || missing="$missing $b"
done
if [ -z "$missing" ]; then echo "$OUT"; exit 0; fi
# generate_module BIN...: go.mod and go.sum in the current directory, with
# k8s.io/kubernetes/cmd/BIN... as its tools; the replace list comes from the tag itself.
generate_module() {
  go mod init vpn-pbr-operator.invalid/k8s-bins >&2
  GOMOD=$(go mod download -json "k8s.io/kubernetes@v$K8S" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  for m in $(awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print $1}' "$GOMOD"); do
    go mod edit -replace="$m=$m@$STAGING"
  done
  local tools="" t
  for t in "$@"; do tools="$tools k8s.io/kubernetes/cmd/$t@v$K8S"; done
  # shellcheck disable=SC2086
  go get -tool $tools >&2
  go mod tidy >&2
}
if [ "$K8S" != "$DEFAULT_K8S" ]; then
  MODULE=$CACHE/k8s-bins/v$K8S
  if [ ! -f "$MODULE/go.sum" ]; then
    # Generated aside and moved in whole: an interrupted run leaves no half module behind.
    rm -rf "$MODULE.tmp"
    mkdir -p "$MODULE.tmp"
    # shellcheck disable=SC2086
    (cd "$MODULE.tmp" && generate_module $BINS)
    rm -rf "$MODULE"
    mv "$MODULE.tmp" "$MODULE"
  fi
  cd "$MODULE"
elif [ ! -f go.mod ]; then
  # One-time generation (committed afterwards).
  generate_module kube-apiserver kubectl kubelet kube-controller-manager kube-scheduler
fi
MINOR=$(echo "$K8S" | cut -d. -f2)
LD="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LD="$LD -X $p.gitVersion=v$K8S -X $p.gitMajor=1 -X $p.gitMinor=$MINOR -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
mkdir -p "$OUT"
for b in $missing; do
  start=$(date +%s)
  tags=""
  [ "$b" = kube-apiserver ] && tags="-tags selinux,notest"
  # shellcheck disable=SC2086
  go build -trimpath $tags -ldflags "$LD" -o "$OUT/$b.tmp" "k8s.io/kubernetes/cmd/$b"
  mv "$OUT/$b.tmp" "$OUT/$b"
  echo "built $b v$K8S in $(( $(date +%s) - start ))s" >&2
done
echo "$OUT"
