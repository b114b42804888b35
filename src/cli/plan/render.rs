//! The plan for people (a table) and for machines (JSON), and its exit code.

use std::fmt::Write as _;

use serde::Serialize;

use super::EXIT_CHANGES;
use super::GatewayRead;
use super::route::{Action, Problem, RoutePlan};

/// Routes per action, and the problems.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Summary {
    pub create: usize,
    pub modify: usize,
    pub replace: usize,
    pub delete: usize,
    pub adopt: usize,
    pub conflict: usize,
    pub nothing: usize,
    pub error: usize,
    /// Creates the cloud refused in their DryRun.
    pub dry_run_refused: usize,
    /// Routes whose merge would change something.
    pub changes: usize,
    /// Routes that fail the check: errors, conflicts, refused DryRuns.
    pub problems: usize,
}

/// One gateway as read.
#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GatewayReport {
    pub region_id: String,
    pub vpn_gateway_id: String,
    /// The VpnAccount whose credentials read it (absent: the command's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(flatten)]
    pub found: GatewayFound,
}

/// What the read of a gateway found: its facts and how many entries it lists, or why it failed.
#[derive(Serialize, Clone, Debug)]
#[serde(untagged)]
pub(crate) enum GatewayFound {
    #[serde(rename_all = "camelCase")]
    Read {
        status: String,
        supports_priority: bool,
        entries: usize,
    },
    Failed {
        error: Problem,
    },
}

/// The whole answer (`-o json` prints it as is).
#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlanReport {
    pub routes: Vec<RoutePlan>,
    pub gateways: Vec<GatewayReport>,
    /// Documents of other kinds in the manifests, ignored.
    pub ignored_documents: usize,
    pub summary: Summary,
    /// 0 no changes, 2 changes, 1 errors.
    pub exit_code: u8,
}

