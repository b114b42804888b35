#!/usr/bin/env bash
# The CustomResourceDefinitions of the Prometheus Operator's ServiceMonitor and PrometheusRule
# (monitoring.coreos.com/v1) of its release v0.95.2, into a cache outside the repo, for
# tests/e2e.rs (it applies them and has the chart create its monitoring objects against them); a
# second run with both files present does nothing. Prints the directory holding them on stdout
# (the only stdout line), everything else goes to stderr, like hack/helm/build.sh.
#
# The Go module proxy serves that release's API types, the module
# github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring, but not its root module
# (whose example/prometheus-operator-crd/ holds the generated CRDs). So the CRDs are generated
# here from those types the way the Prometheus Operator's own `make generate-crds` makes that
# directory: `controller-gen crd:crdVersions=v1 paths=./v1/.` in the types' module directory
# (controller-gen from hack/controller-gen/build.sh). `go mod download` checks the module against
# the checksum database; the sum below pins it, and the module's own go.sum pins what its types
# use.
set -euo pipefail
# shellcheck source=hack/go-tool.sh
. "$(dirname "$0")/../go-tool.sh"
VERSION=0.95.2
MODULE=github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring
MODULE_SUM=h1:DQKGQhE39ua9V+ZCro38z32jP8nAtIZ27f3qdAorXHg=
FILES=(monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml)
CONTROLLER_GEN=$("$(dirname "$0")/../controller-gen/build.sh")/controller-gen
go_tool_cache prometheus-crds
OUT=$CACHE/prometheus-crds/v$VERSION
present=1
for f in "${FILES[@]}"; do
  [ -s "$OUT/$f" ] || present=0
done
if [ "$present" = 1 ]; then
  echo "$OUT"
  exit 0
fi
# No go.mod here: `go mod download` of one module@version needs none.
json=$(GOFLAGS= go mod download -json "$MODULE@v$VERSION")
field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}$/\1/p" <<<"$json"; }
dir=$(field Dir)
sum=$(field Sum)
if [ "$sum" != "$MODULE_SUM" ] || [ ! -d "$dir" ]; then
  echo "$MODULE@v$VERSION: sum ${sum:-none}, expected $MODULE_SUM (dir ${dir:-none})" >&2
  exit 1
fi
start=$(date +%s)
tmp=$(mktemp -d "$CACHE/prometheus-crds.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# The module's directory is read-only: its go.mod and go.sum are used as they are.
(cd "$dir" && GOFLAGS=-mod=readonly "$CONTROLLER_GEN" crd:crdVersions=v1 paths=./v1/. \
  "output:crd:dir=$tmp")
mkdir -p "$OUT"
for f in "${FILES[@]}"; do
  mv "$tmp/$f" "$OUT/$f"
done
echo "generated ${FILES[*]} (v$VERSION) in $(( $(date +%s) - start ))s" >&2
echo "$OUT"
