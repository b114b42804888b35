//! RBAC proof for the Helm chart: the chart's ServiceAccount, ClusterRole(Binding) and
//! leases Role(Binding) are rendered with helm and applied to the real kube-apiserver, a token is
//! minted for that ServiceAccount, and the real operator binary runs with it and with the
//! environment the chart's Deployment sets (taken from the rendered Deployment itself, so flags
//! and RBAC cannot drift apart). It then drives a whole route lifecycle (create, update of weight,
//! priority and publishing, a route with `credentialsRef`, delete) against `vpc-emulator`, stops
//! the operator cleanly and asserts that the apiserver's audit log has requests from that
//! ServiceAccount and not a single HTTP 403 among them.
//!
//! The Deployment is never run (the control plane has no nodes); only the RBAC kinds are applied.
//! helm comes from `HELM_BIN_DIR` (exported by `make test`) or the cache that
//! `hack/helm/build.sh` fills; when it is missing the test fails and says how to build it.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::command::run_ok;
use support::emulator;
use support::route::{create_key_secret, ready_observing, route_object};
use support::{
    Alone, Emulator, chart_dir, operator_binary, plane, ready_is, start_emulator, wait_gone,
    wait_route,
};
use vpn_pbr_harness::operator::free_port;
use vpn_pbr_harness::{Tools, tools};
use vpn_pbr_operator::api::v1alpha1::{ConditionStatus, VpnPbrRoute};

const WAIT: Duration = Duration::from_secs(90);
/// The kinds applied from the rendered chart; everything else (Deployment, Service, ...) is not.
const RBAC_KINDS: [&str; 5] = [
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];
/// A second access key known to the emulator, used only through the route's Secret.
const SECRET_KEY: (&str, &str) = ("LTAI-route-secret-key", "route-secret-value");

/// The chart's optional RBAC: the Lease of leader election, and Secret access for route Secrets.
const LEADER_ELECTION: &str = "leaderElection.enabled=true";
const ROUTE_SECRETS: &str = "routeSecrets.enabled=true";
/// One watched namespace, the routes' (`{routes_ns}`, see [`Scenario::start`]).
const WATCH_ROUTES_NS: &str = "watchNamespaces={{routes_ns}}";
/// Secrets readable in the routes' namespace only (the chart never grants them cluster-wide).
const SECRETS_IN_ROUTES_NS: &str = "secretNamespaces={{routes_ns}}";
/// Every optional RBAC of the chart, all namespaces watched.
const FULL: [&str; 3] = [LEADER_ELECTION, ROUTE_SECRETS, SECRETS_IN_ROUTES_NS];
/// Route Secrets with one watched namespace.
const WATCHED: [&str; 3] = [ROUTE_SECRETS, WATCH_ROUTES_NS, SECRETS_IN_ROUTES_NS];

/// Scenarios watching all namespaces (the chart's default) must not run at once: each scenario
/// holds this from [`Scenario::start`] until it is dropped.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The chart rendered into release namespace `ns`, one document per object.
fn render(release: &str, ns: &str, set: &[String]) -> anyhow::Result<Vec<Value>> {
    let mut cmd = Command::new(tools::helm()?);
    cmd.args(["template", release])
        .arg(chart_dir())
        .args(["--namespace", ns]);
    for s in set {
        cmd.args(["--set", s]);
    }
    let yaml = run_ok(&mut cmd, None)?;
    // Empty documents (templates that render nothing) are left out.
    Ok(serde_saphyr::from_multiple(&yaml).expect("rendered YAML"))
}

fn kind_of(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

/// The operator started from the rendered Deployment's container environment.
struct ChartOperator {
    child: Option<Child>,
    log: PathBuf,
}

impl ChartOperator {
    fn start(
        deployment: &Value,
        kubeconfig: &Path,
        ns: &str,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let mut cmd = Command::new(operator_binary());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KUBECONFIG", kubeconfig);
        for var in container["env"].as_array().expect("container env") {
            let name = var["name"].as_str().expect("env name");
            if let Some(v) = var["value"].as_str() {
                cmd.env(name, v);
            } else if let Some(path) = var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                // What the kubelet would resolve for the pod.
                let v = match path {
                    "metadata.namespace" => ns.to_owned(),
                    "metadata.name" => format!(
                        "{}-0",
                        deployment["metadata"]["name"].as_str().unwrap_or("op")
                    ),
                    other => panic!("unexpected fieldRef {other} in the chart's Deployment"),
                };
                cmd.env(name, v);
            } else {
                panic!("env {name}: the test does not know how to resolve {var:?}");
            }
        }
        // The pod listens on 0.0.0.0:<port>; here a free loopback port.
        cmd.env(
            "VPN_PBR_METRICS_ADDR",
            format!("127.0.0.1:{}", free_port()?),
        );
        // The emulator's key as the operator's default credentials (the chart's
        // credentials.existingSecret would put the same variables there).
        cmd.env("ALIBABA_CLOUD_ACCESS_KEY_ID", emulator::KEY_ID)
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", emulator::KEY_SECRET);
        if let Some(args) = container["args"].as_array() {
            cmd.args(args.iter().map(|a| a.as_str().expect("arg")));
        }
        let file = std::fs::File::create(&log).expect("operator log");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start vpn-pbr-operator");
        Ok(Self {
            child: Some(child),
            log,
        })
    }

    fn logs(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// SIGTERM and wait, so the shutdown's requests (lease release) are in the audit log too.
    fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let status = c.wait().expect("wait operator");
            assert!(
                status.success(),
                "operator exit {status:?}\n{}",
                self.logs()
            );
        }
    }
}

