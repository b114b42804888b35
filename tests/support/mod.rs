//! Shared test harness: one real etcd + kube-apiserver per test binary, a namespace per test.
//!
//! The control plane is started by `hack/cluster.sh` (the same script as `make cluster-up`) in a
//! temporary directory, with this process as owner: its watchdog stops the plane and removes the
//! directory when the test binary exits, also after a panic or a signal. Binaries come from
//! `KUBE_BIN_DIR` / `ETCD_BIN_DIR` (set by `make test`) or the default cache; when they are
//! missing the tests fail and say how to build them.
#![allow(dead_code)]

pub mod cmd;
pub mod emulator;
pub mod operator;
pub mod routes;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};

pub struct ControlPlane {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn cache_dir() -> PathBuf {
    std::env::var_os("VPN_PBR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/vpn-pbr-operator")
        })
}

/// Directory holding kube-apiserver and kubectl.
pub fn kube_bin_dir() -> PathBuf {
    std::env::var_os("KUBE_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("k8s/v1.37.2"))
}

fn etcd_bin_dir() -> PathBuf {
    std::env::var_os("ETCD_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("etcd/v3.7.3"))
}

pub fn kubectl() -> PathBuf {
    kube_bin_dir().join("kubectl")
}

fn require(path: &Path) {
    assert!(
        path.is_file(),
        "{} is missing: build the control-plane binaries with `make tools` \
         (hack/k8s-bins/build.sh and hack/etcd/build.sh) or run the tests with `make test`",
        path.display()
    );
}

impl ControlPlane {
    /// The control plane of this test binary, started on first use.
    pub fn shared() -> &'static ControlPlane {
        static PLANE: OnceLock<ControlPlane> = OnceLock::new();
        PLANE.get_or_init(ControlPlane::start)
    }

    fn start() -> ControlPlane {
        let _ = rustls::crypto::ring::default_provider().install_default();
        require(&kube_bin_dir().join("kube-apiserver"));
        require(&etcd_bin_dir().join("etcd"));
        let dir = std::env::temp_dir().join(format!("vpn-pbr-cp-{}", std::process::id()));
        let out = Command::new(repo_root().join("hack/cluster.sh"))
            .args([
                "up",
                "--no-build",
                "--owner-pid",
                &std::process::id().to_string(),
                "--dir",
            ])
            .arg(&dir)
            .env("KUBE_BIN_DIR", kube_bin_dir())
            .env("ETCD_BIN_DIR", etcd_bin_dir())
            .output()
            .expect("run hack/cluster.sh");
        assert!(
            out.status.success(),
            "hack/cluster.sh up failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ControlPlane {
            kubeconfig: dir.join("admin.kubeconfig"),
            dir,
        }
    }

    /// An admin client (system:masters).
    pub async fn client(&self) -> Client {
        let kc = Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("kubeconfig");
        Client::try_from(config).expect("client")
    }

    /// Path of the apiserver's audit log (service-account requests, metadata level).
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    /// A kubeconfig that authenticates with `token` against this plane.
    pub fn token_kubeconfig(&self, token: &str) -> Kubeconfig {
        let mut kc = Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        for auth in &mut kc.auth_infos {
            if let Some(info) = auth.auth_info.as_mut() {
                info.client_certificate_data = None;
                info.client_key_data = None;
                info.token = Some(token.to_owned().into());
            }
        }
        kc
    }

    /// Creates a ServiceAccount in `ns` and returns a token minted for it with the TokenRequest API.
    pub async fn service_account_token(&self, admin: &Client, ns: &str, name: &str) -> String {
        let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
        let sa: ServiceAccount = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name}
        }))
        .expect("sa");
        match sas.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("create service account: {e}"),
        }
        let req = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(3600),
                ..Default::default()
            }),
            ..Default::default()
        };
        let tr = sas
            .create_token_request(name, &PostParams::default(), &req)
            .await
            .expect("token request");
        tr.status.and_then(|s| s.token).expect("token in status")
    }

    /// A client authenticating as ServiceAccount `ns/name` (created if missing).
    pub async fn service_account_client(&self, admin: &Client, ns: &str, name: &str) -> Client {
        let token = self.service_account_token(admin, ns, name).await;
        let config = Config::from_custom_kubeconfig(
            self.token_kubeconfig(&token),
            &KubeConfigOptions::default(),
        )
        .await
        .expect("token kubeconfig");
        Client::try_from(config).expect("client")
    }
}

/// Creates a fresh namespace named after the test.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{}-{}-{}",
        prefix.replace('_', "-"),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("ns");
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    name
}

/// Installs the committed CRD (server-side apply) and waits until it is Established.
pub async fn install_crd(client: &Client) {
    let yaml = std::fs::read_to_string(repo_root().join("crds/vpnpbrroutes.vpn.alicloud.dev.yaml"))
        .expect("read CRD");
    let crd: CustomResourceDefinition = serde_yaml::from_str(&yaml).expect("parse CRD");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = "vpnpbrroutes.vpn.alicloud.dev";
    api.patch(
        name,
        &PatchParams::apply("vpn-pbr-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply CRD");
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(api, name, conditions::is_crd_established()),
    )
    .await
    .expect("CRD established in time")
    .expect("watch CRD");
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
