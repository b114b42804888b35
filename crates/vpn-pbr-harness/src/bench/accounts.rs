//! The multi-account run ([`AccountsScenario`]): several cloud accounts, each with its own API
//! rate (the emulator's flow control per account), routes on the gateways of each, one
//! operator. Pure: the accounts of a run, the order of the creates, and each account's bound
//! (its calls / its rate, as [`BindingBound`] for one account); `accounts_run` runs it.

use std::ops::Range;
use std::time::Duration;

use super::calls::refusals;
use super::scenario::BindingBound;
use crate::emulator::{CloudAccount, Counter};
use crate::operator::Usage;

/// The emulator's answer to a call beyond the account's flow control: such a call drew no
/// token from the account's bucket.
const THROTTLED: &str = "Throttling.User";

/// How the operator reaches the accounts (`VpnAccount.spec.credentials`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AccountCredentials {
    /// `assumeRole`: an STS AssumeRole into each account's role with the operator's own key.
    AssumeRole,
    /// `secretRef`: each account's own key in a labelled Secret.
    SecretRef,
}

impl AccountCredentials {
    /// The field of `spec.credentials`.
    pub(crate) fn field(self) -> &'static str {
        match self {
            Self::AssumeRole => "assumeRole",
            Self::SecretRef => "secretRef",
        }
    }
}

/// The multi-account workload.
#[derive(Clone, Debug)]
pub struct AccountsScenario {
    pub label: String,
    /// Each account's API rate (calls per second), one account each.
    pub rates: Vec<f64>,
    /// Each account gets `rate x seconds` routes, so that every account's one-call-per-route
    /// bound is the same: a limiter shared by the accounts would show as a ratio near
    /// `sum of rates / highest rate`.
    pub seconds: f64,
    /// Routes per gateway, in every account: the gateways' bound (this many x T) stays well
    /// below the accounts' API bounds.
    pub routes_per_gateway: usize,
    /// The gateways' update time T.
    pub update: Duration,
    pub credentials: AccountCredentials,
    /// The operator's `--api-rate` (its own identity's limiter: the STS calls); each
    /// `VpnAccount` sets its own `apiRate` to its account's rate. `None`: the highest account
    /// rate.
    pub api_rate: Option<f64>,
    pub parallel: usize,
    pub log_level: String,
    /// Give up after this many times the lower bound, plus 60 s.
    pub timeout_factor: f64,
    /// As [`Scenario::stop_grace`](super::Scenario::stop_grace).
    pub stop_grace: Duration,
}

/// One account of the run: its `VpnAccount`, its cloud account and its routes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AccountPlan {
    /// The `VpnAccount`'s name.
    pub(crate) name: String,
    pub(crate) cloud: CloudAccount,
    pub(crate) routes: usize,
}

impl AccountPlan {
    pub(crate) fn gateways(&self) -> Range<usize> {
        self.cloud.gateways.clone()
    }

    /// The gateway (index) and its route number of the account's route `i`: round robin over
    /// the account's gateways.
    pub(crate) fn route_at(&self, i: usize) -> (usize, usize) {
        let n = self.cloud.gateways.len().max(1);
        (self.cloud.gateways.start + i % n, i / n)
    }

    /// The busiest gateway's routes x T.
    pub(crate) fn physical_limit(&self, update: Duration) -> Duration {
        let n = self.cloud.gateways.len().max(1);
        update * u32::try_from(self.routes.div_ceil(n)).unwrap_or(u32::MAX)
    }
}

impl AccountsScenario {
    /// The accounts, named after `prefix` (`VpnAccount`s are cluster-scoped: one run's names
    /// must not meet another's).
    pub(crate) fn accounts(&self, prefix: &str) -> Vec<AccountPlan> {
        let mut next_gateway = 0;
        self.rates
            .iter()
            .enumerate()
            .map(|(k, rate)| {
                let routes = (rate * self.seconds).round().max(1.0) as usize;
                let gateways = routes.div_ceil(self.routes_per_gateway.max(1));
                let range = next_gateway..next_gateway + gateways;
                next_gateway += gateways;
                AccountPlan {
                    name: format!("{prefix}-{k}"),
                    cloud: CloudAccount {
                        id: format!("2{:015}", k + 1),
                        rate: *rate,
                        gateways: range,
                        key: (
                            format!("LTAI-bench-account-{k}"),
                            format!("bench-secret-{k}"),
                        ),
                        external_id: format!("pbr-bench-{k}"),
                    },
                    routes,
                }
            })
            .collect()
    }

    /// The operator's `--api-rate`.
    pub(crate) fn api_rate(&self) -> f64 {
        self.api_rate
            .unwrap_or_else(|| self.rates.iter().copied().fold(0.0, f64::max))
    }

