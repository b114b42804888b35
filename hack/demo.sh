#!/usr/bin/env bash
# The local demo: the operator against vpc-emulator on a local control plane, with examples/.
#
#   hack/demo.sh up     (make demo)       build what is missing, start everything, apply the
#                                         examples, wait until they are Ready, show them; leaves
#                                         everything running. Running it again is harmless: what
#                                         runs is reused, what is missing is started.
#   hack/demo.sh down   (make demo-down)  stop the operator, the emulator and the control plane.
#
# Files: $DEMO_DIR (default ~/.cache/vpn-pbr-operator/demo): operator.log, emulator.log, pid
# files, the emulator URL and the metrics port. The control plane is `hack/cluster.sh`'s default
# one (~/.cache/vpn-pbr-operator/cluster, the same as `make cluster-up`); DEMO_CLUSTER_DIR
# overrides it.
#
# DEMO_CLUSTER=existing (make demo CLUSTER=existing): an existing cluster instead, the one
# KUBECONFIG names, by explicit opt-in only (the one case where the demo's traffic leaves
# loopback, because the user chose so). No control plane is started; the operator (a local
# process) watches only the namespace $DEMO_NAMESPACE (default vpn-pbr-demo), where the
# examples go. `up` refuses, before changing anything, when that namespace holds objects the
# demo did not make, when the cluster has the VpnPbrRoute CRD at other versions than crds/, or
# VpnPbrRoutes outside that namespace (another operator may be running). `down` removes only
# what the demo made: its routes (through the operator, so their emulator entries go too), the
# namespace and the CRD if the demo created them (the CRD only while no VpnPbrRoute is left).
#
# DEMO_BIN_DIR: take vpn-pbr-operator and vpc-emulator from there instead of building them.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${VPN_PBR_CACHE:-$HOME/.cache/vpn-pbr-operator}
DEMO_DIR=${DEMO_DIR:-$CACHE/demo}
CLUSTER_DIR=${DEMO_CLUSTER_DIR:-$CACHE/cluster}
CONFIG=$ROOT/deploy/emulator/config.example.yaml
BIN=${DEMO_BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/debug}
MODE=${DEMO_CLUSTER:-local}
NS=${DEMO_NAMESPACE:-vpn-pbr-demo}
CRD=vpnpbrroutes.vpn.alicloud.dev
# Every CRD of crds/ (the routes' and the accounts'): the operator needs them all.
CRDS=()
for f in "$ROOT"/crds/*.yaml; do CRDS+=("$(basename "$f" .yaml)"); done
# The label on everything the demo makes in an existing cluster.
MADE_BY=app.kubernetes.io/managed-by=vpn-pbr-demo
case $MODE in local|existing) ;; *) echo "DEMO_CLUSTER (make demo CLUSTER=...) is local or existing, not '$MODE'" >&2; exit 2 ;; esac
WAIT_TIMEOUT=${DEMO_WAIT_TIMEOUT:-90s}
# The route examples/observe-only.yaml observes: it exists "in the cloud" before the demo.
OBSERVED='{"VpnGatewayId":"vpn-demo-secondary","RouteSource":"172.17.0.0/16","RouteDest":"10.30.0.0/16","NextHop":"vco-demo-secondary-a","Weight":100}'

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# The first access key of the emulator config (the demo's "cloud account").
key_field() {
  awk -v want="$1" '/^access_keys:/{f=1;next} f&&/^[^ #]/{exit}
    f&&$1=="-"&&$2=="id:"&&want=="id"{print $3;exit} f&&$1=="secret:"&&want=="secret"{print $2;exit}' "$CONFIG"
}

# Stops the process in pid file $1: SIGTERM, up to $2 seconds, then SIGKILL.
stop_pid() {
  local file=$1 secs=$2 pid
  if alive "$file"; then
    pid=$(cat "$file")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq $((secs * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "  $(basename "$file" .pid) ($pid) did not stop in ${secs}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
}

# The kubeconfig the demo talks to: the user's (existing cluster) or the local plane's.
kubeconfig() {
  if [ "$MODE" = existing ]; then echo "$KUBECONFIG"; else echo "$CLUSTER_DIR/admin.kubeconfig"; fi
}

# The versions crds/ serves for CRD $1, space-separated (as `kubectl get crd` prints them below).
crd_versions_wanted() {
  grep -E '^ *(- )?name: v[0-9][a-z0-9]*$' "$ROOT/crds/$1.yaml" | awk '{print $NF}' | tr '\n' ' '
}

# Everything `up` checks on an existing cluster before changing anything.
existing_preflight() {
  : "${KUBECONFIG:?DEMO_CLUSTER=existing needs KUBECONFIG naming the cluster to use}"
  say "existing cluster (KUBECONFIG=$KUBECONFIG, context $(kubectl config current-context 2>/dev/null || echo '-')); namespace $NS"
  kubectl get --raw /version >/dev/null || { echo "cannot reach the cluster KUBECONFIG names" >&2; exit 1; }
  local problems=() have want others foreign crd
  for crd in "${CRDS[@]}"; do
    kubectl get crd "$crd" >/dev/null 2>&1 || continue
    have=$(kubectl get crd "$crd" -o jsonpath='{range .spec.versions[*]}{.name}{" "}{end}')
    want=$(crd_versions_wanted "$crd")
    [ "$have" = "$want" ] ||
      problems+=("the cluster has the CRD $crd at versions '${have% }', this demo's is at '${want% }'")
  done
  if kubectl get crd "$CRD" >/dev/null 2>&1; then
    others=$(kubectl get pbr -A --no-headers -o custom-columns=NS:.metadata.namespace,NAME:.metadata.name 2>/dev/null |
      awk -v ns="$NS" '$1 != ns {print "    " $1 "/" $2}')
    [ -z "$others" ] ||
      problems+=("VpnPbrRoutes exist outside namespace $NS (another operator may be running):"$'\n'"$others")
  fi
  if kubectl get namespace "$NS" >/dev/null 2>&1; then
    if [ "$(kubectl get namespace "$NS" -o jsonpath='{.metadata.labels.app\.kubernetes\.io/managed-by}')" != vpn-pbr-demo ]; then
      problems+=("namespace $NS exists and was not made by the demo (no label $MADE_BY)")
    fi
    # Objects the demo did not make: not labelled by it, and not what Kubernetes puts in every
    # namespace (the default ServiceAccount, the root CA ConfigMap, events).
    foreign=$(kubectl get -n "$NS" "$(kubectl api-resources --verbs=list --namespaced -o name |
        grep -v -e '^events' | paste -sd, -)" --ignore-not-found --no-headers \
        -o custom-columns='KIND:.kind,NAME:.metadata.name,BY:.metadata.labels.app\.kubernetes\.io/managed-by' 2>/dev/null |
      awk '$3 != "vpn-pbr-demo" && !($1 == "ServiceAccount" && $2 == "default") &&
           !($1 == "ConfigMap" && $2 == "kube-root-ca.crt") {print "    " $1 "/" $2}')
    [ -z "$foreign" ] || problems+=("namespace $NS holds objects the demo did not make:"$'\n'"$foreign")
  fi
  if [ ${#problems[@]} -gt 0 ]; then
    echo "refusing to start the demo on this cluster; nothing was changed:" >&2
    printf '  - %s\n' "${problems[@]}" >&2
    echo "choose another namespace with DEMO_NAMESPACE=..., or use the local demo (make demo)" >&2
    exit 1
  fi
}

# The namespace and the CRDs on an existing cluster, each made only when missing (and then
# recorded in $DEMO_DIR/existing.made, so `down` removes just those).
existing_objects() {
  if ! kubectl get namespace "$NS" >/dev/null 2>&1; then
    say "namespace $NS (made by the demo, labelled $MADE_BY)"
    kubectl create namespace "$NS"
    kubectl label namespace "$NS" "$MADE_BY"
    echo namespace >>"$DEMO_DIR/existing.made"
  fi
  local crd
  for crd in "${CRDS[@]}"; do
    if kubectl get crd "$crd" >/dev/null 2>&1; then
      say "CRD $crd present at the same versions: used as it is (the demo never removes it)"
    else
      say "CRD $crd (crds/, labelled $MADE_BY)"
      kubectl label --local -f "$ROOT/crds/$crd.yaml" -o json "$MADE_BY" | kubectl apply --server-side -f -
      echo "crd:$crd" >>"$DEMO_DIR/existing.made"
    fi
  done
}

# `down` on an existing cluster: the demo's routes (deleted through the operator, which removes
# their emulator entries), then the processes, then the namespace and the CRD if the demo made
# them. Nothing else is touched.
down_existing() {
  : "${KUBECONFIG:?the demo ran on an existing cluster: set KUBECONFIG to it for demo-down}"
  local made; made=$(cat "$DEMO_DIR/existing.made" 2>/dev/null || true)
  if kubectl get namespace "$NS" >/dev/null 2>&1 && kubectl get crd "$CRD" >/dev/null 2>&1; then
    say "deleting the demo's routes in $NS (the operator removes their entries)"
    if ! kubectl delete pbr -n "$NS" -l "$MADE_BY" --timeout=60s; then
      echo "  routes still deleting after 60 s: their finalizers are removed (the emulator goes away with the demo)"
      for r in $(kubectl get pbr -n "$NS" -l "$MADE_BY" -o name); do
        kubectl patch -n "$NS" "$r" --type merge -p '{"metadata":{"finalizers":null}}' || true
      done
    fi
  fi
  stop_pid "$DEMO_DIR/operator.pid" 30
  stop_pid "$DEMO_DIR/emulator.pid" 10
  if grep -qx namespace <<<"$made"; then
    say "deleting namespace $NS (made by the demo; the cluster finishes it in the background)"
    kubectl delete namespace "$NS" --ignore-not-found --wait=false
  fi
  local crd
  # `crd:<name>` per CRD the demo made (a bare `crd`: the routes' CRD, as older demos wrote).
  for crd in $(sed -n -e 's/^crd:\(.*\)$/\1/p' -e "s/^crd\$/$CRD/p" <<<"$made"); do
    # The CRD's objects, by `<plural>.<group>`, which is the CRD's name.
    if [ -z "$(kubectl get "$crd" -A --no-headers 2>/dev/null)" ]; then
      say "deleting CRD $crd (made by the demo; none of its objects is left)"
      kubectl delete crd "$crd" --ignore-not-found
    else
      echo "  CRD $crd kept: objects the demo did not make use it now"
    fi
  done
  rm -f "$DEMO_DIR/existing.made"
}

up() {
  local start=$SECONDS
  mkdir -p "$DEMO_DIR"
  local was; was=$(cat "$DEMO_DIR/mode" 2>/dev/null || echo "$MODE")
  if [ "$was" != "$MODE" ] && alive "$DEMO_DIR/operator.pid"; then
    echo "a demo on the $was cluster is running: make demo-down first" >&2; exit 1
  fi
  echo "$MODE" >"$DEMO_DIR/mode"
  # The Go tools and the Rust binaries build side by side: each leaves cores idle at its
  # serial steps (linking, the largest crates), so together they finish sooner on 2 cores.
  local t0=$SECONDS cargo_pid="" cargo_log="$DEMO_DIR/cargo-build.log"
  if [ -z "${DEMO_BIN_DIR:-}" ]; then
    (cd "$ROOT" && exec cargo build --locked -p vpn-pbr-operator --bin vpn-pbr-operator \
      -p vpc-emulator --bin vpc-emulator) >"$cargo_log" 2>&1 &
    cargo_pid=$!
  fi
  say "tools (hack/tools.sh --control-plane; built once into $CACHE, or reused from the machine)"
  # shellcheck disable=SC1090
  source <("$ROOT/hack/tools.sh" --control-plane --env)
  say "operator and emulator (cargo build --locked: vpn-pbr-operator, vpc-emulator; the debug build \`make test\` reuses)"
  if [ -z "$cargo_pid" ]; then
    echo "  taken from DEMO_BIN_DIR=$DEMO_BIN_DIR"
  elif ! wait "$cargo_pid"; then
    tail -20 "$cargo_log" >&2; echo "cargo build failed (log: $cargo_log)" >&2; exit 1
  else
    grep -v '^\s*Fresh ' "$cargo_log" | tail -3
  fi
  local built=$((SECONDS - t0))

  local api_after ns_args=() watch_args=()
  if [ "$MODE" = existing ]; then
    existing_preflight
    api_after=existing
    ns_args=(-n "$NS")
    watch_args=(--namespaces "$NS")
  else
    say "control plane (hack/cluster.sh up --dir $CLUSTER_DIR)"
    eval "$("$ROOT/hack/cluster.sh" up --dir "$CLUSTER_DIR" | tail -1)"
    api_after=$(cat "$CLUSTER_DIR/apiserver.pid")
  fi

  local key_id key_secret
  key_id=$(key_field id); key_secret=$(key_field secret)
  [ -n "$key_id" ] && [ -n "$key_secret" ] || { echo "no access key in $CONFIG" >&2; exit 1; }

  say "vpc-emulator ($CONFIG)"
  if alive "$DEMO_DIR/emulator.pid" && [ -s "$DEMO_DIR/emulator.url" ]; then
    echo "  already running: $(cat "$DEMO_DIR/emulator.url")"
  else
    rm -f "$DEMO_DIR/emulator.url" "$DEMO_DIR/emulator.out"
    setsid "$BIN/vpc-emulator" --listen 127.0.0.1:0 --config "$CONFIG" --log-format text \
      </dev/null >"$DEMO_DIR/emulator.out" 2>"$DEMO_DIR/emulator.log" &
    echo $! >"$DEMO_DIR/emulator.pid"
    for _ in $(seq 100); do grep -q '^listening on ' "$DEMO_DIR/emulator.out" 2>/dev/null && break; sleep 0.1; done
    grep -m1 '^listening on ' "$DEMO_DIR/emulator.out" | sed 's/^listening on //' >"$DEMO_DIR/emulator.url" || true
    [ -s "$DEMO_DIR/emulator.url" ] || { echo "vpc-emulator did not start; see $DEMO_DIR/emulator.log" >&2; tail -20 "$DEMO_DIR/emulator.log" >&2; exit 1; }
    echo "  listening on $(cat "$DEMO_DIR/emulator.url")"
  fi
  local url; url=$(cat "$DEMO_DIR/emulator.url")
  if curl -fsS "$url/_emulator/state" | python3 -c '
import json, sys
want = json.loads(sys.argv[1]); st = json.load(sys.stdin)
sys.exit(0 if any(g["VpnGatewayId"] == want["VpnGatewayId"] and any(all(e[k] == want[k] for k in ("RouteSource", "RouteDest", "NextHop")) for e in g["Entries"]) for g in st["gateways"]) else 1)' "$OBSERVED"; then
    echo "  the route examples/observe-only.yaml observes is already in the emulator"
  else
    curl -fsS -X POST -H 'Content-Type: application/json' -d "$OBSERVED" "$url/_emulator/entries/create" >/dev/null
    echo "  created the route examples/observe-only.yaml observes (as if made in the console)"
  fi

  if [ "$MODE" = existing ]; then
    existing_objects
  else
    say "CRD (kubectl apply --server-side -f crds/)"
    kubectl apply --server-side -f "$ROOT/crds/"
  fi
  kubectl wait --for=condition=Established --timeout=60s "${CRDS[@]/#/crd/}" >/dev/null

  say "operator (target/debug/vpn-pbr-operator --endpoint $url)"
  # Restarted when anything it depends on changed: emulator URL, control plane, binary.
  local stamp
  stamp="$url $api_after $(stat -c %Y "$BIN/vpn-pbr-operator")"
  if alive "$DEMO_DIR/operator.pid" && [ "$(cat "$DEMO_DIR/operator.stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "  already running (pid $(cat "$DEMO_DIR/operator.pid"))"
  else
    if alive "$DEMO_DIR/operator.pid"; then echo "  restarting (emulator, control plane or binary changed)"; fi
    stop_pid "$DEMO_DIR/operator.pid" 30
    local port; port=$(free_port)
    echo "$port" >"$DEMO_DIR/metrics.port"
    KUBECONFIG=$(kubeconfig) \
    ALIBABA_CLOUD_ACCESS_KEY_ID=$key_id ALIBABA_CLOUD_ACCESS_KEY_SECRET=$key_secret \
      setsid "$BIN/vpn-pbr-operator" --endpoint "$url" --log-format text \
      --metrics-addr "127.0.0.1:$port" --resync 1m "${watch_args[@]}" \
      </dev/null >>"$DEMO_DIR/operator.log" 2>&1 &
    echo $! >"$DEMO_DIR/operator.pid"
    echo "$stamp" >"$DEMO_DIR/operator.stamp"
    # /healthz, not /readyz: /readyz waits for the operator's own cache-sync signal.
    for _ in $(seq 150); do
      curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
      alive "$DEMO_DIR/operator.pid" || break
      sleep 0.2
    done
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 || {
      echo "the operator did not start; see $DEMO_DIR/operator.log" >&2; tail -20 "$DEMO_DIR/operator.log" >&2; exit 1; }
    echo "  running (pid $(cat "$DEMO_DIR/operator.pid"), metrics on 127.0.0.1:$port)"
  fi
  local port; port=$(cat "$DEMO_DIR/metrics.port")

  if [ "$MODE" = existing ]; then
    say "examples (into namespace $NS, labelled $MADE_BY; examples/invalid/ is not applied)"
    kubectl label --local -f "$ROOT/examples/" -o json "$MADE_BY" |
      kubectl apply --server-side -n "$NS" -f -
  else
    say "examples (kubectl apply -f examples/; examples/invalid/ is not applied)"
    kubectl apply --server-side -f "$ROOT/examples/"
  fi
  say "waiting until every route is Ready (timeout $WAIT_TIMEOUT)"
  if ! kubectl wait "${ns_args[@]}" --for=condition=Ready pbr --all --timeout="$WAIT_TIMEOUT"; then
    kubectl get "${ns_args[@]}" pbr -o wide || true
    echo "routes not Ready in time; operator log: $DEMO_DIR/operator.log" >&2
    tail -20 "$DEMO_DIR/operator.log" >&2
    exit 1
  fi

  say "kubectl get pbr -o wide"
  kubectl get "${ns_args[@]}" pbr -o wide
  say "recent events (kubectl get events --field-selector involvedObject.kind=VpnPbrRoute)"
  kubectl get "${ns_args[@]}" events --field-selector involvedObject.kind=VpnPbrRoute --sort-by=.metadata.creationTimestamp | tail -n 12
  sleep 2   # the route gauges refresh every 2 s
  say "metrics (curl http://127.0.0.1:$port/metrics | grep vpn_pbr_)"
  curl -fsS "http://127.0.0.1:$port/metrics" | grep '^vpn_pbr_' | grep -vE '_bucket|_sum|_count' | head -n 14 || true

  local ns_hint=""
  [ "$MODE" = existing ] && ns_hint="  kubectl config set-context --current --namespace $NS   # the demo's routes live there"$'\n'
  cat <<EOF

$(say "the demo is running (ready in $((SECONDS - start))s, of which ${built}s building tools and binaries)")
Look around:
  export KUBECONFIG=$(kubeconfig)
  export PATH=$KUBE_BIN_DIR:\$PATH
${ns_hint}  kubectl get pbr -o wide                       # routes, state, weight, Ready
  kubectl describe pbr office-to-app-active     # conditions, status, events
  kubectl patch pbr office-to-app-active --type merge -p '{"spec":{"priority":20}}'
  kubectl delete pbr datacenter-published       # removes the cloud entry too
  curl -s $url/_emulator/state | python3 -m json.tool    # the "cloud" (emulator admin API)
  curl -s http://127.0.0.1:$port/metrics | grep ^vpn_pbr_     # operator metrics
Logs:
  operator:  $DEMO_DIR/operator.log
  emulator:  $DEMO_DIR/emulator.log
$([ "$MODE" = local ] && echo "  apiserver: $CLUSTER_DIR/apiserver.log")
Stop everything: make demo-down$([ "$MODE" = existing ] && echo " CLUSTER=existing")
EOF
}

down() {
  # The cluster of the demo that ran, whatever DEMO_CLUSTER says now.
  MODE=$(cat "$DEMO_DIR/mode" 2>/dev/null || echo "$MODE")
  say "stopping the demo ($MODE cluster)"
  local pids=""
  for p in operator emulator; do [ -f "$DEMO_DIR/$p.pid" ] && pids="$pids $(cat "$DEMO_DIR/$p.pid")"; done
  if [ "$MODE" = local ]; then
    for p in apiserver etcd watchdog; do [ -f "$CLUSTER_DIR/$p.pid" ] && pids="$pids $(cat "$CLUSTER_DIR/$p.pid")"; done
  fi
  if [ "$MODE" = existing ]; then
    down_existing
  else
    stop_pid "$DEMO_DIR/operator.pid" 30
    stop_pid "$DEMO_DIR/emulator.pid" 10
    "$ROOT/hack/cluster.sh" down --dir "$CLUSTER_DIR"
  fi
  rm -f "$DEMO_DIR/emulator.url" "$DEMO_DIR/operator.stamp" "$DEMO_DIR/metrics.port" "$DEMO_DIR/mode"
  # Nothing of the demo may be left: not the processes it recorded, no emulator on the demo
  # config, no etcd/kube-apiserver of its control-plane directory. (Other release binaries on
  # the machine, e.g. benchmarks, are not the demo's.)
  local left="" pid
  for pid in $pids; do
    if kill -0 "$pid" 2>/dev/null; then left="$left$(ps -o pid=,args= -p "$pid")"$'\n'; fi
  done
  local pattern=(-e "--config $CONFIG")
  [ "$MODE" = local ] && pattern+=(-e "$CLUSTER_DIR/")
  left="$left$(ps -eo pid=,args= | grep -F "${pattern[@]}" | grep -v -e grep -e "hack/demo.sh" || true)"
  if [ -n "${left//$'\n'/}" ]; then
    echo "still running:" >&2; echo "$left" >&2; exit 1
  fi
  if [ "$MODE" = existing ]; then
    echo "operator and emulator stopped, what the demo made removed; no process left (logs kept in $DEMO_DIR)"
  else
    echo "operator, emulator and control plane stopped; no process left (logs kept in $DEMO_DIR)"
  fi
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