impl Drop for ChartOperator {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Scenario {
    client: Client,
    routes: Api<VpnPbrRoute>,
    emu: Emulator,
    op: ChartOperator,
    /// `system:serviceaccount:<release ns>:<sa>`
    user: String,
    /// The namespace the routes are created in.
    routes_ns: String,
    /// The emulator's config and log, the operator's kubeconfig and log, and the lock of
    /// [`SERIAL`]: held until the scenario's processes are gone.
    _alone: Alone,
}

impl Scenario {
    /// Renders the chart with `values` (plus the emulator endpoint), applies its RBAC objects in
    /// a fresh release namespace and starts the operator as its ServiceAccount, once no other
    /// scenario runs.
    async fn start(prefix: &str, values: &[&str]) -> anyhow::Result<Scenario> {
        let alone = Alone::start(&SERIAL).await?;
        let cp = plane();
        let (client, release_ns, routes_ns) =
            support::setup_two(prefix, "release", "routes").await?;
        let (key_id, key_secret) = SECRET_KEY;
        let extra_key = format!("  - id: {key_id}\n    secret: {key_secret}\n");
        let emu = start_emulator(
            &emulator::two_gateway_config_yaml(200, &extra_key),
            alone.path(),
        );
        // ClusterRoles are cluster-scoped: a release name per scenario keeps them apart.
        let release = release_ns.clone();
        // `{routes_ns}` in a value stands for the namespace the routes are created in.
        let mut set: Vec<String> = values
            .iter()
            .map(|s| s.replace("{routes_ns}", &routes_ns))
            .collect();
        set.push(format!("endpoint={}", emu.url));
        set.push("logLevel=info\\,vpn_pbr_operator=debug".to_owned());
        let docs = render(&release, &release_ns, &set)?;
        let rbac: Vec<&Value> = docs
            .iter()
            .filter(|d| RBAC_KINDS.contains(&kind_of(d)))
            .collect();
        let yaml: String = rbac
            .iter()
            .map(|d| format!("---\n{}", serde_saphyr::to_string(d).expect("yaml")))
            .collect();
        run_ok(
            Command::new(Tools::from_env()?.kubectl())
                .arg("--kubeconfig")
                .arg(&cp.kubeconfig)
                .args([
                    "apply",
                    "--server-side",
                    "--field-manager=rbac-test",
                    "-f",
                    "-",
                ]),
            Some(&yaml),
        )?;
        let sa = rbac
            .iter()
            .find(|d| kind_of(d) == "ServiceAccount")
            .and_then(|d| d["metadata"]["name"].as_str())
            .expect("the chart renders a ServiceAccount")
            .to_owned();
        let deployment = docs
            .iter()
            .find(|d| kind_of(d) == "Deployment")
            .expect("the chart renders a Deployment");
        let token = cp.service_account_token(&client, &release_ns, &sa).await?;
        let kubeconfig = alone.path().join("operator.kubeconfig");
        std::fs::write(
            &kubeconfig,
            serde_saphyr::to_string(&cp.token_kubeconfig(&token)?).expect("kubeconfig yaml"),
        )
        .expect("write kubeconfig");
        let op = ChartOperator::start(
            deployment,
            &kubeconfig,
            &release_ns,
            alone.path().join("operator.log"),
        )?;
        Ok(Scenario {
            routes: Api::namespaced(client.clone(), &routes_ns),
            client,
            emu,
            op,
            user: format!("system:serviceaccount:{release_ns}:{sa}"),
            routes_ns,
            _alone: alone,
        })
    }

    /// Whether the apiserver lets the operator's ServiceAccount `get` Secrets in `ns`.
    async fn can_get_secrets(&self, ns: &str) -> anyhow::Result<bool> {
        let review: SubjectAccessReview = serde_json::from_value(json!({
            "spec": {
                "user": self.user,
                "groups": ["system:serviceaccounts", "system:authenticated"],
                "resourceAttributes": {"namespace": ns, "verb": "get", "resource": "secrets"}
            }
        }))?;
        let answer = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }

    async fn create(&self, name: &str, spec: Value) {
        self.routes
            .create(&PostParams::default(), &route_object(name, spec))
            .await
            .expect("create route");
    }

    async fn wait_for(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&VpnPbrRoute) -> bool,
    ) -> anyhow::Result<VpnPbrRoute> {
        wait_route(&self.routes, name, what, WAIT, check, || self.op.logs()).await
    }

    async fn ready(&self, name: &str) -> anyhow::Result<VpnPbrRoute> {
        self.wait_for(name, "Ready=True", |r| {
            ready_is(r, ConditionStatus::True, None)
        })
        .await
    }

    /// The Secret `cloud-keys` with a key the operator itself does not have, and the route
    /// `name` signed with it, Ready.
    async fn secret_route_ready(
        &self,
        name: &str,
        src: &str,
        dst: &str,
        hop: &str,
    ) -> anyhow::Result<VpnPbrRoute> {
        create_key_secret(
            &self.client,
            &self.routes_ns,
            "cloud-keys",
            SECRET_KEY.0,
            SECRET_KEY.1,
        )
        .await;
        self.create(name, with_secret(src, dst, hop)).await;
        self.ready(name).await
    }

    /// A merge patch of the route's spec; `what` names it in the panic when refused.
    async fn patch_spec(&self, name: &str, spec: Value, what: &str) {
        self.routes
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "spec": spec })),
            )
            .await
            .expect(what);
    }

    /// Deletes the routes `names` and checks that their entries went with them, that the route
    /// Secret was read exactly when `secret_read`, and then [`Scenario::assert_no_forbidden`].
    async fn delete_and_check(self, names: &[&str], secret_read: bool) -> anyhow::Result<()> {
        for name in names {
            self.delete_and_wait(name).await?;
        }
        assert!(
            self.emu.gateway_entries("vpn-gw-a").await?.is_empty(),
            "entries deleted"
        );
        if secret_read {
            assert!(
                audit_has(&self.user, "get", "secrets"),
                "the route Secret was read"
            );
        } else {
            assert!(
                !audit_has(&self.user, "get", "secrets"),
                "with routeSecrets off the operator must not try to read Secrets"
            );
        }
        self.assert_no_forbidden().await;
        Ok(())
    }

    async fn delete_and_wait(&self, name: &str) -> anyhow::Result<()> {
        self.routes
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete route");
        wait_gone(&self.routes, name, WAIT).await
    }

    /// Stops the operator and checks the audit log: requests from the ServiceAccount, no 403.
    async fn assert_no_forbidden(mut self) {
        self.op.terminate();
        let audit = plane().audit_log();
        // The log backend writes synchronously, but give a straggler a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let text = std::fs::read_to_string(&audit)
            .unwrap_or_else(|e| panic!("read audit log {}: {e}", audit.display()));
        let mine: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["user"]["username"] == self.user.as_str())
            .collect();
        let describe = |e: &Value| {
            format!(
                "{} {} {}",
                e["verb"].as_str().unwrap_or("?"),
                e["requestURI"].as_str().unwrap_or("?"),
                e["responseStatus"]["code"]
            )
        };
        // Not vacuous: the operator really talked to the apiserver as this ServiceAccount, and
        // exercised the kinds of request the RBAC is for.
        assert!(
            mine.len() >= 10,
            "only {} audit events from {} in {}: is the audit log recording service accounts?",
            mine.len(),
            self.user,
            audit.display()
        );
        for (verb, resource) in [
            ("list", "vpnpbrroutes"),
            ("watch", "vpnpbrroutes"),
            ("patch", "vpnpbrroutes"),
            ("create", "events"),
            // The check of the installed CRD at start (src/api/compat.rs).
            ("get", "customresourcedefinitions"),
        ] {
            assert!(
                mine.iter().any(|e| e["verb"] == verb
                    && e["objectRef"]["resource"] == resource
                    && e["responseStatus"]["code"]
                        .as_u64()
                        .is_some_and(|c| c < 300)),
                "no successful {verb} {resource} by {} in the audit log",
                self.user
            );
        }
        let forbidden: Vec<String> = mine
            .iter()
            .filter(|e| e["responseStatus"]["code"] == 403)
            .map(describe)
            .collect();
        assert!(
            forbidden.is_empty(),
            "{} requests by {} were forbidden (missing RBAC in the chart):\n{}\n--- operator log ---\n{}",
            forbidden.len(),
            self.user,
            forbidden.join("\n"),
            self.op.logs()
        );
    }
}

/// [`support::route::spec`] on `vpn-gw-a`.
fn spec(src: &str, dst: &str, hop: &str, weight: i32) -> Value {
    support::route::spec("vpn-gw-a", src, dst, hop, weight)
}

