//! Deterministic simulation of the route lifecycle (FoundationDB/TigerBeetle style).
//!
//! Each seed builds a world: 2-3 gateways of two accounts in the emulator's own world model
//! (`vpc_emulator::ops::run`, in-process, at the virtual time), an in-memory object store in two
//! namespaces, and the REAL controller (`decide`, `reconcile::reconcile`, `Scheduler`,
//! `Estimate`, `GatewayCache`, backoffs) wired as `src/controller/runner.rs` wires it, in one or
//! two operator processes, all on one tokio runtime with its clock paused, so hours of virtual
//! time take milliseconds. A seeded history then creates, edits, reverts, pauses, deletes and
//! duplicates routes, swaps active/standby pairs, changes and deletes entries in the
//! "console", deletes a gateway or a namespace, crashes the operator, cuts the leader off the
//! apiserver and restarts watches, while the cloud answers busy, throttled, 5xx, slow, or
//! applies a change and loses the answer, and status writes conflict. How realistic the world
//! is (lists in pages that lag and race, stale watches, late requests, leader hand-overs,
//! forgotten tokens, accounts) is chosen feature by feature: tests/simulation/config.rs. The
//! invariants:
//!
//! 1. No object ever owns two cloud entries; no change goes out for an object that had been
//!    paused, invalid, `ObserveOnly` or deleted since before it was sent (as the sending
//!    process's watch had shown it); no object changes or deletes an entry it neither made nor
//!    adopted with the adopt annotation (README.md, "Behaviour worth knowing": an existing
//!    entry "is never taken silently"), judged on the sender (a create's token names it, any
//!    other change is the one job on the wire) however many objects name the entry; and once
//!    a replica that took the Lease over sent a change, the old leader sends none (the fence),
//!    and no process writes a route's status or finalizer while its replica does not hold the
//!    Lease (a leader cut off from the apiserver comes back before it learns that it lost it).
//! 2. After everything is deleted (faults stopped), every entry left is accounted for:
//!    someone else's, or owned by an object that said `Orphan`. The one outcome the design
//!    allows besides: an object that cannot prove its own entry (its create's answer was never
//!    recorded and the cloud forgot the token) refuses it, says why, and leaves it.
//! 3. An active/standby pair whose members were both Ready keeps an entry at every moment of a
//!    weight swap (README.md: "one entry is briefly absent while the other carries the
//!    traffic").
//! 4. With faults stopped, everything converges within a bound derived from the gateways'
//!    update times: live routes Ready with status matching the cloud; `ObserveOnly`, paused,
//!    invalid, duplicate and refused (`AlreadyExists`) routes reporting so, and routes whose
//!    key does not see their gateway reporting it gone; deleted objects gone, or, when only
//!    someone else can unblock them (their Secret is gone and the operator's key is of another
//!    account), saying `CleanupBlocked` until that someone does.
//!
//! The run's summary counts what the realistic world exercised, and a run of 50 seeds or more
//! fails unless each enabled feature was exercised by at least 10 % of them.
//!
//! `SIM_SEEDS=n` runs seeds `0..n` (default 1000); `SIM_SEED=n` replays one (and checks that
//! it replays exactly in two other processes), `SIM_TRACE=1` prints its whole trace;
//! `SIM_INVARIANT3=count` only counts breaks of invariant 3; `SIM_KEEP_GOING=1` runs every
//! seed and tallies the failures by kind instead of stopping at the first;
//! `SIM_PRINT_HASHES=1` prints every seed's replay hash (to compare two runs); `SIM_WORLD`
//! chooses the world's features; `make sim SEED=n`, `make sim SEEDS=n` and `make sim WORLD=...`
//! wrap them.
//!
//! Determinism: a seed replays exactly. The history, the faults, the world's delays and the
//! controller's own wall clock, jitter and create tokens (`Context::entropy`, seeded per
//! process of the seed) all come from the seed; the clock is tokio's paused one; the runtime
//! is single-threaded; the controller's `select!`s are biased and the wake-ups it sends in
//! hash-map order are taken into ordered sets. The replay hash (`world::TraceHash`) covers
//! every cloud request (action, parameters, virtual time) and every object write;
//! `replays_exactly_in_another_process` runs seeds in two fresh processes of this test binary
//! and compares it.

#[path = "simulation/cloud.rs"]
mod cloud;
#[path = "simulation/config.rs"]
mod config;
#[path = "simulation/history.rs"]
mod history;
#[path = "simulation/lists.rs"]
mod lists;
#[path = "simulation/objects.rs"]
mod objects;
#[path = "simulation/operator.rs"]
mod operator;
#[path = "simulation/run.rs"]
mod run;
#[path = "simulation/world.rs"]
mod world;

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use config::WorldConfig;
use world::Stats;

