//! Results and restart runs for the tests of the report (the fixed header is `Header::fixed`).

use std::time::Duration;

use crate::bench::{
    AccountCredentials, AccountOutcome, AccountsResult, AccountsScenario, Latencies, ReadyLag,
    RestartResult, Scenario, ScenarioResult, SettleCriterion, Settled, SingleChanges, Stopped,
    calls, unavoidable_calls,
};
use crate::operator::Usage;
use crate::workload::Flips;

/// A converged run of `routes` over `gateways` in `wall` seconds, with some refusals, routes
/// Ready 1.5 s after the earliest on average (p99 3.2 s, first routes 0.4 s at most), and the
/// unavoidable calls of its routes spread evenly.
pub(super) fn run(label: &str, routes: usize, gateways: usize, wall: f64) -> ScenarioResult {
    ScenarioResult {
        scenario: Scenario {
            label: label.to_owned(),
            routes,
            gateways,
            update: Duration::from_secs(2),
            scheduler: true,
            api_rate: None,
            read_back_every: None,
            latency_probes: 0,
            quiet_gateways: 0,
            single_every: Duration::from_secs(10),
            timeout: Duration::from_secs(600),
            log_level: "info".to_owned(),
            parallel: 32,
            stop_grace: Duration::ZERO,
            settle_wait: Duration::ZERO,
        },
        ready: routes,
        converged: true,
        wall: Duration::from_secs_f64(wall),
        create_time: Duration::from_secs(3),
        calls: calls(&[
            ("CreateVpnPbrRouteEntry", "Success", routes as u64),
            ("CreateVpnPbrRouteEntry", "VpnGateway.Configuring", 20),
            ("DescribeVpnGateway", "Success", 60),
            ("DescribeVpnPbrRouteEntries", "Throttling", 10),
        ]),
        usage: Usage {
            peak_rss_kib: 30 * 1024,
            rss_kib: 25 * 1024,
            cpu: Duration::from_secs(4),
        },
        settled_rss_kib: None,
        cpu_at_convergence: Duration::from_secs(3),
        latency: Latencies::default(),
        reconciles: Some(2000.0),
        ready_lag: Some(ReadyLag {
            n: routes,
            mean_ms: 1500.0,
            p99_ms: 3200.0,
            first_max_ms: Some(400.0),
        }),
        singles: None,
        unavoidable_calls: Some(unavoidable_calls(
            routes,
            (0..gateways).map(|g| routes / gateways + usize::from(g < routes % gateways)),
        )),
    }
}

/// Single changes on `quiet` quiet gateways every 10 s: six created in 30 ms to 1.2 s (one
/// never listed) and Ready in 2.1 s to 2.9 s.
pub(super) fn singles(r: &mut ScenarioResult, quiet: usize) {
    r.scenario.quiet_gateways = quiet;
    let found = |v: &[Option<f64>]| Latencies::new(v.iter().copied());
    r.singles = Some(SingleChanges {
        create: found(&[
            Some(30.0),
            Some(40.0),
            Some(60.0),
            Some(90.0),
            Some(1200.0),
            None,
        ]),
        ready: found(&[
            Some(2100.0),
            Some(2200.0),
            Some(2300.0),
            Some(2400.0),
            Some(2500.0),
            Some(2900.0),
        ]),
    });
}

/// A settled restart run of 200 routes: 22 reads and `extra_calls`.
pub(super) fn restart(flips: Flips, extra_calls: &[(&str, &str, u64)]) -> RestartResult {
    let mut c = calls(&[
        ("DescribeVpnGateway", "Success", 10),
        ("DescribeVpnPbrRouteEntries", "Success", 12),
    ]);
    c.extend(calls(extra_calls));
    RestartResult {
        setup: run("restart", 200, 10, 50.0),
        criterion: SettleCriterion {
            min_reconciles: 200.0,
            quiet: Duration::from_secs(5),
            timeout: Duration::from_secs(300),
        },
        stop: Stopped {
            status: "exit status: 0".to_owned(),
            took: Duration::from_millis(300),
        },
        calls: c,
        settle: Settled {
            settled: true,
            after: Duration::from_secs(4),
            reconciles: Some(200.0),
        },
        flips,
        usage: Usage::default(),
    }
}

/// A converged run of two accounts at 10/s and 40/s (300 and 1200 routes): the slow one,
/// throttled 25 times, is the busiest at 36 s; the run took 38 s.
pub(super) fn accounts() -> AccountsResult {
    let scenario = AccountsScenario {
        label: "accounts".to_owned(),
        rates: vec![10.0, 40.0],
        seconds: 30.0,
        routes_per_gateway: 10,
        update: Duration::from_secs(2),
        credentials: AccountCredentials::AssumeRole,
        api_rate: None,
        parallel: 32,
        log_level: "info".to_owned(),
        timeout_factor: 4.0,
        stop_grace: Duration::ZERO,
    };
    let plans = scenario.accounts("acct");
    let list: [&[(&str, &str, u64)]; 2] = [
        &[
            ("CreateVpnPbrRouteEntry", "Success", 300),
            ("CreateVpnPbrRouteEntry", "Throttling.User", 25),
            ("DescribeVpnPbrRouteEntries", "Success", 60),
        ],
        &[("CreateVpnPbrRouteEntry", "Success", 1200)],
    ];
    let accounts = plans
        .into_iter()
        .zip(list)
        .zip([37.5, 31.0])
        .map(|((plan, c), finish)| AccountOutcome {
            ready: plan.routes,
            plan,
            calls: calls(c),
            finish: Some(Duration::from_secs_f64(finish)),
        })
        .collect();
    AccountsResult {
        scenario,
        accounts,
        converged: true,
        wall: Duration::from_secs(38),
        create_time: Duration::from_secs(4),
        usage: Usage {
            peak_rss_kib: 40 * 1024,
            rss_kib: 35 * 1024,
            cpu: Duration::from_secs(12),
        },
        cpu_at_convergence: Duration::from_secs(9),
        machine_idle: Some(0.55),
    }
}
