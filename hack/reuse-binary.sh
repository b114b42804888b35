# Sourced by hack/k8s-bins/build.sh and hack/etcd/build.sh: reuse a binary the machine already
# has, of the tested version, instead of building it.
#
#   reuse_binary NAME VERSION_PATTERN OUT_DIR
#
# Looks in $KUBEBUILDER_ASSETS (the directory controller-runtime's envtest reads: kube-apiserver,
# etcd, kubectl), then on PATH. A binary whose version output (`--version`, or `version
# --client` for kubectl) contains VERSION_PATTERN is linked into OUT_DIR (the cache) and the
# function succeeds; otherwise it fails and the caller builds the binary.
reuse_binary() {
  local name=$1 want=$2 out=$3 cand dir version
  for dir in ${KUBEBUILDER_ASSETS:+"$KUBEBUILDER_ASSETS"} $(echo "${PATH:-}" | tr ':' ' '); do
    cand=$dir/$name
    [ -x "$cand" ] && [ ! -d "$cand" ] || continue
    # Never our own link or a copy in OUT_DIR.
    [ "$(realpath "$dir")" = "$(realpath -m "$out")" ] && continue
    if [ "$name" = kubectl ]; then
      version=$("$cand" version --client 2>/dev/null || true)
    else
      version=$("$cand" --version 2>/dev/null || true)
    fi
    case $version in
      *"$want"*)
        mkdir -p "$out"
        ln -sfn "$(realpath "$cand")" "$out/$name"
        echo "reusing $cand ($want) for $name" >&2
        return 0 ;;
    esac
  done
  return 1
}
