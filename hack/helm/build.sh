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
go_tool_out helm "v$HELM"
go_tool_module helm-bin "helm.sh/helm/v4/cmd/helm@v$HELM"
LD="-s -w -X helm.sh/helm/v4/internal/version.version=v$HELM -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
go_tool_build helm "v$HELM" version helm.sh/helm/v4/cmd/helm -ldflags "$LD"
