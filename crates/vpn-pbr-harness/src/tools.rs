//! Where things are: the repository, the tool cache (`make tools` fills it), the control-plane
//! binaries, helm, promtool, the Prometheus Operator's CRDs, and the workspace's own built
//! programs.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// The repository root (`hack/`, `crds/`, `deploy/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// `VPN_PBR_CACHE`, or `~/.cache/vpn-pbr-operator` (as the Makefile).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("VPN_PBR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/vpn-pbr-operator")
        })
}

/// The local nodes' directory: `VPN_PBR_NODE_DIR` (`hack/first-run.sh` gives a fresh one), or
/// `node` under the cache.
pub fn node_dir() -> PathBuf {
    dir_from_env("VPN_PBR_NODE_DIR", "node")
}

/// A directory from `var`, or `default` under the cache.
fn dir_from_env(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join(default))
}

/// `path` if it is a file, else an error naming the command that builds it.
fn require(path: PathBuf, build: &str) -> Result<PathBuf> {
    if !path.is_file() {
        bail!(
            "{} is missing: build it with {build} (or `make tools`; `make test` does both)",
            path.display()
        );
    }
    Ok(path)
}

/// Where the control-plane binaries are.
#[derive(Clone, Debug)]
pub struct Tools {
    pub kube_bin_dir: PathBuf,
    pub etcd_bin_dir: PathBuf,
}

impl Tools {
    /// `KUBE_BIN_DIR` / `ETCD_BIN_DIR` (as `hack/tools.sh --env` exports them) or the default
    /// cache; an error naming the fix when a binary is missing.
    pub fn from_env() -> Result<Tools> {
        let tools = Tools {
            kube_bin_dir: dir_from_env("KUBE_BIN_DIR", "k8s/v1.37.2"),
            etcd_bin_dir: dir_from_env("ETCD_BIN_DIR", "etcd/v3.7.3"),
        };
        require(
            tools.kube_bin_dir.join("kube-apiserver"),
            "hack/k8s-bins/build.sh",
        )?;
        require(tools.etcd_bin_dir.join("etcd"), "hack/etcd/build.sh")?;
        Ok(tools)
    }

    pub fn kubectl(&self) -> PathBuf {
        self.kube_bin_dir.join("kubectl")
    }
}

/// helm from `HELM_BIN_DIR` (set by `make test`) or the cache `hack/helm/build.sh` fills.
pub fn helm() -> Result<PathBuf> {
    require(
        dir_from_env("HELM_BIN_DIR", "helm/v4.3.1").join("helm"),
        "hack/helm/build.sh",
    )
}

/// promtool from `PROMTOOL_BIN_DIR` (set by `make test`) or the cache `hack/promtool/build.sh`
/// fills.
pub fn promtool() -> Result<PathBuf> {
    require(
        dir_from_env("PROMTOOL_BIN_DIR", "promtool/v0.316.0").join("promtool"),
        "hack/promtool/build.sh",
    )
}

/// The Prometheus Operator's CRD of `plural` (`servicemonitors`, `prometheusrules`) from
/// `PROMETHEUS_CRDS_DIR` (set by `make test`) or the cache `hack/prometheus-crds/build.sh` fills.
pub fn prometheus_crd(plural: &str) -> Result<PathBuf> {
    require(
        dir_from_env("PROMETHEUS_CRDS_DIR", "prometheus-crds/v0.95.2")
            .join(format!("monitoring.coreos.com_{plural}.yaml")),
        "hack/prometheus-crds/build.sh",
    )
}

/// The Python with the official SDKs (`SDK_PYTHON`, from `hack/python-venv.sh`).
pub fn sdk_python() -> Result<PathBuf> {
    match std::env::var_os("SDK_PYTHON") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        _ => bail!(
            "SDK_PYTHON is not set: run `export SDK_PYTHON=$(hack/python-venv.sh)` \
             (make test does this)"
        ),
    }
}

/// The programs a run starts, and the repository they come from.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub operator: PathBuf,
    pub emulator: PathBuf,
    /// The repository (hack/cluster.sh, crds/).
    pub repo: PathBuf,
    pub tools: Tools,
}

impl Binaries {
    /// The workspace's programs in the cargo target directory this process was built into
    /// (`VPN_PBR_OPERATOR_BIN` / `VPC_EMULATOR_BIN` override), and the tools from the env.
    pub fn locate() -> Result<Binaries> {
        let dir = target_dir()?;
        let bin = |var: &str, name: &str| {
            let path = std::env::var_os(var).map_or_else(|| dir.join(name), PathBuf::from);
            require(path, "`cargo build --bins`")
        };
        Ok(Binaries {
            operator: bin("VPN_PBR_OPERATOR_BIN", "vpn-pbr-operator")?,
            emulator: bin("VPC_EMULATOR_BIN", "vpc-emulator")?,
            repo: repo_root(),
            tools: Tools::from_env()?,
        })
    }
}

/// `target/<profile>` of the running executable: binaries sit there, test executables in
/// its `deps/`.
fn target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    Ok(dir)
}
