# Sourced by a hack/*/build.sh that builds a Go program into the tool cache (hack/promtool):
# the cache, the Go settings of a static build from pinned modules, one build at a time.
#
#   go_bin_begin NAME   exports the Go settings, takes the cache's lock NAME.lock (concurrent
#                       runs wait, then find the binary present) and enters the calling
#                       script's directory (its go.mod)
CACHE=${VPN_PBR_CACHE:-$HOME/.cache/vpn-pbr-operator}
go_bin_begin() {
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
  mkdir -p "$CACHE"
  exec 8>"$CACHE/$1.lock"
  flock 8
  cd "$(dirname "$0")"
}
