# Sourced by the hack/*/build.sh scripts that build a tool from its Go module into the cache
# outside the repo (hack/etcd, hack/helm, hack/k8s-bins).
#
#   go_tool_cache LOCK    sets CACHE, Go's build environment (the local toolchain, static
#                         binaries, go.mod as the directory has it) and takes $CACHE/LOCK.lock on
#                         fd 8: one build at a time per cache (concurrent runs wait, then find the
#                         binary present); then works in the calling script's directory.
#   go_tool_module NAME TOOL@VERSION...
#                         the one-time go.mod of that directory (committed afterwards), with the
#                         tools as its tool dependencies.
go_tool_cache() {
  CACHE=${VPN_PBR_CACHE:-$HOME/.cache/vpn-pbr-operator}
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
  mkdir -p "$CACHE"
  exec 8>"$CACHE/$1.lock"
  flock 8
  cd "$(dirname "$0")"
}

go_tool_module() {
  local name=$1
  shift
  [ -f go.mod ] && return 0
  go mod init "vpn-pbr-operator.invalid/$name" >&2
  go get -tool "$@" >&2
  go mod tidy >&2
}
