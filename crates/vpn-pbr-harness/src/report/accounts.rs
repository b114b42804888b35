//! The section of the multi-account run: how it was made, one column per account, and the
//! run as a whole against the busiest account's bound.

use std::fmt::Write as _;

use super::format::{binding, mib, rate, secs};
use crate::bench::{AccountCredentials, AccountsResult};

/// How the operator reached the accounts, in words.
fn credentials_text(c: AccountCredentials) -> &'static str {
    match c {
        AccountCredentials::AssumeRole => {
            "`assumeRole`: the operator's own key (an account of its own) assumes role \
             `vpn-pbr-operator` of each account, whose trust policy admits it with the \
             account's external ID"
        }
        AccountCredentials::SecretRef => {
            "`secretRef`: each account's own access key in a Secret labelled \
             `vpn.alicloud.dev/credentials: \"true\"`"
        }
    }
}

/// The multi-account run's section.
pub(super) fn accounts_section(s: &mut String, r: &AccountsResult) {
    let sc = &r.scenario;
    let _ = writeln!(s, "## Several accounts\n");
    let _ = writeln!(
        s,
        "{} accounts with their own API rates in the emulator's per-account flow control \
         ({}; beyond it `Throttling.User`), one `VpnAccount` each ({}; its `apiRate` the \
         account's rate: the operator's limiter of the account runs there and halves when the \
         cloud throttles), one operator at `--api-rate {}` (its own identity's limiter). Each account gets rate x {} s routes on gateways of its own ({} routes \
         per gateway, T = {}), so that each account's calls at its rate bind rather than the \
         gateways: a rate shared by the accounts would take about (sum of rates / highest \
         rate) times longer. Every route names its account with `spec.accountRef`; the \
         creates of the accounts are interleaved ({} at a time), after every account is \
         Ready. **An account's bound** = the larger of its gateways' bound (busiest gateway's \
         routes x T) and its calls the flow control admitted (every call of its keys and \
         sessions from the first create to convergence but `Throttling.User`, which takes no \
         token) / its rate. The run's ratio is the wall time (first create to the last route \
         Ready) over the **busiest account's bound**.\n",
        sc.rates.len(),
        sc.rates
            .iter()
            .map(|r| rate(*r))
            .collect::<Vec<_>>()
            .join(", "),
        credentials_text(sc.credentials),
        sc.api_rate(),
        sc.seconds,
        sc.routes_per_gateway,
        secs(sc.update),
        sc.parallel,
    );
    let update = sc.update;
    let _ = write!(s, "| |");
    for a in &r.accounts {
        let _ = write!(s, " `{}` |", a.plan.name);
    }
    let _ = writeln!(s, "\n|---|{}", "---|".repeat(r.accounts.len()));
    let busiest = r.busiest().map(|a| a.plan.name.clone());
    let mut row = |name: &str, f: &dyn Fn(usize) -> String| {
        let _ = write!(s, "| {name} |");
        for i in 0..r.accounts.len() {
            let _ = write!(s, " {} |", f(i));
        }
        let _ = writeln!(s);
    };
    let acc = |i: usize| &r.accounts[i];
    row("API rate (emulator flow control)", &|i| {
        rate(acc(i).plan.cloud.rate)
    });
    row("routes / gateways", &|i| {
        format!("{} / {}", acc(i).plan.routes, acc(i).plan.gateways().len())
    });
    row("gateways' bound (busiest gateway's routes x T)", &|i| {
        secs(acc(i).bound(update).gateways)
    });
    row("calls admitted (throttled, other refused)", &|i| {
        format!(
            "{} ({}, {})",
            acc(i).admitted(),
            acc(i).throttled(),
            acc(i).refused()
        )
    });
    row("calls admitted per route", &|i| {
        format!(
            "{:.2}",
            acc(i).admitted() as f64 / acc(i).plan.routes.max(1) as f64
        )
    });
    row("API bound (calls admitted / rate)", &|i| {
        secs(acc(i).bound(update).api)
    });
    row("account's bound (the larger)", &|i| {
        let b = acc(i).bound(update);
        let mark = if busiest.as_deref() == Some(acc(i).plan.name.as_str()) {
            ", **busiest**"
        } else {
            ""
        };
        format!("{} ({}{mark})", secs(b.bound()), binding(b.binding()))
    });
    row("first create to the account's last route Ready", &|i| {
        let a = acc(i);
        match a.finish {
            Some(f) if a.ready == a.plan.routes => secs(f),
            _ => format!("not converged: {}/{} Ready", a.ready, a.plan.routes),
        }
    });
    row("ratio to the account's bound", &|i| {
        let a = acc(i);
        a.finish.map_or("-".to_owned(), |f| {
            format!(
                "{:.3}",
                f.as_secs_f64() / a.bound(update).bound().as_secs_f64()
            )
        })
    });
    let _ = writeln!(s);
    let table = [
        ("routes (Ready)", format!("{} ({})", r.routes(), r.ready())),
        (
            "wall time, first create to last Ready",
            if r.converged {
                secs(r.wall)
            } else {
                format!("not converged after {}", secs(r.wall))
            },
        ),
        ("busiest account's bound", secs(r.bound())),
        (
            "ratio to the busiest account's bound",
            format!("**{:.3}**", r.ratio()),
        ),
        (
            "harness create time (all objects)",
            format!("{} ({} at a time)", secs(r.create_time), sc.parallel),
        ),
        (
            "operator CPU time, first create to convergence (cores busy)",
            format!(
                "{} (**{:.2}** cores)",
                secs(r.cpu_at_convergence),
                r.cpu_cores()
            ),
        ),
        (
            "machine CPU idle over the same time (all processes, other builds included)",
            r.machine_idle
                .map_or("-".to_owned(), |i| format!("{:.0} %", i * 100.0)),
        ),
        (
            "operator peak RSS (VmHWM)",
            format!("{:.1} MiB", mib(r.usage.peak_rss_kib)),
        ),
    ];
    let _ = writeln!(s, "| | |\n|---|---|");
    for (name, val) in table {
        let _ = writeln!(s, "| {name} | {val} |");
    }
    let _ = writeln!(s);
}
