#!/usr/bin/env bash
# Builds controller-gen (the CRD generator of Kubernetes API types in Go, from the Go module
# sigs.k8s.io/controller-tools) into a cache outside the repo, for hack/prometheus-crds/build.sh;
# a second run with the binary present does nothing. Prints the directory holding
# `controller-gen` on stdout (the only stdout line), everything else goes to stderr, like
# hack/helm/build.sh.
#
# go.mod/go.sum in this directory are committed (the one-time generation below made them), so a
# fresh machine only downloads the pinned modules from the Go module proxy and builds.
set -euo pipefail
# shellcheck source=hack/go-tool.sh
. "$(dirname "$0")/../go-tool.sh"
CONTROLLER_TOOLS=${CONTROLLER_TOOLS_VERSION:-0.23.0}
go_tool_cache controller-gen
go_tool_out controller-gen "v$CONTROLLER_TOOLS"
go_tool_module controller-gen-bin "sigs.k8s.io/controller-tools/cmd/controller-gen@v$CONTROLLER_TOOLS"
go_tool_build controller-gen "v$CONTROLLER_TOOLS" --version \
  sigs.k8s.io/controller-tools/cmd/controller-gen -ldflags "-s -w"
