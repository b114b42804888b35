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
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${VPN_PBR_CACHE:-$HOME/.cache/vpn-pbr-operator}
DEMO_DIR=${DEMO_DIR:-$CACHE/demo}
CLUSTER_DIR=${DEMO_CLUSTER_DIR:-$CACHE/cluster}
CONFIG=$ROOT/deploy/emulator/config.example.yaml
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
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

up() {
  local start=$SECONDS
  mkdir -p "$DEMO_DIR"
  say "tools (hack/tools.sh; built once into $CACHE)"
  # shellcheck disable=SC1090
  source <("$ROOT/hack/tools.sh" --env)
  say "operator and emulator (cargo build --release --locked --bins)"
  local t0=$SECONDS
  (cd "$ROOT" && cargo build --release --locked --bins 2>&1 | grep -v '^\s*Fresh ' | tail -3)
  local built=$((SECONDS - t0))

  say "control plane (hack/cluster.sh up --dir $CLUSTER_DIR)"
  local api_before api_after
  api_before=$(cat "$CLUSTER_DIR/apiserver.pid" 2>/dev/null || true)
  eval "$("$ROOT/hack/cluster.sh" up --dir "$CLUSTER_DIR" | tail -1)"
  api_after=$(cat "$CLUSTER_DIR/apiserver.pid")

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

  say "CRD (kubectl apply --server-side -f crds/)"
  kubectl apply --server-side -f "$ROOT/crds/"
  kubectl wait --for=condition=Established --timeout=60s crd/vpnpbrroutes.vpn.alicloud.dev >/dev/null

  say "operator (target/release/vpn-pbr-operator --endpoint $url)"
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
    KUBECONFIG=$CLUSTER_DIR/admin.kubeconfig \
    ALIBABA_CLOUD_ACCESS_KEY_ID=$key_id ALIBABA_CLOUD_ACCESS_KEY_SECRET=$key_secret \
      setsid "$BIN/vpn-pbr-operator" --endpoint "$url" --log-format text \
      --metrics-addr "127.0.0.1:$port" --resync 1m \
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

  say "examples (kubectl apply -f examples/; examples/invalid/ is not applied)"
  kubectl apply --server-side -f "$ROOT/examples/"
  say "waiting until every route is Ready (timeout $WAIT_TIMEOUT)"
  if ! kubectl wait --for=condition=Ready pbr --all --timeout="$WAIT_TIMEOUT"; then
    kubectl get pbr -o wide || true
    echo "routes not Ready in time; operator log: $DEMO_DIR/operator.log" >&2
    tail -20 "$DEMO_DIR/operator.log" >&2
    exit 1
  fi

  say "kubectl get pbr -o wide"
  kubectl get pbr -o wide
  say "recent events (kubectl get events --field-selector involvedObject.kind=VpnPbrRoute)"
  kubectl get events --field-selector involvedObject.kind=VpnPbrRoute --sort-by=.metadata.creationTimestamp | tail -n 12
  sleep 2   # the route gauges refresh every 2 s
  say "metrics (curl http://127.0.0.1:$port/metrics | grep vpn_pbr_)"
  curl -fsS "http://127.0.0.1:$port/metrics" | grep '^vpn_pbr_' | grep -vE '_bucket|_sum|_count' | head -n 14 || true

  cat <<EOF

$(say "the demo is running (ready in $((SECONDS - start))s, of which ${built}s cargo build)")
Look around:
  export KUBECONFIG=$CLUSTER_DIR/admin.kubeconfig
  export PATH=$KUBE_BIN_DIR:\$PATH
  kubectl get pbr -o wide                       # routes, state, weight, Ready
  kubectl describe pbr office-to-app-active     # conditions, status, events
  kubectl patch pbr office-to-app-active --type merge -p '{"spec":{"priority":20}}'
  kubectl delete pbr datacenter-published       # removes the cloud entry too
  curl -s $url/_emulator/state | python3 -m json.tool    # the "cloud" (emulator admin API)
  curl -s http://127.0.0.1:$port/metrics | grep ^vpn_pbr_     # operator metrics
Logs:
  operator:  $DEMO_DIR/operator.log
  emulator:  $DEMO_DIR/emulator.log
  apiserver: $CLUSTER_DIR/apiserver.log
Stop everything: make demo-down
EOF
}

down() {
  say "stopping the demo"
  local pids=""
  for p in operator emulator; do [ -f "$DEMO_DIR/$p.pid" ] && pids="$pids $(cat "$DEMO_DIR/$p.pid")"; done
  for p in apiserver etcd watchdog; do [ -f "$CLUSTER_DIR/$p.pid" ] && pids="$pids $(cat "$CLUSTER_DIR/$p.pid")"; done
  stop_pid "$DEMO_DIR/operator.pid" 30
  stop_pid "$DEMO_DIR/emulator.pid" 10
  rm -f "$DEMO_DIR/emulator.url" "$DEMO_DIR/operator.stamp" "$DEMO_DIR/metrics.port"
  "$ROOT/hack/cluster.sh" down --dir "$CLUSTER_DIR"
  # Nothing of the demo may be left: not the processes it recorded, no emulator on the demo
  # config, no etcd/kube-apiserver of its control-plane directory. (Other release binaries on
  # the machine, e.g. benchmarks, are not the demo's.)
  local left="" pid
  for pid in $pids; do
    if kill -0 "$pid" 2>/dev/null; then left="$left$(ps -o pid=,args= -p "$pid")"$'\n'; fi
  done
  left="$left$(ps -eo pid=,args= | grep -F -e "--config $CONFIG" -e "$CLUSTER_DIR/" | grep -v -e grep -e "hack/demo.sh" || true)"
  if [ -n "${left//$'\n'/}" ]; then
    echo "still running:" >&2; echo "$left" >&2; exit 1
  fi
  echo "operator, emulator and control plane stopped; no process left (logs kept in $DEMO_DIR)"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
