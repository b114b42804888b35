#!/usr/bin/env bash
# Builds promtool (Prometheus' rule checker and rule unit-test runner, for tests/monitoring.rs)
# from the Go module github.com/prometheus/prometheus into a cache outside the repo; a second
# run with the binary present does nothing. Prints the directory holding `promtool` on stdout
# (the only stdout line), everything else goes to stderr, like hack/helm/build.sh.
#
# go.mod/go.sum in this directory are committed (the one-time generation below made them), so a
# fresh machine only downloads the pinned modules from the Go module proxy and builds. The tag
# `remove_all_sd` leaves every service discovery plugin out (Prometheus builds its
# plugins/plugin_*.go only without it): checking and testing rules needs none of them.
set -euo pipefail
# shellcheck source=hack/go-tool.sh
. "$(dirname "$0")/../go-tool.sh"
PROMETHEUS=${PROMETHEUS_MODULE_VERSION:-0.316.0}
go_tool_cache promtool
go_tool_out promtool "v$PROMETHEUS"
go_tool_module promtool-bin "github.com/prometheus/prometheus/cmd/promtool@v$PROMETHEUS"
go_tool_build promtool "(module v$PROMETHEUS)" --version \
  github.com/prometheus/prometheus/cmd/promtool -tags remove_all_sd,netgo \
  -ldflags "-s -w -X github.com/prometheus/common/version.Version=v$PROMETHEUS"