/// Real time one seed may take before it counts as hung (a livelock at one virtual instant).
const HUNG: Duration = Duration::from_secs(120);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
}

/// Runs one seed, turning a panic of the simulation itself into a failure of that seed.
fn run_one(seed: u64, trace: bool) -> run::Outcome {
    let world = world();
    match std::panic::catch_unwind(AssertUnwindSafe(|| run::run_seed(seed, trace, world))) {
        Ok(o) => o,
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            run::Outcome {
                stats: Stats::default(),
                failure: Some(format!("the simulation panicked: {msg}")),
                trace: None,
                digest: "panic".to_owned(),
                hash: 0,
            }
        }
    }
}

/// The failure report of a seed; `again` says how it fared when replayed.
fn report(seed: u64, first: &run::Outcome, again: &str) -> String {
    format!(
        "simulation seed {seed} failed; replay with `make sim SEED={seed}` \
         (SIM_TRACE=1 for the whole trace)\n{again}\nhistory:\n{}\n{}",
        history::generate(seed),
        first.failure.as_deref().unwrap_or_default()
    )
}

/// Replays a failed seed once: a different replay hash is a bug of the simulation's
/// determinism.
fn replays(seed: u64, first: &run::Outcome) -> String {
    let again = run_one(seed, false);
    if again.hash == first.hash {
        format!(
            "replayed: the same run again (replay hash {:016x})",
            first.hash
        )
    } else {
        format!(
            "replayed: a DIFFERENT run (replay hash {:016x}, first {:016x}): the simulation is \
             not deterministic",
            again.hash, first.hash
        )
    }
}

/// The rule a failure broke, without its details (for tallies).
fn kind(failure: &str) -> String {
    let numbered = failure.match_indices("invariant ").find(|(i, m)| {
        failure[i + m.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    });
    let Some((at, _)) = numbered else {
        return failure.lines().next().unwrap_or_default().to_owned();
    };
    let rest = &failure[at..];
    let head = rest.find(": ").map_or(rest.len(), |i| i + 2);
    let end = rest[head..]
        .find([':', '(', '\n'])
        .map_or(rest.len(), |i| head + i);
    let text = rest[..end].trim_end();
    text.split(" within ").next().unwrap_or(text).to_owned()
}

/// The realistic world of this run (`SIM_WORLD`, see tests/simulation/config.rs).
fn world() -> WorldConfig {
    WorldConfig::from_env().unwrap_or_else(|e| panic!("{e}"))
}

fn summary(stats: &[Stats], seeds: usize, took: Duration) -> String {
    let sum = |f: fn(&Stats) -> u64| stats.iter().map(f).sum::<u64>();
    let worst = stats
        .iter()
        .map(|s| s.converge_secs / s.converge_bound_secs.max(1.0))
        .fold(0.0, f64::max);
    let slowest = stats.iter().map(|s| s.converge_secs).fold(0.0, f64::max);
    let exercised: Vec<String> = exercised(&world())
        .iter()
        .map(|(what, f)| {
            let n = stats.iter().filter(|s| f(s)).count();
            format!(
                "{what} in {n} ({:.0}%)",
                100.0 * n as f64 / stats.len().max(1) as f64
            )
        })
        .collect();
    format!(
        "simulation: {seeds} seeds in {:.1}s ({}): {} reconciles ({} of a stale copy, {} in the \
         prompt lane), {} cloud \
         calls, {} accepted changes, {} injected cloud faults, {} status conflicts, {} stale \
         status writes, {} crashes ({} outages longer than the cloud remembers a token), {} relists, {} hand-overs, {} late \
         landings ({} after the next process acted), {} lists of several pages ({} raced by a \
         change, {} behind the gateway), {} cross-account answers, {} forgotten tokens ({} \
         entries left unprovable), {} namespaces deleted, {} pair swaps watched ({} left without an entry); slowest \
         convergence {slowest:.0}s of virtual time ({:.0}% of its bound)\nseeds exercising: {}",
        took.as_secs_f64(),
        world(),
        sum(|s| s.reconciles),
        sum(|s| s.stale_reconciles),
        sum(|s| s.prompt_reconciles),
        sum(|s| s.cloud_calls),
        sum(|s| s.mutations_accepted),
        sum(|s| s.faults),
        sum(|s| s.status_conflicts),
        sum(|s| s.stale_writes),
        sum(|s| s.crashes),
        sum(|s| s.outages),
        sum(|s| s.relists),
        sum(|s| s.handovers),
        sum(|s| s.late_landings),
        sum(|s| s.late_after_successor),
        sum(|s| s.lists_paged),
        sum(|s| s.lists_raced),
        sum(|s| s.lists_behind),
        sum(|s| s.cross_account),
        sum(|s| s.tokens_expired),
        sum(|s| s.unprovable),
        sum(|s| s.namespaces_deleted),
        sum(|s| s.pair_swaps_watched),
        sum(|s| s.pair_swaps_broken),
        worst * 100.0,
        exercised.join(", ")
    )
}

/// What shows that a seed exercised each enabled feature of the realistic world.
type Exercised = (&'static str, fn(&Stats) -> bool);

fn exercised(w: &WorldConfig) -> Vec<Exercised> {
    let all: [(bool, Exercised); 12] = [
        // The operator's side: its own writes come back on the watch and skip the reconcile,
        // and with late watches some reconcile decides on an older copy first.
        (
            true,
            ("echoes of own writes skipped", |s| s.echoes_skipped > 0),
        ),
        // Lone changes are reconciled in the prompt lane too, beside the control loop's queue
        // (both take the route's turn).
        (
            true,
            ("reconciles in the prompt lane", |s| s.prompt_reconciles > 0),
        ),
        // Where the watch is prompt, a write's echo comes before its answer.
        (
            !w.stale,
            ("echoes held back until their write answered", |s| {
                s.echoes_held > 0
            }),
        ),
        (
            w.stale,
            (
                "echoes triggering again after a decision on an older copy",
                |s| s.echoes_again > 0,
            ),
        ),
        (w.pages, ("lists raced by a change", |s| s.lists_raced > 0)),
        (w.lag, ("lists behind the gateway", |s| s.lists_behind > 0)),
        (
            w.accounts,
            ("cross-account answers", |s| s.cross_account > 0),
        ),
        (w.stale, ("stale status writes", |s| s.stale_writes > 0)),
        (
            w.late,
            (
                "requests landing after a crash and the next process's first call",
                |s| s.late_after_successor > 0,
            ),
        ),
        (w.expiry, ("forgotten tokens", |s| s.tokens_expired > 0)),
        (w.leader, ("leader hand-overs", |s| s.handovers > 0)),
        (
            w.namespaces,
            ("namespace deletions", |s| s.namespaces_deleted > 0),
        ),
    ];
    all.into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, e)| e)
        .collect()
}