/// A route on `vpn-gw-a` of weight 100 signed with the key in the Secret `cloud-keys`.
fn with_secret(src: &str, dst: &str, hop: &str) -> Value {
    let mut spec = spec(src, dst, hop, 100);
    spec["credentialsRef"] = json!({"name": "cloud-keys"});
    spec
}

fn audit_has(user: &str, verb: &str, resource: &str) -> bool {
    let text = std::fs::read_to_string(plane().audit_log()).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|e| {
            e["user"]["username"] == user
                && e["verb"] == verb
                && e["objectRef"]["resource"] == resource
                && e["responseStatus"]["code"]
                    .as_u64()
                    .is_some_and(|c| c < 300)
        })
}

/// Leader election and route Secrets on (the chart's optional RBAC), all namespaces watched,
/// Secrets readable in the routes' namespace through the Role the chart puts there.
#[tokio::test]
async fn chart_rbac_with_leader_election_and_route_secrets_is_enough() -> anyhow::Result<()> {
    let s = Scenario::start("rbac-full", &FULL).await?;

    // Create, then change weight, priority and publishing in place.
    s.create(
        "r1",
        spec("192.168.1.0/24", "10.1.0.0/16", "vco-gw-a-1", 100),
    )
    .await;
    let before = s.ready("r1").await?;
    let gen_ = before.metadata.generation.unwrap_or(1) + 1;
    s.patch_spec(
        "r1",
        json!({"weight": 0, "priority": 30, "publishVpc": true}),
        "patch route",
    )
    .await;
    s.wait_for("r1", "observed weight 0, priority 30, published", |r| {
        ready_observing(r, Some(gen_), |o| {
            o.weight == 0 && o.priority == 30 && o.published
        })
    })
    .await?;

    // A route signed with its own Secret's key (a key the operator itself does not have).
    s.secret_route_ready("r2", "192.168.2.0/24", "10.2.0.0/16", "vco-gw-a-2")
        .await?;
    assert_eq!(s.emu.gateway_entries("vpn-gw-a").await?.len(), 2);
    // Every namespace is watched, yet Secrets are readable only where secretNamespaces says.
    assert!(s.can_get_secrets(&s.routes_ns).await?);
    let release_ns = s
        .user
        .split(':')
        .nth(2)
        .expect("the release namespace")
        .to_owned();
    for elsewhere in [release_ns.as_str(), "default", "kube-system"] {
        assert!(
            !s.can_get_secrets(elsewhere).await?,
            "Secrets readable in {elsewhere}"
        );
    }
    assert!(
        audit_has(&s.user, "create", "leases") || audit_has(&s.user, "patch", "leases"),
        "the lease was taken in the release namespace"
    );
    s.delete_and_check(&["r1", "r2"], true).await
}

/// Route Secrets with one watched namespace: the Secret is read through the Role the chart puts
/// in the namespace of secretNamespaces (the ClusterRole never has Secret access).
#[tokio::test]
async fn chart_rbac_with_a_watched_namespace_and_route_secrets_is_enough() -> anyhow::Result<()> {
    let s = Scenario::start("rbac-watched", &WATCHED).await?;
    s.secret_route_ready("r1", "192.168.5.0/24", "10.5.0.0/16", "vco-gw-a-1")
        .await?;
    s.delete_and_check(&["r1"], true).await
}

/// The chart's defaults: no lease, no Secret access; a route naming a Secret is refused by the
/// operator without it trying to read the Secret.
#[tokio::test]
async fn chart_rbac_with_default_values_is_enough() -> anyhow::Result<()> {
    let s = Scenario::start("rbac-default", &[]).await?;
    s.create(
        "r1",
        spec("192.168.3.0/24", "10.3.0.0/16", "vco-gw-a-1", 100),
    )
    .await;
    s.ready("r1").await?;
    s.patch_spec("r1", json!({"weight": 0}), "patch route")
        .await;
    s.wait_for("r1", "observed weight 0", |r| {
        ready_observing(r, None, |o| o.weight == 0)
    })
    .await?;
    s.create(
        "r2",
        with_secret("192.168.4.0/24", "10.4.0.0/16", "vco-gw-a-2"),
    )
    .await;
    s.wait_for("r2", "Ready=False CredentialsSecretInvalid", |r| {
        ready_is(r, ConditionStatus::False, Some("CredentialsSecretInvalid"))
    })
    .await?;
    // A delete needs working credentials too (the operator cannot know the entry is absent
    // without asking), so drop the reference first; the default credentials then sign.
    s.patch_spec("r2", json!({"credentialsRef": null}), "drop credentialsRef")
        .await;
    s.ready("r2").await?;
    s.delete_and_check(&["r1", "r2"], false).await
}