    /// A bound known before the run: per account, one call per route at its rate or its
    /// gateways' bound, whichever is longer; the longest of the accounts.
    pub fn lower_bound(&self) -> Duration {
        self.accounts("x")
            .iter()
            .map(|a| {
                BindingBound::new(a.physical_limit(self.update), a.routes as u64, a.cloud.rate)
                    .bound()
            })
            .max()
            .unwrap_or_default()
    }

    /// Give up waiting for convergence after this long.
    pub(crate) fn timeout(&self) -> Duration {
        self.lower_bound().mul_f64(self.timeout_factor) + Duration::from_secs(60)
    }
}

/// The order of the creates: (account, route of the account), each account's routes spread
/// evenly over the sequence (by their share of the account), so that no account waits for
/// another's objects to be created.
pub(crate) fn creation_order(accounts: &[AccountPlan]) -> Vec<(usize, usize)> {
    let mut order: Vec<(usize, usize)> = accounts
        .iter()
        .enumerate()
        .flat_map(|(k, a)| (0..a.routes).map(move |i| (k, i)))
        .collect();
    let share = |&(k, i): &(usize, usize)| (i as f64 + 0.5) / accounts[k].routes as f64;
    order.sort_by(|a, b| share(a).total_cmp(&share(b)).then(a.0.cmp(&b.0)));
    order
}

/// What one account of a run measured.
#[derive(Clone, Debug)]
pub(crate) struct AccountOutcome {
    pub(crate) plan: AccountPlan,
    /// The account's calls from the first create to convergence (the emulator's counters of
    /// its keys and sessions): (action, code, n).
    pub(crate) calls: Vec<Counter>,
    /// Routes of the account seen Ready.
    pub(crate) ready: usize,
    /// First create to the account's last route Ready.
    pub(crate) finish: Option<Duration>,
}

impl AccountOutcome {
    /// Calls beyond the account's flow control (`Throttling.User`).
    pub(crate) fn throttled(&self) -> u64 {
        self.calls
            .iter()
            .filter(|c| c.1 == THROTTLED)
            .map(|c| c.2)
            .sum()
    }

    /// The calls the account's flow control let through: every call but the throttled ones
    /// (those took no token), refused or not.
    pub(crate) fn admitted(&self) -> u64 {
        self.calls.iter().map(|c| c.2).sum::<u64>() - self.throttled()
    }

    /// Refused calls other than throttling.
    pub(crate) fn refused(&self) -> u64 {
        refusals(&self.calls)
            .iter()
            .filter(|c| c.1 != THROTTLED)
            .map(|c| c.2)
            .sum()
    }

    /// The account's bound: its gateways' (busiest gateway's routes x T) or its admitted calls
    /// at its rate, whichever is longer.
    pub(crate) fn bound(&self, update: Duration) -> BindingBound {
        BindingBound::new(
            self.plan.physical_limit(update),
            self.admitted(),
            self.plan.cloud.rate,
        )
    }
}

/// What the multi-account run measured.
#[derive(Clone, Debug)]
pub struct AccountsResult {
    pub(crate) scenario: AccountsScenario,
    pub(crate) accounts: Vec<AccountOutcome>,
    pub(crate) converged: bool,
    /// First create to the last route Ready (of any account), or to the timeout.
    pub(crate) wall: Duration,
    pub(crate) create_time: Duration,
    /// Operator usage at convergence (peak RSS of the whole process).
    pub(crate) usage: Usage,
    /// Operator CPU time from the first create to convergence.
    pub(crate) cpu_at_convergence: Duration,
    /// Share of the machine's CPU time left idle from the first create to convergence.
    pub(crate) machine_idle: Option<f64>,
}

impl AccountsResult {
    pub(crate) fn routes(&self) -> usize {
        self.accounts.iter().map(|a| a.plan.routes).sum()
    }

    pub(crate) fn ready(&self) -> usize {
        self.accounts.iter().map(|a| a.ready).sum()
    }

    /// The account with the longest bound.
    pub(crate) fn busiest(&self) -> Option<&AccountOutcome> {
        let update = self.scenario.update;
        self.accounts.iter().max_by_key(|a| a.bound(update).bound())
    }

    /// The busiest account's bound.
    pub(crate) fn bound(&self) -> Duration {
        self.busiest()
            .map(|a| a.bound(self.scenario.update).bound())
            .unwrap_or_default()
    }

    /// Wall time / the busiest account's bound.
    pub(crate) fn ratio(&self) -> f64 {
        self.wall.as_secs_f64() / self.bound().as_secs_f64()
    }

