#!/usr/bin/env bash
# Real Kubernetes nodes on this machine, on top of hack/cluster.sh's control plane: containerd +
# runc + kubelet per node, plus kube-controller-manager and kube-scheduler, so Deployments,
# Services, Helm charts and `kubectl logs` work as on a cluster. Pods run from images imported
# into containerd (nothing is ever pulled) and use the host network (there is no pod network).
#
#   hack/node.sh up   [--dir DIR] [--nodes N] [--owner-pid PID] [--image TAR]...   (make node-up)
#   hack/node.sh load [--dir DIR] TAR...       import docker-archive images into every node
#   hack/node.sh down [--dir DIR]                                                   (make node-down)
#   hack/node.sh packages                      install the Debian packages nodes and images need
#
# `up` prints `export KUBECONFIG=DIR/cluster/admin.kubeconfig` (and `export API_PORT=...`, the
# apiserver's port on 127.0.0.1) as its last lines; running it again while the nodes are up only
# imports the given images and prints them again. Node i (from 0) is named and addressed
# 127.0.0.(i+1); its kubelet listens there. hostNetwork pods reach the apiserver at
# 127.0.0.1:$API_PORT (set KUBERNETES_SERVICE_HOST/PORT in the pod: there is no kube-proxy).
# With --owner-pid, a watchdog runs `down` as soon as that process is gone.
#
# Needs root: the kubelet and containerd change the host. `up` records what they change and
# `down` restores it: the sysctls the kubelet sets (vm.overcommit_memory, kernel.panic, ...), the
# iptables chains it creates (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT), the mounts
# (kubelet root dir, pod volumes, container root filesystems), the cgroups of the containers, and
# the directories under /run, /var and /opt created meanwhile. `down` deletes every container
# through containerd before stopping it (the runc shims outlive containerd) and leaves no process
# behind. One set of nodes per machine (they share the host's network, sysctls and iptables).
#
# Binaries: kubelet, kube-controller-manager and kube-scheduler from hack/k8s-bins/build.sh
# --node (built once, cached); containerd, runc and iptables from Debian packages
# (hack/debian-packages.sh); the pause image compiled from the Kubernetes module's pause.c.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${VPN_PBR_CACHE:-$HOME/.cache/vpn-pbr-operator}
DIR=$CACHE/node
# The pause image and its buildah state (NODE_IMAGES_DIR: hack/first-run.sh builds it again).
NODE_IMAGES=${NODE_IMAGES_DIR:-$CACHE/node-images}
RUN=/run/vpn-pbr-node
NODES=1
OWNER=""
IMAGES=()
K8S=${K8S_VERSION:-1.37.2}
PAUSE_IMAGE=vpn-pbr-node/pause:3.10.2
SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"
# Host directories containerd, runc, the kubelet or buildah may create outside the node's own
# directories: one list, shared with hack/first-run.sh and the end-to-end test's audit.
HOST_DIRS=$(grep -v '^#' "$ROOT/hack/host-dirs")
# Debian packages the nodes and the image builds need; `packages` installs them (the
# end-to-end test does so before it looks at the host, so installing them is not a change).
PACKAGES="containerd runc iptables procps gcc libc6-dev binutils openssl python3 buildah"
CGROUP_DIRS="k8s.io kubepods"

cmd=${1:-}; shift || true
while [ $# -gt 0 ]; do
  case $1 in
    --dir) DIR=$2; shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --owner-pid) OWNER=$2; shift 2 ;;
    --image) IMAGES+=("$2"); shift 2 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) IMAGES+=("$1"); shift ;;
  esac
done
CLUSTER=$DIR/cluster

