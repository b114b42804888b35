//! `vpn-pbr-operator import` and `plan`, the built binary, against the real kube-apiserver and
//! the `vpc-emulator` binary; the routes that exist beforehand are made by the official Tea
//! Python SDK (`tests/python/console_routes.py`), as the console or Terraform would.
//! Needs `SDK_PYTHON` (`make test` exports it).

mod support;

use std::time::Duration;

use kube::api::DeleteParams;
use serde_json::json;
use support::cli::{CliEnv, WAIT, calls, route, spec, write_manifests};
use support::emulator::EntryKey;
use support::{ready_is, wait_gone, wait_route};
use vpn_pbr_operator::api::v1alpha1::{ConditionStatus, VpnPbrRoute};

/// The `import` command line for the entries of both gateways into `ns`, then `extra`.
fn import_both<'a>(ns: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "import",
        "--region",
        "cn-hangzhou",
        "--gateway",
        "vpn-gw-a",
        "--gateway",
        "vpn-gw-b",
        "--namespace",
        ns,
    ];
    args.extend_from_slice(extra);
    args
}

#[tokio::test]
async fn imported_routes_are_adopted_without_a_single_mutation() -> anyhow::Result<()> {
    let mut env = CliEnv::start("import").await?;
    env.console(&json!([
        {"gateway": "vpn-gw-a", "source": "192.168.10.0/24", "dest": "10.10.0.0/16",
         "next_hop": "vco-gw-a-1", "weight": 100, "priority": 20, "publish": true,
         "description": "made in the console"},
        {"gateway": "vpn-gw-a", "source": "192.168.10.0/24", "dest": "10.10.0.0/16",
         "next_hop": "vco-gw-a-2", "weight": 0},
        {"gateway": "vpn-gw-b", "source": "192.168.20.0/24", "dest": "10.20.0.0/16",
         "next_hop": "vco-gw-b-1", "weight": 100},
    ]));
    let before = env.mutation_calls().await?;

    // One file per route.
    let out = env.dir.path().join("imported");
    let out_s = out.to_string_lossy().into_owned();
    let run = env.cli(&import_both(&env.ns, &["--output-dir", &out_s]));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let mut files: Vec<String> = std::fs::read_dir(&out)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    files.sort();
    assert_eq!(
        files,
        vec![
            "vpn-gw-a-192-168-10-0-24-10-10-0-0-16-vco-gw-a-1.yaml",
            "vpn-gw-a-192-168-10-0-24-10-10-0-0-16-vco-gw-a-2.yaml",
            "vpn-gw-b-192-168-20-0-24-10-20-0-0-16-vco-gw-b-1.yaml",
        ]
    );
    let active: VpnPbrRoute = serde_saphyr::from_str(&std::fs::read_to_string(
        out.join("vpn-gw-a-192-168-10-0-24-10-10-0-0-16-vco-gw-a-1.yaml"),
    )?)?;
    assert_eq!(
        active
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("vpn.alicloud.dev/adopt"))
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(active.metadata.namespace.as_deref(), Some(env.ns.as_str()));
    assert_eq!(
        (
            active.spec.weight,
            active.spec.priority,
            active.spec.publish_vpc
        ),
        (100, 20, true)
    );
    let standby =
        std::fs::read_to_string(out.join("vpn-gw-a-192-168-10-0-24-10-10-0-0-16-vco-gw-a-2.yaml"))?;
    assert!(
        !standby.contains("priority:"),
        "default left out:\n{standby}"
    );
    assert!(standby.contains("weight: 0"), "{standby}");

    // `-o`, the old spelling of --output-dir, still writes the same files and warns.
    let old = env.dir.path().join("imported-o");
    let old_s = old.to_string_lossy().into_owned();
    let run = env.cli(&import_both(&env.ns, &["-o", &old_s]));
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr
            .contains("-o/--output is deprecated, use --output-dir"),
        "{}",
        run.stderr
    );
    for f in &files {
        assert_eq!(
            std::fs::read_to_string(old.join(f))?,
            std::fs::read_to_string(out.join(f))?,
            "{f}"
        );
    }

    // The same manifests as one stream on stdout.
    let run = env.cli(&import_both(&env.ns, &[]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.matches("---\n").count(), 3, "{}", run.stdout);
    for f in &files {
        let text = std::fs::read_to_string(out.join(f))?;
        assert!(run.stdout.contains(&text), "{f} not in the stream");
    }

    // Before they are applied: adoptions of entries that match, so no changes.
    let (code, report) = env.plan_json(&["-f", &out_s]);
    assert_eq!(code, 0, "{report:#}");
    for r in report["routes"].as_array().into_iter().flatten() {
        assert_eq!(r["action"], "adopt", "{r:#}");
        assert!(r.get("calls").is_none(), "{r:#}");
    }

    // Applied: the operator adopts them, and sends nothing.
    env.operator();
    env.kubectl_apply(&out);
    for f in &files {
        let name = f.trim_end_matches(".yaml");
        let r = env.ready(name).await?;
        let st = r.status.expect("status");
        assert_eq!(st.adopted, Some(true), "{name}");
        assert!(st.adopted_at.is_some(), "{name}");
    }
    assert_eq!(
        env.mutation_calls().await?,
        before,
        "adopting made a cloud call\n{}",
        env.logs()
    );

    // With the live objects: nothing to do. Without the operator running meanwhile, so its
    // resyncs cannot hide a change.
    env.stop_operator();
    let kubeconfig = support::plane().kubeconfig.to_string_lossy().into_owned();
    let (code, report) = env.plan_json(&["-f", &out_s, "--kubeconfig", &kubeconfig]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["summary"]["nothing"], 3, "{report:#}");
    let run = env.cli(&["plan", "-f", &out_s, "--kubeconfig", &kubeconfig]);
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("No changes"), "{}", run.stdout);
    assert_eq!(env.mutation_calls().await?, before);
    Ok(())
}