    /// The operator's CPU time until convergence per second of wall time: the cores it kept
    /// busy.
    pub(crate) fn cpu_cores(&self) -> f64 {
        self.cpu_at_convergence.as_secs_f64() / self.wall.as_secs_f64().max(f64::EPSILON)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::{Binding, calls};

    fn scenario(rates: &[f64]) -> AccountsScenario {
        AccountsScenario {
            label: "accounts".to_owned(),
            rates: rates.to_vec(),
            seconds: 30.0,
            routes_per_gateway: 10,
            update: Duration::from_secs(2),
            credentials: AccountCredentials::SecretRef,
            api_rate: None,
            parallel: 32,
            log_level: "info".to_owned(),
            timeout_factor: 4.0,
            stop_grace: Duration::ZERO,
        }
    }

    #[test]
    fn accounts_get_routes_by_rate_and_gateways_of_their_own() {
        let sc = scenario(&[10.0, 20.0, 40.0]);
        let accounts = sc.accounts("bench-acct");
        let got: Vec<_> = accounts
            .iter()
            .map(|a| (a.name.as_str(), a.cloud.id.as_str(), a.routes, a.gateways()))
            .collect();
        assert_eq!(
            got,
            [
                ("bench-acct-0", "2000000000000001", 300, 0..30),
                ("bench-acct-1", "2000000000000002", 600, 30..90),
                ("bench-acct-2", "2000000000000003", 1200, 90..210),
            ]
        );
        // Round robin over the account's own gateways.
        assert_eq!(accounts[1].route_at(0), (30, 0));
        assert_eq!(accounts[1].route_at(61), (31, 1));
        // 10 routes per gateway x 2 s.
        assert_eq!(
            accounts[2].physical_limit(sc.update),
            Duration::from_secs(20)
        );
        assert!((sc.api_rate() - 40.0).abs() < f64::EPSILON);
        // Before the run: one call per route at each account's rate, 30 s for all.
        assert_eq!(sc.lower_bound(), Duration::from_secs(30));
        assert_eq!(sc.timeout(), Duration::from_secs(180));
    }

    #[test]
    fn creates_interleave_the_accounts_by_share() {
        let mut sc = scenario(&[1.0, 2.0]);
        sc.seconds = 2.0;
        let order = creation_order(&sc.accounts("a"));
        // Account 0 has 2 routes, account 1 has 4: 0's routes at 1/4 and 3/4 of the sequence.
        assert_eq!(order, [(1, 0), (0, 0), (1, 1), (1, 2), (0, 1), (1, 3)]);
    }

    #[test]
    fn each_accounts_bound_is_its_admitted_calls_at_its_rate() {
        let sc = scenario(&[10.0, 40.0]);
        let plans = sc.accounts("a");
        let outcome = |k: usize, list: &[(&str, &str, u64)], finish: f64| AccountOutcome {
            plan: plans[k].clone(),
            calls: calls(list),
            ready: plans[k].routes,
            finish: Some(Duration::from_secs_f64(finish)),
        };
        // 300 routes at 10/s: 360 admitted calls (the throttled ones took no token).
        let slow = outcome(
            0,
            &[
                ("CreateVpnPbrRouteEntry", "Success", 300),
                ("CreateVpnPbrRouteEntry", "Throttling.User", 25),
                ("DescribeVpnPbrRouteEntries", "Success", 55),
                ("CreateVpnPbrRouteEntry", "VpnGateway.Configuring", 5),
            ],
            37.0,
        );
        assert_eq!(
            (slow.admitted(), slow.throttled(), slow.refused()),
            (360, 25, 5)
        );
        let b = slow.bound(sc.update);
        assert_eq!(
            (b.api, b.gateways, b.binding()),
            (
                Duration::from_secs(36),
                Duration::from_secs(20),
                Binding::Api
            )
        );
        // 1200 routes at 40/s: 1320 calls, 33 s.
        let fast = outcome(
            1,
            &[
                ("CreateVpnPbrRouteEntry", "Success", 1200),
                ("DescribeVpnGateway", "Success", 120),
            ],
            34.0,
        );
        let res = AccountsResult {
            scenario: sc,
            accounts: vec![fast, slow],
            converged: true,
            wall: Duration::from_secs(38),
            create_time: Duration::from_secs(5),
            usage: Usage::default(),
            cpu_at_convergence: Duration::from_secs(19),
            machine_idle: Some(0.4),
        };
        assert_eq!(res.busiest().map(|a| a.plan.name.as_str()), Some("a-0"));
        assert_eq!(res.bound(), Duration::from_secs(36));
        assert!((res.ratio() - 38.0 / 36.0).abs() < 1e-9);
        assert!((res.cpu_cores() - 0.5).abs() < 1e-9);
        assert_eq!((res.routes(), res.ready()), (1500, 1500));
    }
}