/// The share of seeds that must exercise each enabled feature, and the fewest seeds a run
/// needs for the share to say anything.
const EXERCISED_SHARE: f64 = 0.10;
const EXERCISED_MIN_SEEDS: usize = 50;

/// Fails a run in which an enabled feature of the realistic world was exercised by fewer
/// than `EXERCISED_SHARE` of the seeds (the world would be realistic only on paper).
fn check_exercised(stats: &[Stats]) {
    if stats.len() < EXERCISED_MIN_SEEDS {
        eprintln!(
            "(the share of seeds exercising each feature is checked from {EXERCISED_MIN_SEEDS} \
             seeds on; this run had {})",
            stats.len()
        );
        return;
    }
    let short: Vec<String> = exercised(&world())
        .iter()
        .filter_map(|(what, f)| {
            let n = stats.iter().filter(|s| f(s)).count();
            ((n as f64) < EXERCISED_SHARE * stats.len() as f64)
                .then(|| format!("{what}: {n} of {} seeds", stats.len()))
        })
        .collect();
    assert!(
        short.is_empty(),
        "the realistic world was not exercised: fewer than {:.0}% of the seeds saw\n  {}",
        EXERCISED_SHARE * 100.0,
        short.join("\n  ")
    );
}

#[test]
fn simulation() {
    let started = Instant::now();
    if let Some(seed) = env_u64("SIM_SEED") {
        let trace = std::env::var("SIM_TRACE").is_ok_and(|v| v == "1");
        let out = run_one(seed, trace);
        if let Some(t) = &out.trace {
            eprintln!("--- trace of seed {seed} ---\n{t}");
        }
        if out.failure.is_some() {
            panic!(
                "{}",
                report(
                    seed,
                    &out,
                    "(a seed replays exactly: run it again to see it again)"
                )
            );
        }
        eprintln!("{}", summary(&[out.stats], 1, started.elapsed()));
        eprintln!(
            "seed {seed} passed; end state {}; replay hash {:016x}",
            out.digest, out.hash
        );
        return;
    }
    let seeds = env_u64("SIM_SEEDS").unwrap_or(1000);
    let workers = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .clamp(1, 4);
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let busy = Arc::new(Mutex::new(BTreeSet::<u64>::new()));
    let (tx, rx) = mpsc::channel::<(u64, run::Outcome)>();
    for _ in 0..workers {
        let (next, stop, busy, tx) = (next.clone(), stop.clone(), busy.clone(), tx.clone());
        std::thread::spawn(move || {
            loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed >= seeds || stop.load(Ordering::SeqCst) {
                    return;
                }
                busy.lock().map(|mut b| b.insert(seed)).ok();
                let out = run_one(seed, false);
                busy.lock().map(|mut b| b.remove(&seed)).ok();
                if tx.send((seed, out)).is_err() {
                    return;
                }
            }
        });
    }
    drop(tx);
    let keep_going = std::env::var("SIM_KEEP_GOING").is_ok_and(|v| v == "1");
    let mut stats = Vec::new();
    let mut hashes = std::collections::BTreeMap::new();
    let mut failed: Option<(u64, run::Outcome)> = None;
    let mut kinds: std::collections::BTreeMap<String, std::collections::BTreeSet<u64>> =
        Default::default();
    loop {
        match rx.recv_timeout(HUNG) {
            Ok((seed, out)) => {
                hashes.insert(seed, out.hash);
                if let Some(f) = &out.failure {
                    kinds.entry(kind(f)).or_default().insert(seed);
                    if !keep_going {
                        stop.store(true, Ordering::SeqCst);
                    }
                    // The lowest failing seed is the one reported.
                    if failed.as_ref().is_none_or(|(s, _)| seed < *s) {
                        failed = Some((seed, out));
                    }
                } else {
                    stats.push(out.stats);
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let hung: Vec<u64> = busy
                    .lock()
                    .map(|b| b.iter().copied().collect())
                    .unwrap_or_default();
                panic!(
                    "simulation seeds {hung:?} made no progress for {HUNG:?} of real time \
                     (a livelock at one virtual instant?); replay with `make sim SEED=<n>`"
                );
            }
        }
    }
    if std::env::var("SIM_PRINT_HASHES").is_ok_and(|v| v == "1") {
        for (seed, hash) in &hashes {
            println!("seed {seed} {HASH_LINE}{hash:016x}");
        }
    }
    if keep_going && !kinds.is_empty() {
        let tally: Vec<String> = kinds
            .iter()
            .map(|(k, seeds)| {
                let some: Vec<String> = seeds.iter().take(12).map(u64::to_string).collect();
                format!("  {:5} seeds ({}): {k}", seeds.len(), some.join(" "))
            })
            .collect();
        eprintln!(
            "{}\nfailures by kind:\n{}",
            summary(&stats, stats.len(), started.elapsed()),
            tally.join("\n")
        );
    }
    if let Some((seed, out)) = failed {
        let again = replays(seed, &out);
        panic!("{}", report(seed, &out, &again));
    }
    eprintln!("{}", summary(&stats, stats.len(), started.elapsed()));
    assert_eq!(stats.len() as u64, seeds, "every seed ran");
    check_exercised(&stats);
}