say() { echo "node: $*" >&2; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
node_ip() { echo "127.0.0.$(($1 + 1))"; }
ctr_() { local i=$1; shift; ctr --address "$RUN/n$i/containerd.sock" -n k8s.io "$@"; }

# Stops the processes in the pid files after $1: SIGTERM to all, up to $1 seconds, then SIGKILL.
stop_pids() {
  local secs=$1 f pids=()
  shift
  for f in "$@"; do alive "$f" && pids+=("$(cat "$f")"); done
  if [ ${#pids[@]} -gt 0 ]; then
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq $((secs * 10))); do kill -0 "${pids[@]}" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "${pids[@]}" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$@"
}

binaries_packages() {
  # shellcheck disable=SC2086
  "$ROOT/hack/debian-packages.sh" $PACKAGES
}

binaries() {
  binaries_packages
  KUBE_BIN_DIR=$("$ROOT/hack/k8s-bins/build.sh" --node)
  ETCD_BIN_DIR=$("$ROOT/hack/etcd/build.sh")
  export KUBE_BIN_DIR ETCD_BIN_DIR
}

# The sandbox image: pause.c from the Kubernetes module, static, in a FROM scratch image.
pause_image() {
  local out=$NODE_IMAGES dir src
  [ -s "$out/pause.tar" ] && return
  mkdir -p "$out/context"
  dir=$(cd "$ROOT/hack/k8s-bins" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' "k8s.io/kubernetes")
  src=$dir/build/pause/linux/pause.c
  [ -f "$src" ] || { echo "no $src in the k8s.io/kubernetes module" >&2; exit 1; }
  gcc -Os -static -Wall -Werror -DVERSION="v3.10.2-vpn-pbr" -o "$out/context/pause" "$src"
  strip "$out/context/pause"
  local B=("$ROOT/hack/image/buildah.sh" "$out")
  "${B[@]}" bud --quiet --layers=false --pull=never -t "$PAUSE_IMAGE" -f "$ROOT/hack/node/pause.Containerfile" "$out/context" >&2
  "${B[@]}" push --quiet "$PAUSE_IMAGE" "docker-archive:$out/pause.tar.tmp:$PAUSE_IMAGE" >&2
  "${B[@]}" rmi --all --force >/dev/null 2>&1 || true
  rm -rf "$out/storage" "$out/run" "$out/host" "$out/tmp"
  mv "$out/pause.tar.tmp" "$out/pause.tar"
}

# What the host looks like before the first node starts; `down` restores it.
record_baseline() {
  [ -f "$DIR/baseline/recorded" ] && return
  mkdir -p "$DIR/baseline"
  for s in $SYSCTLS; do echo "$s $(sysctl -n "$s")"; done > "$DIR/baseline/sysctls"
  for t in iptables ip6tables; do
    command -v "$t" >/dev/null || continue
    for table in filter nat mangle; do
      "$t" -w -t "$table" -S 2>/dev/null | awk -v T="$table" '$1 == "-N" {print T, $2}'
    done > "$DIR/baseline/$t.chains"
  done
  for d in $HOST_DIRS; do [ -e "$d" ] && echo "$d"; done > "$DIR/baseline/dirs"
  for c in /sys/fs/cgroup/*/; do
    for n in $CGROUP_DIRS; do [ -d "$c$n" ] && echo "$c$n"; done
  done > "$DIR/baseline/cgroups"
  touch "$DIR/baseline/recorded"
}

certs() {
  local i=$1 ip n=$DIR/n$1
  ip=$(node_ip "$i")
  [ -s "$n/kubelet-serving.crt" ] && return
  mkdir -p "$n"
  (
    cd "$n"
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$ip" -keyout kubelet-serving.key -out kubelet-serving.csr 2>/dev/null
    printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' "$ip" > serving.ext
    openssl x509 -req -in kubelet-serving.csr -CA "$CLUSTER/ca.crt" -CAkey "$CLUSTER/ca.key" -CAcreateserial -days 30 -extfile serving.ext -out kubelet-serving.crt 2>/dev/null
    # The node's identity: Node authorization and NodeRestriction key on system:node:<name>.
    openssl req -newkey rsa:2048 -nodes -subj "/O=system:nodes/CN=system:node:$ip" -keyout kubelet-client.key -out kubelet-client.csr 2>/dev/null
    openssl x509 -req -in kubelet-client.csr -CA "$CLUSTER/ca.crt" -CAkey "$CLUSTER/ca.key" -CAcreateserial -days 30 -extfile "$CLUSTER/client.ext" -out kubelet-client.crt 2>/dev/null
  )
  local server
  server=$(awk '$1 == "server:" {print $2; exit}' "$CLUSTER/admin.kubeconfig")
  cat > "$n/kubelet.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "$server", certificate-authority: "$CLUSTER/ca.crt"}
users:
- name: node
  user: {client-certificate: "$n/kubelet-client.crt", client-key: "$n/kubelet-client.key"}
contexts:
- name: local
  context: {cluster: local, user: node}
current-context: local
KC
}

start_containerd() {
  local i=$1 ip n=$DIR/n$1 r=$RUN/n$1
  ip=$(node_ip "$i")
  alive "$r/containerd.pid" && return
  mkdir -p "$n/containerd" "$n/cni/conf" "$n/cni/bin" "$n/opt" "$r"
  # Every path containerd would put under /etc, /opt, /var or /run by default is moved here.
  # restrict_oom_score_adj: this process may lack CAP_SYS_RESOURCE (sandboxes would fail with
  # "can't get final child's PID from pipe"). The CNI config only makes the CRI report the
  # network ready: every pod uses the host network, so no CNI plugin ever runs.
  cat > "$n/containerd.toml" <<TOML
version = 2
root = "$n/containerd"
state = "$r/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$r/containerd.sock"
[ttrpc]
  address = "$r/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$n/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  stream_server_address = "$ip"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$r/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$n/cni/bin"
    conf_dir = "$n/cni/conf"
TOML
  echo '{"cniVersion": "0.4.0", "name": "host-network-only", "type": "loopback"}' > "$n/cni/conf/10-host-network-only.conf"
  setsid containerd --config "$n/containerd.toml" 9>&- </dev/null >"$n/containerd.log" 2>&1 &
  echo $! > "$r/containerd.pid"
  for _ in $(seq 100); do ctr_ "$i" version >/dev/null 2>&1 && break; sleep 0.1; done
  ctr_ "$i" version >/dev/null 2>&1 || { echo "containerd of node $i did not start; see $n/containerd.log" >&2; tail -20 "$n/containerd.log" >&2; exit 1; }
}

import_images() {
  local i=$1; shift
  for tar in "$@"; do
    ctr_ "$i" images import "$tar" >/dev/null
  done
}

start_kubelet() {
  local i=$1 ip n=$DIR/n$1 r=$RUN/n$1 port hport
  ip=$(node_ip "$i")
  alive "$r/kubelet.pid" && return
  port=$(free_port); hport=$(free_port)
  mkdir -p "$n/kubelet" "$n/pki" "$n/pod-logs" "$n/volume-plugins"
  # cgroups v1 without systemd as PID 1: cgroupfs, no QoS cgroups, nothing reserved.
  cat > "$n/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: "$ip"
port: $port
readOnlyPort: 0
healthzBindAddress: "$ip"
healthzPort: $hport
tlsCertFile: "$n/kubelet-serving.crt"
tlsPrivateKeyFile: "$n/kubelet-serving.key"
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$CLUSTER/ca.crt"}
authorization: {mode: Webhook}
containerRuntimeEndpoint: "unix://$r/containerd.sock"
cgroupDriver: cgroupfs
failCgroupV1: false
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
podLogsDir: "$n/pod-logs"
volumePluginDir: "$n/volume-plugins"
resolvConf: /etc/resolv.conf
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
rotateCertificates: false
serverTLSBootstrap: false
serializeImagePulls: false
maxPods: 30
YAML
  echo "$port" > "$n/kubelet.port"
  setsid "$KUBE_BIN_DIR/kubelet" --config "$n/kubelet.yaml" --kubeconfig "$n/kubelet.kubeconfig" \
    --hostname-override "$ip" --root-dir "$n/kubelet" --cert-dir "$n/pki" --v 1 \
    9>&- </dev/null >"$n/kubelet.log" 2>&1 &
  echo $! > "$r/kubelet.pid"
}

start_controllers() {
  alive "$RUN/kube-controller-manager.pid" || {
    setsid "$KUBE_BIN_DIR/kube-controller-manager" --kubeconfig "$CLUSTER/admin.kubeconfig" \
      --leader-elect=false --secure-port=0 --cluster-name=vpn-pbr-local \
      --service-account-private-key-file="$CLUSTER/sa.key" --root-ca-file="$CLUSTER/ca.crt" \
      --use-service-account-credentials=false \
      9>&- </dev/null >"$DIR/kube-controller-manager.log" 2>&1 &
    echo $! > "$RUN/kube-controller-manager.pid"
  }
  alive "$RUN/kube-scheduler.pid" || {
    setsid "$KUBE_BIN_DIR/kube-scheduler" --kubeconfig "$CLUSTER/admin.kubeconfig" \
      --leader-elect=false --secure-port=0 \
      9>&- </dev/null >"$DIR/kube-scheduler.log" 2>&1 &
    echo $! > "$RUN/kube-scheduler.pid"
  }
}

all_up() {
  alive "$RUN/kube-controller-manager.pid" && alive "$RUN/kube-scheduler.pid" \
    && alive "$CLUSTER/apiserver.pid" && [ "$(cat "$RUN/nodes" 2>/dev/null)" = "$NODES" ] || return 1
  local i
  for i in $(seq 0 $((NODES - 1))); do
    alive "$RUN/n$i/containerd.pid" && alive "$RUN/n$i/kubelet.pid" || return 1
  done
}

print_env() {
  echo "export API_PORT=$(awk -F: '$1 ~ /server/ {print $NF; exit}' "$CLUSTER/admin.kubeconfig")"
  echo "export KUBECONFIG=$CLUSTER/admin.kubeconfig"
}

up() {
  [ "$(id -u)" = 0 ] || { echo "hack/node.sh needs root (containerd, runc and the kubelet change the host)" >&2; exit 1; }
  if [ -f "$RUN/dir" ] && [ "$(cat "$RUN/dir")" != "$DIR" ]; then
    echo "nodes of $(cat "$RUN/dir") are up on this machine; stop them first (hack/node.sh down --dir $(cat "$RUN/dir"))" >&2; exit 1
  fi
  if all_up; then
    for i in $(seq 0 $((NODES - 1))); do import_images "$i" "${IMAGES[@]}"; done
    print_env; return
  fi
  local start=$SECONDS
  binaries
  pause_image
  mkdir -p "$DIR" "$RUN"
  echo "$DIR" > "$RUN/dir"
  echo "$NODES" > "$RUN/nodes"
  record_baseline
  say "control plane (hack/cluster.sh up --nodes)"
  "$ROOT/hack/cluster.sh" up --nodes --dir "$CLUSTER" 9>&- >/dev/null
  export KUBECONFIG=$CLUSTER/admin.kubeconfig
  local i
  for i in $(seq 0 $((NODES - 1))); do
    say "node $(node_ip "$i"): containerd, images, kubelet"
    certs "$i"
    start_containerd "$i"
    import_images "$i" "$NODE_IMAGES/pause.tar" "${IMAGES[@]}"
    start_kubelet "$i"
  done
  start_controllers
  if [ -n "$OWNER" ] && ! alive "$RUN/watchdog.pid"; then
    # The owner (a test) may die by panic or signal without cleaning up.
    setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; NODE_WATCHDOG=1 "$2" down --dir "$3"' \
      watchdog "$OWNER" "$ROOT/hack/node.sh" "$DIR" 9>&- </dev/null >"$DIR/watchdog.log" 2>&1 &
    echo $! > "$RUN/watchdog.pid"
  fi
  say "waiting for $NODES node(s) to be Ready"
  local kubectl=$KUBE_BIN_DIR/kubectl
  for _ in $(seq 120); do
    [ "$("$kubectl" get nodes -o name 2>/dev/null | wc -l)" -ge "$NODES" ] && break; sleep 0.5
  done
  if ! "$kubectl" wait --for=condition=Ready node --all --timeout=120s >/dev/null; then
    "$kubectl" get nodes -o wide >&2 || true
    for i in $(seq 0 $((NODES - 1))); do echo "--- kubelet $i" >&2; tail -20 "$DIR/n$i/kubelet.log" >&2; done
    exit 1
  fi
  # The ServiceAccount of every namespace comes from the controller manager; wait for default's.
  for _ in $(seq 100); do "$kubectl" -n default get serviceaccount default >/dev/null 2>&1 && break; sleep 0.2; done
  say "$NODES node(s) Ready in $((SECONDS - start))s"
  print_env
}

load() {
  NODES=$(cat "$RUN/nodes" 2>/dev/null || echo 1)
  all_up || { echo "no nodes are up (hack/node.sh up)" >&2; exit 1; }
  for i in $(seq 0 $((NODES - 1))); do import_images "$i" "${IMAGES[@]}"; done
}

# Deletes every container and sandbox of node $1 through its containerd.
delete_containers() {
  local i=$1 id
  alive "$RUN/n$i/containerd.pid" || return 0
  for id in $(ctr_ "$i" tasks ls -q 2>/dev/null); do
    ctr_ "$i" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
  done
  for id in $(ctr_ "$i" tasks ls -q 2>/dev/null); do
    for _ in $(seq 50); do ctr_ "$i" tasks delete "$id" >/dev/null 2>&1 && break; sleep 0.1; done
  done
  for id in $(ctr_ "$i" containers ls -q 2>/dev/null); do
    ctr_ "$i" containers delete "$id" >/dev/null 2>&1 || true
  done
}

# Mount points at or under one of the given paths, deepest first.
mounts_under() {
  awk '{print $5}' /proc/self/mountinfo | while read -r m; do
    m=$(printf '%b' "$m")
    for p in "$@"; do case "$m" in "$p"|"$p"/*) echo "$m" ;; esac; done
  done | sort -r -u
}

# Processes of the nodes that outlive containerd: its shims, and whatever runs in the cgroups of
# the containers.
node_pids() {
  pgrep -f "containerd-shim-runc-v2 .*-address $RUN/" || true
  local c d
  for c in /sys/fs/cgroup/*/; do
    for d in $CGROUP_DIRS; do
      grep -qx "$c$d" "$DIR/baseline/cgroups" 2>/dev/null && continue
      if [ -d "$c$d" ]; then find "$c$d" -name cgroup.procs -exec cat {} + 2>/dev/null || true; fi
    done
  done
}

down() {
  [ "$(id -u)" = 0 ] || { echo "hack/node.sh needs root" >&2; exit 1; }
  if [ "${NODE_WATCHDOG:-}" != 1 ]; then stop_pids 2 "$RUN/watchdog.pid"; else rm -f "$RUN/watchdog.pid"; fi
  local nodes i files=()
  nodes=$(cat "$RUN/nodes" 2>/dev/null || echo 0)
  # The kubelets first, so nothing restarts the containers deleted below.
  for i in $(seq 0 $((nodes - 1))); do files+=("$RUN/n$i/kubelet.pid"); done
  stop_pids 20 "${files[@]}" "$RUN/kube-controller-manager.pid" "$RUN/kube-scheduler.pid"
  files=()
  for i in $(seq 0 $((nodes - 1))); do
    delete_containers "$i"
    files+=("$RUN/n$i/containerd.pid")
  done
  stop_pids 20 "${files[@]}"
  # Anything still running from a node: shims of a containerd that died, container processes.
  local pids
  pids=$(node_pids | sort -u)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.5
  fi
  # Mounts: container root filesystems, sandbox shm, pod volumes, the kubelet's root dir.
  local created_dirs=()
  [ -f "$DIR/baseline/dirs" ] && for d in $HOST_DIRS; do grep -qx "$d" "$DIR/baseline/dirs" || created_dirs+=("$d"); done
  local m
  for _ in 1 2 3; do
    for m in $(mounts_under "$DIR" "$RUN" "${created_dirs[@]}"); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  done
  # Cgroups the containers left (empty now that every process is gone).
  for c in /sys/fs/cgroup/*/; do
    for d in $CGROUP_DIRS; do
      grep -qx "$c$d" "$DIR/baseline/cgroups" 2>/dev/null && continue
      if [ -d "$c$d" ]; then find "$c$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
    done
  done
  if [ -f "$DIR/baseline/sysctls" ]; then
    while read -r key value; do
      [ "$(sysctl -n "$key")" = "$value" ] || sysctl -q -w "$key=$value" >/dev/null
    done < "$DIR/baseline/sysctls"
  fi
  # iptables: every KUBE-* chain that was not there before, and the rules jumping to it.
  local t table chain
  for t in iptables ip6tables; do
    command -v "$t" >/dev/null && [ -f "$DIR/baseline/$t.chains" ] || continue
    for table in filter nat mangle; do
      for chain in $("$t" -w -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
        grep -qx "$table $chain" "$DIR/baseline/$t.chains" && continue
        "$t" -w -t "$table" -S 2>/dev/null | awk -v c="$chain" '$1 == "-A" && $2 != c && / -j / { for (i = 1; i < NF; i++) if ($i == "-j" && $(i+1) == c) { $1 = "-D"; print; break } }' \
          | while read -r rule; do
            # shellcheck disable=SC2086
            eval "$t" -w -t "$table" $rule || true
          done
        "$t" -w -t "$table" -F "$chain" 2>/dev/null || true
        "$t" -w -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
  "$ROOT/hack/cluster.sh" down --dir "$CLUSTER" >/dev/null
  for d in "${created_dirs[@]}"; do
    [ -e "$d" ] && { [ -z "$(mounts_under "$d")" ] && rm -rf "$d" || echo "node: $d still has mounts; left in place" >&2; }
  done
  # Symlinks the kubelet left in /var/log/containers when that directory already existed.
  if [ -d /var/log/containers ]; then
    find /var/log/containers -maxdepth 1 -type l -lname "$DIR/*" -delete 2>/dev/null || true
  fi
  if [ -z "$(mounts_under "$DIR" "$RUN")" ]; then
    for i in $(seq 0 $((nodes - 1))); do rm -rf "$DIR/n$i"; done
    rm -rf "$RUN" "$DIR/baseline" "$CLUSTER"
  else
    echo "node: mounts left under $DIR or $RUN:" >&2; mounts_under "$DIR" "$RUN" >&2
    exit 1
  fi
  say "down"
}

case $cmd in
  up) mkdir -p "$CACHE"; exec 9>"$CACHE/node.lock"; flock 9; up ;;
  load) load ;;
  packages) binaries_packages ;;
  down) mkdir -p "$CACHE"; exec 9>"$CACHE/node.lock"; flock 9; down ;;
  *) echo "usage: $0 up|load|down|packages [--dir DIR] [--nodes N] [--owner-pid PID] [--image TAR]..." >&2; exit 2 ;;
esac
