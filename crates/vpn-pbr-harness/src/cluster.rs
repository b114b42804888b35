//! A local control plane: `hack/cluster.sh` (the script behind `make cluster-up`) in a
//! temporary directory, owned by this process (its watchdog stops etcd and kube-apiserver and
//! removes the directory when the process is gone, also after a panic or a signal). Also the
//! things every user of a plane needs: clients, service-account tokens, namespaces, the CRD.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};

use crate::tools::{Tools, repo_root};

/// A running etcd + kube-apiserver.
pub struct ControlPlane {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    repo: PathBuf,
}

impl ControlPlane {
    /// Starts a plane in `dir` (created by the script, removed when this process exits).
    pub fn start(repo: &Path, tools: &Tools, dir: &Path) -> Result<ControlPlane> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let out = Command::new(repo.join("hack/cluster.sh"))
            .args([
                "up",
                "--no-build",
                "--owner-pid",
                &std::process::id().to_string(),
                "--dir",
            ])
            .arg(dir)
            .env("KUBE_BIN_DIR", &tools.kube_bin_dir)
            .env("ETCD_BIN_DIR", &tools.etcd_bin_dir)
            .output()
            .context("run hack/cluster.sh")?;
        if !out.status.success() {
            bail!(
                "hack/cluster.sh up failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(ControlPlane {
            kubeconfig: dir.join("admin.kubeconfig"),
            dir: dir.to_owned(),
            repo: repo.to_owned(),
        })
    }

    /// A plane in a fresh directory under the system temp dir, with the repository's script
    /// and the tools from the environment.
    pub fn start_default() -> Result<ControlPlane> {
        let dir = std::env::temp_dir().join(format!("vpn-pbr-cp-{}", std::process::id()));
        ControlPlane::start(&repo_root(), &Tools::from_env()?, &dir)
    }

    /// An admin client (system:masters).
    pub async fn client(&self) -> Result<Client> {
        let kc = Kubeconfig::read_from(&self.kubeconfig)?;
        client_from(kc).await
    }

    /// Path of the apiserver's audit log (service-account requests, metadata level).
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    /// A kubeconfig that authenticates with `token` against this plane.
    pub fn token_kubeconfig(&self, token: &str) -> Result<Kubeconfig> {
        let mut kc = Kubeconfig::read_from(&self.kubeconfig)?;
        for auth in &mut kc.auth_infos {
            if let Some(info) = auth.auth_info.as_mut() {
                info.client_certificate_data = None;
                info.client_key_data = None;
                info.token = Some(token.to_owned().into());
            }
        }
        Ok(kc)
    }

    /// Creates ServiceAccount `ns/name` (if missing) and mints a token for it.
    pub async fn service_account_token(
        &self,
        admin: &Client,
        ns: &str,
        name: &str,
    ) -> Result<String> {
        let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
        let sa: ServiceAccount = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name}
        }))?;
        match sas.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e).context("create service account"),
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
            .context("token request")?;
        tr.status
            .and_then(|s| s.token)
            .ok_or_else(|| anyhow!("no token in the TokenRequest status"))
    }

    /// A client authenticating as ServiceAccount `ns/name` (created if missing).
    pub async fn service_account_client(
        &self,
        admin: &Client,
        ns: &str,
        name: &str,
    ) -> Result<Client> {
        let token = self.service_account_token(admin, ns, name).await?;
        client_from(self.token_kubeconfig(&token)?).await
    }

    /// The apiserver's log (appended to across restarts).
    pub fn apiserver_log(&self) -> PathBuf {
        self.dir.join("apiserver.log")
    }

    /// Stops kube-apiserver (SIGTERM, SIGKILL after 10 s) and starts it again with the same
    /// command line; waits until it answers (at most 90 s). etcd keeps running.
    pub async fn restart_apiserver(&self, client: &Client) -> Result<Duration> {
        let started = std::time::Instant::now();
        let pid_file = self.dir.join("apiserver.pid");
        let pid = std::fs::read_to_string(&pid_file)?.trim().to_owned();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .with_context(|| format!("read the command line of apiserver {pid}"))?;
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        if args.is_empty() {
            bail!("empty apiserver command line");
        }
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        for _ in 0..100 {
            if !proc_dir.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if proc_dir.exists() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // Detached like hack/cluster.sh starts it, so the watchdog finds it by its pid file.
        let out = Command::new("bash")
            .arg("-c")
            .arg(r#"setsid "$@" </dev/null >>"$APISERVER_LOG" 2>&1 & echo $!"#)
            .arg("bash")
            .args(&args)
            .env("APISERVER_LOG", self.apiserver_log())
            .output()
            .context("restart kube-apiserver")?;
        let new_pid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if new_pid.is_empty() {
            bail!("no pid for the restarted apiserver");
        }
        std::fs::write(&pid_file, format!("{new_pid}\n"))?;
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            if client.apiserver_version().await.is_ok() {
                return Ok(started.elapsed());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "kube-apiserver did not come back within 90 s; see {}",
                    self.apiserver_log().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(self.repo.join("hack/cluster.sh"))
            .args(["down", "--dir"])
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client of the kubeconfig `kc` (its current context).
pub(crate) async fn client_from(kc: Kubeconfig) -> Result<Client> {
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Creates a fresh namespace named after `prefix` (unique in this process).
pub async fn namespace(client: &Client, prefix: &str) -> Result<String> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "{}-{}-{}",
        prefix.replace('_', "-"),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    create_namespace(client, &name)
        .await
        .with_context(|| format!("create namespace {name}"))?;
    Ok(name)
}

/// Creates namespace `name`.
pub(crate) async fn create_namespace(client: &Client, name: &str) -> Result<()> {
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await?;
    Ok(())
}

/// Installs every committed CRD of `repo` (`crds/*.yaml`, server-side apply) and waits until
/// each is Established.
pub async fn install_crd(client: &Client, repo: &Path) -> Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(repo.join("crds"))
        .context("list crds/")?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    files.sort();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "yaml"))
    {
        let yaml = std::fs::read_to_string(file).context("read a CRD")?;
        let crd: CustomResourceDefinition = serde_saphyr::from_str(&yaml)?;
        let name = crd.metadata.name.clone().context("a CRD without a name")?;
        api.patch(
            &name,
            &PatchParams::apply("vpn-pbr-harness").force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("apply the CRD {name}"))?;
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .map_err(|_| anyhow!("CRD {name} not established within 30 s"))??;
    }
    Ok(())
}
