#!/usr/bin/env bash
# Builds the helm CLI from its Go module helm.sh/helm/v4 into a cache outside the repo; a second
# run with the binary present does nothing. Prints the directory holding `helm` on stdout (the
# only stdout line), everything else goes to stderr, like hack/k8s-bins/build.sh.
#
# go.mod/go.sum in this directory are committed, so CI only downloads the pinned modules from
# the Go module proxy and builds. Helm v4 derives the default Kubernetes version that
# `helm template`/`helm lint` assume from the client-go version in its build info, so no
# ldflags are needed for that; the -X flags below only stamp `helm version`.
set -euo pipefail
# shellcheck source=hack/go-tool.sh
. "$(dirname "$0")/../go-tool.sh"
HELM=${HELM_VERSION:-4.3.1}
go_tool_cache helm
OUT=${OUT:-$CACHE/helm/v$HELM}
if [ -x "$OUT/helm" ]; then echo "$OUT"; exit 0; fi
go_tool_module helm-bin "helm.sh/helm/v4/cmd/helm@v$HELM"
LD="-s -w -X helm.sh/helm/v4/internal/version.version=v$HELM -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
mkdir -p "$OUT"
start=$(date +%s)
go build -trimpath -ldflags "$LD" -o "$OUT/helm.tmp" helm.sh/helm/v4/cmd/helm
mv "$OUT/helm.tmp" "$OUT/helm"
echo "built helm v$HELM in $(( $(date +%s) - start ))s" >&2
"$OUT/helm" version >&2
echo "$OUT"
