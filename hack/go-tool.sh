# Sourced by the hack/*/build.sh scripts that build a tool from its Go module into the cache
# outside the repo (hack/etcd, hack/helm, hack/k8s-bins, hack/promtool).
#
#   go_tool_cache LOCK    sets CACHE, Go's build environment (the local toolchain, static
#                         binaries, go.mod as the directory has it) and takes $CACHE/LOCK.lock on
#                         fd 8: one build at a time per cache (concurrent runs wait, then find the
#                         binary present); then works in the calling script's directory.
#   go_tool_out BIN VERSION
#                         sets OUT (default $CACHE/BIN/VERSION); when $OUT/BIN is already built,
#                         prints $OUT and ends the script.
#   go_tool_module NAME TOOL@VERSION...
#                         the one-time go.mod of that directory (committed afterwards), with the
#                         tools as its tool dependencies.
#   go_tool_build BIN LABEL VERSION_ARG PACKAGE [GO BUILD FLAGS...]
#                         builds PACKAGE into $OUT/BIN (through BIN.tmp), says on stderr how long
#                         "BIN LABEL" took and what `BIN VERSION_ARG` answers, prints $OUT.
go_tool_cache() {
  CACHE=${VPN_PBR_CACHE:-$HOME/.cache/vpn-pbr-operator}
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
  mkdir -p "$CACHE"
  exec 8>"$CACHE/$1.lock"
  flock 8
  cd "$(dirname "$0")"
}

go_tool_out() {
  OUT=${OUT:-$CACHE/$1/$2}
  if [ -x "$OUT/$1" ]; then
    echo "$OUT"
    exit 0
  fi
}

go_tool_module() {
  local name=$1
  shift
  [ -f go.mod ] && return 0
  go mod init "vpn-pbr-operator.invalid/$name" >&2
  go get -tool "$@" >&2
  go mod tidy >&2
}

go_tool_build() {
  local bin=$1 label=$2 version_arg=$3 package=$4 start
  shift 4
  mkdir -p "$OUT"
  start=$(date +%s)
  go build -trimpath "$@" -o "$OUT/$bin.tmp" "$package"
  mv "$OUT/$bin.tmp" "$OUT/$bin"
  echo "built $bin $label in $(( $(date +%s) - start ))s" >&2
  "$OUT/$bin" "$version_arg" >&2
  echo "$OUT"
}