#[tokio::test]
async fn plan_shows_every_action_and_the_clouds_refusals_and_changes_nothing() -> anyhow::Result<()>
{
    let mut env = CliEnv::start("plan").await?;
    // Routes the operator made (so their objects own their entries).
    env.operator();
    // The routes of each gateway, and the specs the operator's routes and the manifests share.
    let a = |src, dst, hop, weight| spec("vpn-gw-a", src, dst, hop, weight);
    let b = |src, dst, hop| spec("vpn-gw-b", src, dst, hop, 100);
    let pair = |hop, weight| a("192.168.1.0/24", "10.1.0.0/16", hop, weight);
    let plain = a("192.168.2.0/24", "10.2.0.0/16", "vco-gw-a-1", 100);
    let same = b("192.168.3.0/24", "10.3.0.0/16", "vco-gw-b-1");
    let owned = [
        ("pair-active", pair("vco-gw-a-1", 100)),
        ("pair-standby", pair("vco-gw-a-2", 0)),
        ("plain", plain.clone()),
        ("same", same.clone()),
        (
            "gone-from-git",
            b("192.168.4.0/24", "10.4.0.0/16", "vco-gw-b-2"),
        ),
    ];
    for (name, s) in &owned {
        env.create(name, s.clone(), json!({})).await?;
    }
    for (name, _) in &owned {
        env.ready(name).await?;
    }
    env.stop_operator();
    // Routes made in the console: one the manifests name without consent, one filling vpn-gw-q.
    env.console(&json!([
        {"gateway": "vpn-gw-a", "source": "192.168.5.0/24", "dest": "10.5.0.0/16",
         "next_hop": "vco-gw-a-2", "weight": 100},
        {"gateway": "vpn-gw-q", "source": "192.168.6.0/24", "dest": "10.6.0.0/16",
         "next_hop": "vco-gw-q-1", "weight": 100},
    ]));
    let before_calls = env.mutation_calls().await?;
    let before_entries = env.entries().await?;

    let mut edited = plain;
    edited["priority"] = json!(30);
    edited["publishVpc"] = json!(true);
    let no_room = spec(
        "vpn-gw-q",
        "192.168.9.0/24",
        "10.9.0.0/16",
        "vco-gw-q-2",
        100,
    );
    let git = env.dir.path().join("git");
    let all = write_manifests(
        &git,
        &[
            // The pair swaps roles.
            ("pair-active", pair("vco-gw-a-1", 0)),
            ("pair-standby", pair("vco-gw-a-2", 100)),
            ("plain", edited),
            ("same", same),
            ("new-ok", b("192.168.7.0/24", "10.7.0.0/16", "vco-gw-b-1")),
            (
                "new-bad-hop",
                a("192.168.8.0/24", "10.8.0.0/16", "vco-nope", 100),
            ),
            ("new-no-room", no_room),
            (
                "console-made",
                a("192.168.5.0/24", "10.5.0.0/16", "vco-gw-a-2", 100),
            ),
        ],
    );
    std::fs::write(
        git.join("other.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: not-a-route\n",
    )?;
    let all_s = all.to_string_lossy().into_owned();
    let kubeconfig = support::plane().kubeconfig.to_string_lossy().into_owned();

    let (code, report) = env.plan_json(&[
        "-f",
        &all_s,
        "--kubeconfig",
        &kubeconfig,
        "-n",
        &env.ns,
        "--prune",
    ]);
    assert_eq!(code, 1, "refusals make it fail: {report:#}");
    // A weight flip of a pair: the member becoming active is replaced, the one becoming
    // standby changes in place (so the pair always keeps an entry).
    let r = route(&report, "pair-standby");
    assert_eq!(r["action"], "replace", "{r:#}");
    assert_eq!(
        calls(r),
        ["DeleteVpnPbrRouteEntry", "CreateVpnPbrRouteEntry"],
        "{r:#}"
    );
    let r = route(&report, "pair-active");
    assert_eq!(r["action"], "modify", "{r:#}");
    assert_eq!(calls(r), ["ModifyVpnPbrRouteEntryAttribute"], "{r:#}");
    let r = route(&report, "plain");
    assert_eq!(r["action"], "modify", "{r:#}");
    assert_eq!(
        r["changes"],
        json!([
            {"field": "priority", "old": 10, "new": 30},
            {"field": "publishVpc", "old": false, "new": true}
        ])
    );
    assert_eq!(
        calls(r),
        ["ModifyVpnPbrRouteEntryAttribute", "PublishVpnRouteEntry"],
        "{r:#}"
    );
    assert_eq!(route(&report, "same")["action"], "nothing");
    let r = route(&report, "new-ok");
    assert_eq!(r["action"], "create");
    assert_eq!(r["dryRun"]["passed"], true, "{r:#}");
    assert_eq!(r["dryRun"]["code"], "DryRunOperation");
    let r = route(&report, "new-bad-hop");
    assert_eq!(r["action"], "create");
    assert_eq!(r["dryRun"]["passed"], false, "{r:#}");
    assert_eq!(r["dryRun"]["code"], "InvalidNextHop.NotFound", "{r:#}");
    let r = route(&report, "new-no-room");
    assert_eq!(r["dryRun"]["passed"], false, "{r:#}");
    assert_eq!(r["dryRun"]["code"], "Resource.QuotaFull", "{r:#}");
    let r = route(&report, "console-made");
    assert_eq!(r["action"], "conflict", "{r:#}");
    assert_eq!(r["problem"]["code"], "AlreadyExists");
    let r = route(&report, "gone-from-git");
    assert_eq!(r["action"], "delete", "{r:#}");
    assert_eq!(calls(r), ["DeleteVpnPbrRouteEntry"]);
    assert_eq!(report["ignoredDocuments"], 1);
    let s = &report["summary"];
    assert_eq!(
        (
            s["create"].clone(),
            s["modify"].clone(),
            s["replace"].clone(),
            s["delete"].clone()
        ),
        (json!(3), json!(2), json!(1), json!(1)),
        "{s:#}"
    );
    assert_eq!(
        (
            s["conflict"].clone(),
            s["nothing"].clone(),
            s["dryRunRefused"].clone()
        ),
        (json!(1), json!(1), json!(2))
    );

    // Without --prune the object missing from Git is left alone.
    let (_, report) = env.plan_json(&["-f", &all_s, "--kubeconfig", &kubeconfig, "-n", &env.ns]);
    assert!(
        report["routes"]
            .as_array()
            .is_some_and(|rs| rs.iter().all(|r| r["name"] != "gone-from-git")),
        "{report:#}"
    );

    // Only changes the cloud accepts: exit code 2, and a table for people.
    let fine = env.dir.path().join("fine");
    std::fs::create_dir_all(&fine)?;
    for name in ["pair-active", "pair-standby", "plain", "same", "new-ok"] {
        std::fs::copy(
            git.join(format!("{name}.yaml")),
            fine.join(format!("{name}.yaml")),
        )?;
    }
    let fine_s = fine.to_string_lossy().into_owned();
    let run = env.cli(&[
        "plan",
        "-f",
        &fine_s,
        "--kubeconfig",
        &kubeconfig,
        "-n",
        &env.ns,
    ]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let table = run.stdout;
    println!("{table}");
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().take(2).collect())
        .collect();
    for (action, name) in [
        ("modify", "pair-active"),
        ("replace", "pair-standby"),
        ("modify", "plain"),
        ("nothing", "same"),
        ("create", "new-ok"),
    ] {
        let key = format!("{}/{name}", env.ns);
        assert!(
            rows.iter().any(|r| r[..] == [action, key.as_str()]),
            "no {action} {key} in\n{table}"
        );
    }
    for line in [
        "priority: 10 -> 30",
        "call ModifyVpnPbrRouteEntryAttribute priority 10 -> 30",
        "call PublishVpnRouteEntry publishVpc=true",
        "DryRun: the cloud would accept it",
        "Plan: 1 to create, 2 to modify, 1 to replace, 0 to delete, 0 to adopt, 1 unchanged",
        "cn-hangzhou/vpn-gw-a: active, priorities, ",
    ] {
        assert!(table.contains(line), "{line:?} missing in\n{table}");
    }

    // Only what is in sync: exit code 0.
    let (code, _) = env.plan_json(&[
        "-f",
        &git.join("same.yaml").to_string_lossy(),
        "--kubeconfig",
        &kubeconfig,
        "-n",
        &env.ns,
    ]);
    assert_eq!(code, 0);

    // Nothing was changed: no mutation accepted, every create only a dry run.
    let after = env.mutation_calls().await?;
    for ((action, code), n) in &after {
        let was = before_calls
            .get(&(action.clone(), code.clone()))
            .copied()
            .unwrap_or(0);
        if *n != was {
            assert_eq!(
                action, "CreateVpnPbrRouteEntry",
                "{action} {code}: {was} -> {n}"
            );
            assert_ne!(code, "Success", "a create was carried out");
        }
    }
    assert_eq!(
        after
            .get(&(
                "CreateVpnPbrRouteEntry".to_owned(),
                "DryRunOperation".to_owned()
            ))
            .copied()
            .unwrap_or(0),
        3,
        "one passed dry run per plan run that had new-ok: {after:?}"
    );
    assert_eq!(env.entries().await?, before_entries);
    Ok(())
}

#[tokio::test]
async fn without_consent_an_existing_entry_is_neither_changed_nor_deleted() -> anyhow::Result<()> {
    let mut env = CliEnv::start("consent").await?;
    env.console(&json!([
        {"gateway": "vpn-gw-a", "source": "192.168.30.0/24", "dest": "10.30.0.0/16",
         "next_hop": "vco-gw-a-1", "weight": 100},
    ]));
    let key = EntryKey::new("192.168.30.0/24", "10.30.0.0/16", "vco-gw-a-1");
    let before = env.emu.entry("vpn-gw-a", &key).await?.expect("entry");
    let calls_before = env.mutation_calls().await?;
    env.operator();
    // Names the entry, asks for other values, and does not consent to adopt it.
    let mut s = spec(
        "vpn-gw-a",
        "192.168.30.0/24",
        "10.30.0.0/16",
        "vco-gw-a-1",
        100,
    );
    s["priority"] = json!(40);
    s["publishVpc"] = json!(true);
    env.create("stranger", s, json!({})).await?;
    wait_route(
        &env.api,
        "stranger",
        "Ready=False AlreadyExists",
        WAIT,
        |r| ready_is(r, ConditionStatus::False, Some("AlreadyExists")),
        || env.logs(),
    )
    .await?;
    // A few resyncs (3 s each in the tests) later, still untouched.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let r = env.api.get("stranger").await?;
    assert!(ready_is(&r, ConditionStatus::False, Some("AlreadyExists")));
    assert_ne!(r.status.and_then(|s| s.adopted), Some(true));
    env.api.delete("stranger", &DeleteParams::default()).await?;
    wait_gone(&env.api, "stranger", WAIT).await?;
    assert_eq!(env.emu.entry("vpn-gw-a", &key).await?, Some(before));
    assert_eq!(
        env.mutation_calls().await?,
        calls_before,
        "a cloud call for an entry the object does not own\n{}",
        env.logs()
    );
    Ok(())
}

/// A busy gateway holds each dry run for up to `--busy-timeout`: `plan` says on stderr which
/// dry run it is at and which gateway it waits for, and stdout stays the report alone.
#[tokio::test]
async fn plan_shows_its_progress_and_the_gateway_it_waits_for_on_stderr() -> anyhow::Result<()> {
    let env = CliEnv::start("plan-progress").await?;
    // Every create, a dry run too, answered as by a gateway applying another change.
    env.emu
        .set_faults(&json!({"rules": [
            {"action": "CreateVpnPbrRouteEntry", "rate": 1.0, "kind": "busy"}
        ]}))
        .await?;
    let b = |src, dst, hop| spec("vpn-gw-b", src, dst, hop, 100);
    let git = write_manifests(
        &env.dir.path().join("git"),
        &[
            ("first", b("192.168.7.0/24", "10.7.0.0/16", "vco-gw-b-1")),
            ("second", b("192.168.8.0/24", "10.8.0.0/16", "vco-gw-b-2")),
        ],
    );
    let git_s = git.to_string_lossy().into_owned();
    let run = env.cli(&[
        "plan",
        "-o",
        "json",
        "-f",
        &git_s,
        "-n",
        &env.ns,
        "--busy-timeout",
        "2s",
    ]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not the report alone ({e}):\n{}", run.stdout));
    assert_eq!(run.code, 1, "the busy answer stands: {report:#}");
    let progress: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("plan: "))
        .collect();
    let ns = &env.ns;
    let at = |what: &str| {
        progress
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} on stderr:\n{}", run.stderr))
    };
    let read = at("plan: reading 1 gateway(s)");
    let first = at(&format!(
        "plan: dry run 1/2: {ns}/first on gateway vpn-gw-b (cn-hangzhou)"
    ));
    let waits = at(&format!(
        "plan: waiting for gateway vpn-gw-b (cn-hangzhou), busy with another change (VpnGateway.Configuring): the dry run of {ns}/first goes again in"
    ));
    let second = at(&format!(
        "plan: dry run 2/2: {ns}/second on gateway vpn-gw-b (cn-hangzhou)"
    ));
    assert!(
        read < first && first < waits && waits < second,
        "{progress:#?}"
    );
    Ok(())
}