/// What the child process of `replays_exactly_in_another_process` prints.
const HASH_LINE: &str = "SIM_REPLAY_HASH=";

/// The replay hash of `seed` in a fresh process of this test binary.
fn hash_in_child(seed: u64) -> u64 {
    let exe = std::env::current_exe().expect("the path of this test binary");
    let out = Command::new(exe)
        .args([
            "replays_exactly_in_another_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SIM_HASH_OF", seed.to_string())
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child run of seed {seed} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split(HASH_LINE).nth(1))
        .unwrap_or_else(|| {
            panic!("no {HASH_LINE} line from the child run of seed {seed}:\n{stdout}")
        });
    let hex: String = line.chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&hex, 16).expect("a hex hash")
}

/// The same seed gives the same run: the same replay hash in two separate processes (their
/// hash maps are keyed differently, their task ids and addresses differ) and in this one.
/// `SIM_SEED=n` checks that seed, else a few.
#[test]
fn replays_exactly_in_another_process() {
    if let Some(seed) = env_u64("SIM_HASH_OF") {
        let out = run_one(seed, false);
        println!("{HASH_LINE}{:016x}", out.hash);
        return;
    }
    let seeds = env_u64("SIM_SEED").map_or_else(|| vec![1, 7, 23], |s| vec![s]);
    for seed in seeds {
        let (a, b) = (hash_in_child(seed), hash_in_child(seed));
        let here = run_one(seed, false).hash;
        assert_eq!(
            a, b,
            "seed {seed}: two processes ran it differently ({a:016x} vs {b:016x})"
        );
        assert_eq!(
            a, here,
            "seed {seed}: a child process and this one ran it differently"
        );
        eprintln!("seed {seed} replays exactly in separate processes: {a:016x}");
    }
}
