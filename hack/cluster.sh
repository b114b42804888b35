#!/usr/bin/env bash
# A local Kubernetes control plane (etcd + kube-apiserver) for tests and the demo; nodes join it
# with hack/node.sh.
#
#   hack/cluster.sh up   [--dir DIR] [--owner-pid PID] [--no-build] [--nodes]
#   hack/cluster.sh down [--dir DIR]
#
# `up` starts etcd and kube-apiserver on free loopback ports with RBAC, service-account token
# signing and an admin client certificate, writes DIR/admin.kubeconfig and prints
# `export KUBECONFIG=DIR/admin.kubeconfig` as its last line. Running it again while the plane is
# up only prints that line. With --owner-pid, a watchdog stops the plane and removes DIR as soon
# as that process is gone (the Rust test harness uses this so no process outlives a test run).
# --no-build fails instead of building missing binaries. `down` stops the plane and leaves no
# process behind.
#
# --nodes configures the apiserver for real nodes (hack/node.sh): the ServiceAccount admission
# plugin on (pods get their token volumes), Node authorization and NodeRestriction for the
# kubelets, and a client certificate for the apiserver's calls to the kubelets (logs,
# port-forward) whose serving certificates it checks against the plane's CA. Without it (the
# integration tests, `make demo`) the plane has no nodes and ServiceAccount admission stays off.
# A plane already up in the other mode is restarted.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${VPN_PBR_CACHE:-$HOME/.cache/vpn-pbr-operator}
DIR=$CACHE/cluster
OWNER=""
BUILD=1
NODES=0
cmd=${1:-}; shift || true
while [ $# -gt 0 ]; do
  case $1 in
    --dir) DIR=$2; shift 2 ;;
    --owner-pid) OWNER=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    --nodes) NODES=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop() {
  for p in apiserver etcd watchdog; do
    if alive "$DIR/$p.pid"; then
      pid=$(cat "$DIR/$p.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/$p.pid"
  done
}

binaries() {
  if [ -n "${KUBE_BIN_DIR:-}" ] && [ -n "${ETCD_BIN_DIR:-}" ]; then return; fi
  if [ "$BUILD" = 1 ]; then
    KUBE_BIN_DIR=$("$ROOT/hack/k8s-bins/build.sh")
    ETCD_BIN_DIR=$("$ROOT/hack/etcd/build.sh")
  else
    KUBE_BIN_DIR=${KUBE_BIN_DIR:-$CACHE/k8s/v1.37.2}
    ETCD_BIN_DIR=${ETCD_BIN_DIR:-$CACHE/etcd/v3.7.3}
  fi
  for b in "$KUBE_BIN_DIR/kube-apiserver" "$ETCD_BIN_DIR/etcd"; do
    [ -x "$b" ] || { echo "missing $b: build it with 'make tools' (hack/k8s-bins/build.sh, hack/etcd/build.sh)" >&2; exit 1; }
  done
}

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

pki() {
  cd "$DIR"
  local ip=$1
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=vpn-pbr-test-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' "$ip" > server.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile server.ext -out apiserver.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=admin" -keyout admin.key -out admin.csr 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' > client.ext
  openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile client.ext -out admin.crt 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null
  if [ "$NODES" = 1 ]; then
    # The apiserver's identity towards the kubelets (authorized by them through a webhook).
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
      -keyout kubelet-client.key -out kubelet-client.csr 2>/dev/null
    openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile client.ext -out kubelet-client.crt 2>/dev/null
  fi
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  cd - >/dev/null
}

up() {
  if alive "$DIR/apiserver.pid" && alive "$DIR/etcd.pid" && [ -f "$DIR/admin.kubeconfig" ] \
    && [ "$(cat "$DIR/mode" 2>/dev/null || echo 0)" = "$NODES" ]; then
    echo "export KUBECONFIG=$DIR/admin.kubeconfig"; return
  fi
  stop
  binaries
  rm -rf "$DIR"; mkdir -p "$DIR"
  # kube-apiserver needs a non-loopback advertise address (it refuses loopback for the
  # `kubernetes` Endpoints); nothing is ever served on it.
  ADV_IP=$(ip -4 -o addr show scope global 2>/dev/null | awk '{split($4,a,"/"); print a[1]; exit}')
  [ -n "$ADV_IP" ] || { echo "no non-loopback IPv4 address; add a dummy interface (see README)" >&2; exit 1; }
  pki "$ADV_IP"
  echo "$NODES" > "$DIR/mode"
  if [ "$NODES" = 1 ]; then
    MODE_FLAGS=(--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction
      --kubelet-client-certificate="$DIR/kubelet-client.crt" --kubelet-client-key="$DIR/kubelet-client.key"
      --kubelet-certificate-authority="$DIR/ca.crt")
  else
    MODE_FLAGS=(--authorization-mode=RBAC --disable-admission-plugins=ServiceAccount)
  fi
  ETCD_PORT=$(free_port); PEER_PORT=$(free_port); API_PORT=$(free_port)
  setsid "$ETCD_BIN_DIR/etcd" --data-dir "$DIR/etcd" --log-level warn --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$PEER_PORT" \
    --initial-cluster "default=http://127.0.0.1:$PEER_PORT" \
    </dev/null >"$DIR/etcd.log" 2>&1 &
  echo $! > "$DIR/etcd.pid"
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fsS "http://127.0.0.1:$ETCD_PORT/health" >/dev/null || { echo "etcd did not start; see $DIR/etcd.log" >&2; tail -20 "$DIR/etcd.log" >&2; stop; exit 1; }
  cat > "$DIR/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  userGroups: ["system:serviceaccounts"]
- level: None
POLICY
  setsid "$KUBE_BIN_DIR/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
    --bind-address=127.0.0.1 --secure-port="$API_PORT" --advertise-address="$ADV_IP" \
    --cert-dir="$DIR" --tls-cert-file="$DIR/apiserver.crt" --tls-private-key-file="$DIR/apiserver.key" \
    --client-ca-file="$DIR/ca.crt" "${MODE_FLAGS[@]}" \
    --service-account-issuer="https://127.0.0.1:$API_PORT" \
    --service-account-key-file="$DIR/sa.pub" --service-account-signing-key-file="$DIR/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --allow-privileged=true \
    --audit-policy-file="$DIR/audit-policy.yaml" --audit-log-path="$DIR/audit.log" \
    </dev/null >"$DIR/apiserver.log" 2>&1 &
  echo $! > "$DIR/apiserver.pid"
  if [ -n "$OWNER" ]; then
    # Watchdog: the owner (a test binary) may die by panic or signal without cleaning up.
    setsid bash -c 'while kill -0 '"$OWNER"' 2>/dev/null; do sleep 0.5; done
      for p in apiserver etcd; do [ -f "'"$DIR"'/$p.pid" ] && kill -9 "$(cat "'"$DIR"'/$p.pid")" 2>/dev/null; done
      sleep 0.2; rm -rf "'"$DIR"'"' </dev/null >/dev/null 2>&1 &
    echo $! > "$DIR/watchdog.pid"
  fi
  for _ in $(seq 600); do
    curl -fsS --cacert "$DIR/ca.crt" --cert "$DIR/admin.crt" --key "$DIR/admin.key" \
      "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 && break
    alive "$DIR/apiserver.pid" || break
    sleep 0.2
  done
  curl -fsS --cacert "$DIR/ca.crt" --cert "$DIR/admin.crt" --key "$DIR/admin.key" \
    "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 || {
    echo "kube-apiserver did not become ready; see $DIR/apiserver.log" >&2; tail -20 "$DIR/apiserver.log" >&2; stop; exit 1; }
  b64() { base64 -w0 "$1"; }
  cat > "$DIR/admin.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: vpn-pbr-local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(b64 "$DIR/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$DIR/admin.crt")
    client-key-data: $(b64 "$DIR/admin.key")
contexts:
- name: vpn-pbr-local
  context: {cluster: vpn-pbr-local, user: admin}
current-context: vpn-pbr-local
KC
  echo "export KUBECONFIG=$DIR/admin.kubeconfig"
}

case $cmd in
  up) up ;;
  down) stop; echo "control plane in $DIR stopped" ;;
  *) echo "usage: $0 up|down [--dir DIR] [--owner-pid PID] [--no-build] [--nodes]" >&2; exit 2 ;;
esac
