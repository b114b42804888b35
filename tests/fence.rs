//! Leader fencing with real processes: two operators with leader election share one gateway's
//! work. The leader reaches the apiserver and the cloud through TCP proxies of this test; the
//! proxy to the apiserver is cut while the leader still has a long queue of creates for the
//! gateway. The leader cannot renew its Lease any more and never learns that it lost it; the
//! fence (`src/fence.rs`) must stop its cloud changes before the other replica takes the Lease
//! over, so the two never send changes for the gateway at the same time, and every route ends up
//! created exactly once.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use support::emulator::{EntryKey, two_gateway_config_yaml};
use support::route::{route_object, spec};
use support::{
    Operator, OperatorOptions, eventually, operator_binary, plane, ready_is, start_emulator,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use vpn_pbr_operator::api::v1alpha1::{ConditionStatus, VpnPbrRoute};

const LEASE: &str = "fence-test";
const ROUTES: usize = 16;
const UPDATE_MS: u64 = 1500;
/// The operator's lease duration (`src/app.rs`).
const LEASE_DURATION: Duration = Duration::from_secs(15);

/// A TCP proxy to `127.0.0.1:<target>` that can be cut (listener and every connection closed at
/// once) and records the `Action=` of each request it forwards, with the time it left.
struct Proxy {
    port: u16,
    cut: CancellationToken,
    actions: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Proxy {
    async fn start(target: u16) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let cut = CancellationToken::new();
        let actions = Arc::new(Mutex::new(Vec::new()));
        let (c, a) = (cut.clone(), actions.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = c.cancelled() => return,
                    r = listener.accept() => r,
                };
                let Ok((client, _)) = accepted else { continue };
                let (c, a) = (c.clone(), a.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    tokio::select! {
                        () = c.cancelled() => {}
                        () = pipe(client, server, a) => {}
                    }
                });
            }
        });
        Ok(Proxy { port, cut, actions })
    }

    /// Mutations (actions other than reads) and when they left, in order.
    fn mutations(&self) -> Vec<(Instant, String)> {
        self.actions
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, a)| !a.starts_with("Describe"))
            .cloned()
            .collect()
    }
}

async fn pipe(client: TcpStream, server: TcpStream, actions: Arc<Mutex<Vec<(Instant, String)>>>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async move {
        let mut buf = vec![0u8; 16 * 1024];
        // The end of the previous read, so a name split across reads is still found.
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut seen = std::mem::take(&mut tail);
            let start = seen.len();
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).into_owned();
            let mut from = 0;
            while let Some(i) = text[from..].find("Action=") {
                let name_at = from + i + "Action=".len();
                let name: String = text[name_at..]
                    .chars()
                    .take_while(char::is_ascii_alphanumeric)
                    .collect();
                // Only names that end inside this read, and start in it or in the tail.
                if name_at + name.len() < text.len() && name_at + name.len() > start {
                    actions.lock().unwrap().push((Instant::now(), name.clone()));
                }
                from = name_at;
            }
            tail = seen[seen.len().saturating_sub(64)..].to_vec();
            if sw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
    };
    tokio::join!(up, down);
}

/// The replica that holds the test's Lease in `ns`.
async fn lease_holder(client: &kube::Client, ns: &str) -> Option<String> {
    support::lease_holder(client, ns, LEASE).await
}

/// The replica `name` (its `POD_NAME`) in leader election for the Lease [`LEASE`] of `ns`,
/// logging to `<name>.log` under `dir`, with `extra` flags.
fn start_replica(
    name: &str,
    kubeconfig: PathBuf,
    ns: &str,
    endpoint: String,
    dir: &Path,
    extra: &[&str],
) -> anyhow::Result<Operator> {
    let election = [
        "--leader-election",
        "--lease-name",
        LEASE,
        "--lease-namespace",
        ns,
    ];
    Operator::start(OperatorOptions {
        bin: operator_binary(),
        kubeconfig,
        namespace: ns.to_owned(),
        endpoint,
        log: dir.join(format!("{name}.log")),
        args: election
            .iter()
            .chain(extra)
            .map(|s| (*s).to_owned())
            .collect(),
        envs: vec![("POD_NAME".to_owned(), name.to_owned())],
    })
}