impl PlanReport {
    pub(crate) fn new(
        routes: Vec<RoutePlan>,
        reads: &[GatewayRead],
        ignored_documents: usize,
    ) -> Self {
        let mut s = Summary::default();
        for r in &routes {
            match r.action {
                Action::Create => s.create += 1,
                Action::Modify => s.modify += 1,
                Action::Replace => s.replace += 1,
                Action::Delete => s.delete += 1,
                Action::Adopt => s.adopt += 1,
                Action::Conflict => s.conflict += 1,
                Action::Nothing => s.nothing += 1,
                Action::Error => s.error += 1,
            }
            if r.dry_run.as_ref().is_some_and(|d| !d.passed) {
                s.dry_run_refused += 1;
            }
            if r.has_change() {
                s.changes += 1;
            }
            if r.has_problem() {
                s.problems += 1;
            }
        }
        let exit_code = if s.problems > 0 {
            super::super::EXIT_ERROR
        } else if s.changes > 0 {
            EXIT_CHANGES
        } else {
            0
        };
        let gateways = reads
            .iter()
            .map(|g| GatewayReport {
                region_id: g.region_id.clone(),
                vpn_gateway_id: g.vpn_gateway_id.clone(),
                account: g.account.clone(),
                found: match &g.result {
                    Ok((facts, entries)) => GatewayFound::Read {
                        status: facts.status.as_str().to_owned(),
                        supports_priority: facts.supports_priority,
                        entries: entries.len(),
                    },
                    Err(e) => GatewayFound::Failed {
                        error: Problem {
                            code: e.code().to_owned(),
                            message: e.to_string(),
                        },
                    },
                },
            })
            .collect();
        Self {
            routes,
            gateways,
            ignored_documents,
            summary: s,
            exit_code,
        }
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The detail lines of a route, in reading order.
fn details(r: &RoutePlan) -> Vec<String> {
    let mut out = Vec::new();
    for c in &r.changes {
        out.push(format!("{}: {} -> {}", c.field, c.old, c.new));
    }
    for c in &r.calls {
        out.push(format!("call {} {}", c.action, c.summary));
    }
    if let Some(d) = &r.dry_run {
        let rid = d
            .request_id
            .as_deref()
            .map(|id| format!(" [RequestId {id}]"))
            .unwrap_or_default();
        if d.passed {
            out.push(format!("DryRun: the cloud would accept it{rid}"));
        } else {
            out.push(format!("DryRun refused: {}: {}{rid}", d.code, d.message));
        }
    }
    if let Some(p) = &r.problem {
        out.push(format!("{}: {}", p.code, p.message));
    }
    for n in &r.notes {
        out.push(format!("note: {n}"));
    }
    out
}

/// The table: one line per route, its details indented below it, then the gateways and a
/// summary.
pub(crate) fn table(report: &PlanReport) -> String {
    let head = ["ACTION", "ROUTE", "GATEWAY", "SOURCE", "DEST", "NEXT HOP"];
    let rows: Vec<[String; 6]> = report
        .routes
        .iter()
        .map(|r| {
            [
                r.action.as_str().to_owned(),
                r.key(),
                r.vpn_gateway_id.clone(),
                r.route_source.clone(),
                r.route_dest.clone(),
                r.next_hop.clone(),
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for row in &rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(width).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                let _ = write!(s, "{cell:<w$}  ");
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let indent = " ".repeat(width[0] + 2);
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("No VpnPbrRoute manifests.\n");
    } else {
        out.push_str(&line(&head));
        for (row, r) in rows.iter().zip(&report.routes) {
            out.push_str(&line(&row.each_ref().map(String::as_str)));
            for d in details(r) {
                let _ = writeln!(out, "{indent}{d}");
            }
        }
    }
    if !report.gateways.is_empty() {
        out.push_str("\nGateways:\n");
        for g in &report.gateways {
            let (region, gateway) = (&g.region_id, &g.vpn_gateway_id);
            let gateway = match &g.account {
                Some(a) => format!("{gateway} (VpnAccount {a})"),
                None => gateway.clone(),
            };
            let _ = match &g.found {
                GatewayFound::Failed { error: e } => {
                    writeln!(out, "  {region}/{gateway}: {}: {}", e.code, e.message)
                }
                GatewayFound::Read {
                    status,
                    supports_priority,
                    entries,
                } => writeln!(
                    out,
                    "  {region}/{gateway}: {status}, {}, {}",
                    if *supports_priority {
                        "priorities"
                    } else {
                        "no priorities"
                    },
                    plural(*entries, "entry", "entries"),
                ),
            };
        }
    }
    if report.ignored_documents > 0 {
        let _ = writeln!(
            out,
            "\n{} of other kinds ignored.",
            plural(report.ignored_documents, "document", "documents")
        );
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "\nPlan: {} to create, {} to modify, {} to replace, {} to delete, {} to adopt, {} unchanged; {}, {}, {}.",
        s.create,
        s.modify,
        s.replace,
        s.delete,
        s.adopt,
        s.nothing,
        plural(s.conflict, "conflict", "conflicts"),
        plural(s.error, "error", "errors"),
        plural(
            s.dry_run_refused,
            "create refused by DryRun",
            "creates refused by DryRun"
        ),
    );
    out.push_str(match report.exit_code {
        0 => "No changes: the operator would send no cloud call.\n",
        EXIT_CHANGES => "Changes: merging these manifests changes the cloud or the cluster.\n",
        _ => "Errors: the operator would refuse or fail some routes (see above).\n",
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1alpha1::VpnPbrRoute;
    use crate::cli::plan::route::{Claims, OWN, plan_apply};
    use crate::controller::model::{Entry, GatewayFacts};
    use alicloud_vpc_client::CloudError;
    use std::collections::BTreeSet;

    fn route(name: &str, hop: &str) -> VpnPbrRoute {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
            "metadata": {"name": name},
            "spec": {"regionId": "cn-hangzhou", "vpnGatewayId": "vpn-a",
                     "routeSource": "192.168.1.0/24", "routeDest": "10.0.0.0/16",
                     "nextHop": hop, "weight": 100, "publishVpc": false}
        }))
        .expect("route")
    }

    #[test]
    fn exit_codes_and_table() {
        let facts = GatewayFacts {
            status: "active".into(),
            supports_priority: true,
            dual_tunnel: false,
            spec: None,
        };
        let entries = vec![Entry {
            route_source: "192.168.1.0/24".into(),
            route_dest: "10.0.0.0/16".into(),
            next_hop: "vco-1".into(),
            weight: 100,
            priority: 10,
            state: "normal".into(),
            create_time: 1,
            vpn_instance_id: "vpn-a".into(),
        }];
        let view = Some(Ok((&facts, entries.as_slice())));
        let plan = |name, hop| {
            plan_apply(
                &route(name, hop),
                "ns",
                "f",
                None,
                Claims::default(),
                OWN,
                view,
            )
        };
        let create = plan("new", "vco-2");
        let conflict = plan("old", "vco-1");
        let reads = [GatewayRead {
            region_id: "cn-hangzhou".into(),
            vpn_gateway_id: "vpn-a".into(),
            credentials: "default".into(),
            account: None,
            result: Ok((facts.clone(), entries.clone())),
        }];

        assert_eq!(PlanReport::new(vec![], &reads, 0).exit_code, 0);
        let r = PlanReport::new(vec![create.clone()], &reads, 0);
        assert_eq!(r.exit_code, EXIT_CHANGES);
        let r = PlanReport::new(vec![create, conflict], &reads, 2);
        assert_eq!(r.exit_code, 1);
        assert_eq!(
            (r.summary.create, r.summary.conflict, r.summary.problems),
            (1, 1, 1)
        );
        let t = table(&r);
        assert!(t.starts_with("ACTION    ROUTE   GATEWAY  SOURCE"), "{t}");
        assert!(
            t.contains("\ncreate    ns/new  vpn-a    192.168.1.0/24  10.0.0.0/16  vco-2\n"),
            "{t}"
        );
        assert!(
            t.contains(
                "          call CreateVpnPbrRouteEntry weight=100 priority=10 publishVpc=false\n"
            ),
            "{t}"
        );
        assert!(t.contains("          AlreadyExists: "), "{t}");
        assert!(
            t.contains("cn-hangzhou/vpn-a: active, priorities, 1 entry"),
            "{t}"
        );
        assert!(t.contains("2 documents of other kinds ignored."), "{t}");
        assert!(t.contains("Plan: 1 to create, 0 to modify, 0 to replace, 0 to delete, 0 to adopt, 0 unchanged; 1 conflict, 0 errors, 0 creates refused by DryRun."), "{t}");
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["routes"][0]["action"], "create");
        assert_eq!(json["routes"][1]["problem"]["code"], "AlreadyExists");
        assert_eq!(json["exitCode"], 1);
        assert_eq!(
            json["gateways"],
            serde_json::json!([{"regionId": "cn-hangzhou", "vpnGatewayId": "vpn-a",
                "status": "active", "supportsPriority": true, "entries": 1}])
        );
        let failed = [GatewayRead {
            region_id: "cn-hangzhou".into(),
            vpn_gateway_id: "vpn-b".into(),
            credentials: "default".into(),
            account: Some("team-b".into()),
            result: Err(CloudError::Config("no key".into())),
        }];
        let json = serde_json::to_value(PlanReport::new(vec![], &failed, 0)).expect("json");
        assert_eq!(
            json["gateways"][0]
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect::<BTreeSet<_>>()),
            Some(BTreeSet::from([
                "account",
                "error",
                "regionId",
                "vpnGatewayId"
            ]))
        );
        let t = table(&PlanReport::new(vec![], &failed, 0));
        assert!(
            t.contains("  cn-hangzhou/vpn-b (VpnAccount team-b): "),
            "{t}"
        );
    }
}