/// Waits until the replica `name` holds the Lease.
async fn wait_holder(client: &kube::Client, ns: &str, name: &str) -> anyhow::Result<()> {
    eventually(
        Duration::from_secs(60),
        &format!("{name} holds the lease"),
        || async { (lease_holder(client, ns).await.as_deref() == Some(name)).then_some(()) },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_apiserver_stops_its_cloud_changes_before_the_takeover()
-> anyhow::Result<()> {
    let cp = plane();
    let (client, ns) = support::setup("fence").await?;
    let dir = tempfile::tempdir()?;
    let emu = start_emulator(&two_gateway_config_yaml(UPDATE_MS, ""), dir.path());
    let emu_port: u16 = emu
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("emulator port");
    let api_port: u16 = {
        let kc = kube::config::Kubeconfig::read_from(&cp.kubeconfig)?;
        let server = kc.clusters[0]
            .cluster
            .as_ref()
            .and_then(|c| c.server.clone())
            .expect("server");
        server.rsplit(':').next().expect("port").parse()?
    };

    // Replica A: apiserver and cloud through proxies. Replica B: its own cloud proxy.
    let a_api = Proxy::start(api_port).await?;
    let a_cloud = Proxy::start(emu_port).await?;
    let b_cloud = Proxy::start(emu_port).await?;
    let mut kc = kube::config::Kubeconfig::read_from(&cp.kubeconfig)?;
    for c in &mut kc.clusters {
        if let Some(cluster) = c.cluster.as_mut() {
            cluster.server = Some(format!("https://127.0.0.1:{}", a_api.port));
        }
    }
    let a_kubeconfig = dir.path().join("a.kubeconfig");
    std::fs::write(&a_kubeconfig, serde_saphyr::to_string(&kc)?)?;
    let start = |name: &str, kubeconfig: PathBuf, cloud: u16| {
        let endpoint = format!("http://127.0.0.1:{cloud}");
        let extra = ["--log-level", "info,vpn_pbr_operator=debug"];
        start_replica(name, kubeconfig, &ns, endpoint, dir.path(), &extra)
    };
    let mut a = start("op-a", a_kubeconfig, a_cloud.port)?;
    let log_of = |name: &str| {
        std::fs::read_to_string(dir.path().join(format!("{name}.log"))).unwrap_or_default()
    };
    wait_holder(&client, &ns, "op-a").await?;
    let mut b = start("op-b", cp.kubeconfig.clone(), b_cloud.port)?;

    // Work for about ROUTES * UPDATE_MS on one gateway: longer than the lease.
    let routes: Api<VpnPbrRoute> = Api::namespaced(client.clone(), &ns);
    for i in 0..ROUTES {
        let (src, dst) = (format!("192.168.{i}.0/24"), format!("10.{i}.0.0/16"));
        let r = route_object(
            &format!("r{i}"),
            spec("vpn-gw-a", &src, &dst, "vco-gw-a-1", 100),
        );
        routes.create(&PostParams::default(), &r).await?;
    }
    eventually(
        Duration::from_secs(60),
        "op-a sends its first creates",
        || async { (a_cloud.mutations().len() >= 2).then_some(()) },
    )
    .await?;

    // A loses the apiserver.
    let cut_at = Instant::now();
    a_api.cut.cancel();
    let took_over = eventually(Duration::from_secs(60), "op-b takes the lease", || async {
        (lease_holder(&client, &ns).await.as_deref() == Some("op-b")).then_some(Instant::now())
    })
    .await?;
    eventually(Duration::from_secs(120), "every route Ready", || async {
        let list = routes.list(&ListParams::default()).await.ok()?.items;
        (list.len() == ROUTES
            && list
                .iter()
                .all(|r| ready_is(r, ConditionStatus::True, None)))
        .then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- op-b ---\n{}", log_of("op-b")))?;

    let a_sent = a_cloud.mutations();
    let b_sent = b_cloud.mutations();
    let a_last = a_sent.last().expect("op-a sent creates").0;
    let b_first = b_sent.first().expect("op-b sent creates").0;
    let secs = |t: Instant| t.saturating_duration_since(cut_at).as_secs_f64() as f32;
    let report = format!(
        "cut at 0 s; op-a sent {} changes, the last at {:.1} s; op-b took the lease at {:.1} s and sent {} changes from {:.1} s",
        a_sent.len(),
        secs(a_last),
        secs(took_over),
        b_sent.len(),
        secs(b_first)
    );
    let mut by_action = std::collections::BTreeMap::<&str, usize>::new();
    for (_, action) in &b_sent {
        *by_action.entry(action.as_str()).or_default() += 1;
    }
    eprintln!("{report}; op-b by action: {by_action:?}");
    // op-b had creates to send: op-a still had work queued when its fence closed.
    assert!(
        b_sent.iter().any(|(_, a)| a == "CreateVpnPbrRouteEntry"),
        "op-a still had creates queued when it was cut off: {report}"
    );
    assert!(
        a_last < b_first,
        "the two replicas sent changes at the same time: {report}"
    );
    assert!(
        a_last < cut_at + LEASE_DURATION,
        "op-a stopped before its lease could have expired: {report}"
    );
    let a_log = log_of("op-a");
    assert!(
        a_log.contains("fence closed"),
        "op-a logged its fence closing: {report}\n--- op-a (last 40 lines) ---\n{}",
        a_log
            .lines()
            .rev()
            .take(40)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Every route created exactly once, whoever sent it.
    for i in 0..ROUTES {
        let (src, dst) = (format!("192.168.{i}.0/24"), format!("10.{i}.0.0/16"));
        let key = EntryKey {
            source: &src,
            dest: &dst,
            next_hop: "vco-gw-a-1",
        };
        assert_eq!(
            emu.accepted_creates("vpn-gw-a", &key).await?,
            1,
            "r{i} created once: {report}"
        );
    }
    a.kill();
    b.terminate();
    Ok(())
}

/// A leader stopped (SIGTERM) while a create it sent is still waiting for its answer, past the
/// shutdown timeout: that request may still land, so the leader leaves its Lease to expire
/// instead of releasing it (a standby taking a released Lease at once could send meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_stopped_with_a_request_in_flight_leaves_its_lease_to_expire() -> anyhow::Result<()>
{
    let cp = plane();
    let (client, ns) = support::setup("fence-exit").await?;
    let dir = tempfile::tempdir()?;
    let emu = start_emulator(&two_gateway_config_yaml(UPDATE_MS, ""), dir.path());
    // Every create is answered after 12 s (below the client's read timeout).
    emu.set_faults(&json!({"rate_limit_per_second": null, "rules": [
        {"action": "CreateVpnPbrRouteEntry", "rate": 1.0, "kind": "slow", "delay_ms": 12_000}
    ]}))
    .await?;
    let mut op = start_replica(
        "op-exit",
        cp.kubeconfig.clone(),
        &ns,
        emu.url.clone(),
        dir.path(),
        &["--shutdown-timeout", "1s"],
    )?;
    wait_holder(&client, &ns, "op-exit").await?;
    let slow = spec(
        "vpn-gw-a",
        "192.168.1.0/24",
        "10.1.0.0/16",
        "vco-gw-a-1",
        100,
    );
    let r = route_object("slow", slow);
    let routes = Api::<VpnPbrRoute>::namespaced(client.clone(), &ns);
    routes.create(&PostParams::default(), &r).await?;
    // The route is taken (finalizer) and its create token stored before the create leaves; the
    // gateway is idle, so it leaves at once and waits 12 s for its answer.
    eventually(Duration::from_secs(30), "the route taken", || async {
        let r = routes.get("slow").await.ok()?;
        r.metadata
            .finalizers
            .is_some_and(|f| !f.is_empty())
            .then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    op.terminate();
    let holder = lease_holder(&client, &ns).await;
    assert_eq!(
        holder.as_deref(),
        Some("op-exit"),
        "the Lease was released although a create may still land; log:\n{}",
        op.logs()
    );
    assert!(
        op.logs().contains("left to expire"),
        "the operator says why it kept the Lease:\n{}",
        op.logs()
    );
    Ok(())
}
