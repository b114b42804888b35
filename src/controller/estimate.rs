//! Learning how long a gateway stays `updating` after a change, from status reads: never by
//! sending a change the gateway might refuse, apart from trusting what its region proved.
//!
//! Every answer bounds the update time `T`, measured from the previous accepted change: a read
//! that finds the gateway `updating` after a gap proves `T` is longer, one that finds it `active`
//! (or an accepted change) proves it is at most that gap. A change goes out only once a read of
//! this cycle saw `active`, or once the gap reaches a proven upper bound plus a margin for
//! jitter. While the bounds are far apart, each cycle spends one read inside them (bisection by
//! reads): `active` lets the change go at once, `updating` sends it at the proven upper bound.
//! Once the bounds are within about 0.5 % no more reads are spent, apart from a rare check that
//! the gateway did not get faster.
//!
//! Gateways of one region, account and specification share what they learn ([`Shared`]; the
//! account because a probe's reads wait at its own account's rate limiter): a gateway that
//! knows nothing sends at the region's proven bound without a read of its own (one that is
//! slower than its region is refused once and then learns alone), while the region
//! knows nothing one gateway probes for all, and concurrent reads are spread over the region's
//! interval so that many gateways narrow it faster than one.

use std::time::Duration;

use tokio::time::Instant;

/// Gap of the first status read after a change when nothing is known yet.
pub(crate) const FIRST_PROBE: Duration = Duration::from_millis(100);
/// Growth of status-read gaps while the update time is unknown: few reads, at the cost of
/// waiting up to this factor too long once.
const PROBE_GROWTH: f64 = 3.0;
/// Cycles in a row with a busy answer after a proven-free gap before the update time is
/// learned anew. One such answer is noise (someone else's change, a transient conflict);
/// several in a row mean the gateway got slower.
const RELEARN_AFTER: u32 = 3;
/// Settled cycles without a read before one read checks whether the gateway got faster; the
/// count doubles after every check that finds nothing new.
const FIRST_CHECK: u32 = 64;
/// Where that check reads, as a fraction of the proven upper bound.
const CHECK_AT: f64 = 0.9;
/// How long a gateway probing for its region keeps the role after its read was due.
const LEADER_SLACK: Duration = Duration::from_secs(1);
/// Pause of a gateway waiting for the region's prober, past the prober's read.
const FOLLOW_PAUSE: Duration = Duration::from_millis(50);
/// Reads the other gateways of a region spend inside each step of the prober while nobody
/// knows a free gap: the prober's reads grow by `PROBE_GROWTH`, so its first free read can come
/// up to that factor late, and every gateway waiting on it would send that late too; a few reads
/// spread over the step find the update time within an eighth of it, and narrow the bounds the
/// later cycles would otherwise read to narrow. Only in steps wider than `FOLLOW_STEP`: below,
/// the time they could save is not worth the calls.
const FOLLOWER_READS: u32 = 8;
const FOLLOW_STEP: Duration = Duration::from_secs(1);

/// What to do next in this cycle, as a gap since the last accepted change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Advice {
    /// Send the next change once the gap is reached.
    Send(Duration),
    /// Read the gateway's status once the gap is reached.
    Read(Duration),
    /// Another gateway of the region is probing for both: plan again at this gap.
    Wait(Duration),
}

/// How a busy answer fits what is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Busy {
    /// Within the known bounds: the change simply needs longer.
    Consistent,
    /// After a gap already proven free: not explained by our last change.
    Contradicting,
}

/// What one gateway knows of its update time, and what it did in the current cycle (since its
/// last accepted change).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Estimate {
    /// Longest gap after which the gateway was still busy.
    lower: Duration,
    /// Shortest gap after which the gateway was free; `None` until one is seen.
    upper: Option<Duration>,
    /// Whether this cycle saw a contradicting busy answer.
    contradicted: bool,
    /// Contradicted cycles in a row.
    contradicted_cycles: u32,
    /// The gateway changed pace since it started from the region's bounds: they are not its.
    alone: bool,
    /// How long recent status reads took from asking to the answer: an answer tells the
    /// gateway's state at some instant in between, so bounds closer than about twice this
    /// cannot be told apart (reads queued behind other calls at a binding API rate).
    window: Duration,
    /// Settled cycles since the last read, and the count at which to check again.
    quiet: u32,
    check_after: u32,
    /// This cycle: the read planned (kept, so that planning again does not move it), the
    /// longest gap a busy answer was seen at, and busy answers after a proven-free gap.
    read: Option<Duration>,
    busy_at: Option<Duration>,
    noise: u32,
}

impl Default for Estimate {
    fn default() -> Self {
        Self {
            lower: Duration::ZERO,
            upper: None,
            contradicted: false,
            contradicted_cycles: 0,
            alone: false,
            window: Duration::ZERO,
            quiet: 0,
            check_after: FIRST_CHECK,
            read: None,
            busy_at: None,
            noise: 0,
        }
    }
}

/// What the gateways of one region (and specification) learned together: the starting
/// estimate of a gateway that knows nothing yet, and the coordination of their reads.
#[derive(Clone, Debug, Default)]
pub(crate) struct Shared {
    lower: Duration,
    upper: Option<Duration>,
    /// Read points handed out since the bounds last moved: concurrent readers get different
    /// points of the interval (the first one its middle).
    handed: u32,
    /// The gateway probing while nobody knows a free gap, and when its read is due.
    leader: Option<(u64, Instant)>,
    /// Reads the other gateways were handed inside the prober's current step
    /// (`FOLLOWER_READS`).
    follower_reads: u32,
}

impl Shared {
    /// Some gateway of the region was busy `gap` after its last change.
    fn busy(&mut self, gap: Duration) {
        // A gateway slower than a proven free gap of the region tells nothing about the others.
        if gap > self.lower && self.upper.is_none_or(|u| gap < u) {
            self.lower = gap;
            self.handed = 0;
        }
    }

    /// Some gateway of the region was free `gap` after its last change.
    fn free(&mut self, gap: Duration) {
        if self.upper.is_none_or(|u| gap < u) {
            self.upper = Some(gap);
            self.handed = 0;
            if self.lower >= gap {
                self.lower = Duration::ZERO;
            }
        }
        self.leader = None;
    }

    /// The next point of `[lower, upper]` to read at: the middle first, then the points
    /// between those already handed out (van der Corput), so concurrent reads split the
    /// interval into many parts.
    fn point(&mut self, lower: Duration, upper: Duration) -> Duration {
        self.handed += 1;
        let mut n = self.handed;
        let (mut f, mut base) = (0.0, 0.5);
        while n > 0 {
            if n & 1 == 1 {
                f += base;
            }
            n >>= 1;
            base /= 2.0;
        }
        lower + (upper - lower).mul_f64(f)
    }

    /// The shortest gap some gateway of the region was proven free after.
    pub(crate) fn upper(&self) -> Option<Duration> {
        self.upper
    }

    /// The region's upper bound, if it does not contradict what the gateway itself knows.
    fn hint(&self, own_lower: Duration) -> Option<Duration> {
        self.upper.filter(|u| *u > own_lower + tolerance(*u))
    }
}

impl Estimate {
    /// An accepted change ends the cycle; `gap` since the previous accepted change, if that
    /// one was not yet known applied (then the gateway was free after `gap`).
    pub(crate) fn accepted(&mut self, gap: Option<Duration>, shared: &mut Shared) {
        if let Some(g) = gap {
            self.free(g);
            shared.free(g);
        }
        if self.read.is_none() && self.settled() {
            self.quiet += 1;
        }
        self.read = None;
        self.busy_at = None;
        self.noise = 0;
    }

    /// A status read asked `asked` after the last accepted change and answered at `answered`
    /// found the gateway `active` (then the change can go at once) or not. The gateway was in
    /// that state at some instant in between: `active` proves the update time is at most
    /// `answered`, `updating` that it is more than `asked`.
    pub(crate) fn read(
        &mut self,
        asked: Duration,
        answered: Duration,
        active: bool,
        shared: &mut Shared,
    ) -> Busy {
        let took = answered.saturating_sub(asked);
        // The longest recent window, forgotten by halves as reads get quicker again.
        self.window = took.max(self.window / 2);
        let gap = if active { answered } else { asked };
        let checked = self.read.is_some_and(|r| self.is_check(r));
        self.read = None;
        self.quiet = 0;
        if active {
            let before = self.upper;
            self.free(gap);
            shared.free(gap);
            if checked {
                if self.upper == before {
                    self.check_after = self.check_after.saturating_mul(2);
                } else {
                    // Faster than it was: learn it again, and check again soon.
                    self.check_after = FIRST_CHECK;
                }
            }
            return Busy::Consistent;
        }
        if checked {
            self.check_after = self.check_after.saturating_mul(2);
        }
        let fits = self.busy(gap);
        if fits == Busy::Consistent {
            shared.busy(gap);
        } else {
            self.noise += 1;
        }
        self.busy_at = Some(self.busy_at.map_or(gap, |b| b.max(gap)));
        fits
    }

    /// Whether a read `gap` after the last accepted change should find the gateway `active`:
    /// the gap is past a free gap this gateway or its region proved. A list read then confirms
    /// the change as well as a status read would (a listed change has been applied).
    pub(crate) fn expects_active(&self, gap: Duration, shared: &Shared) -> bool {
        let hint = shared.hint(self.lower).filter(|_| !self.alone);
        let proven = match (self.upper, hint) {
            (Some(u), Some(h)) => Some(u.min(h)),
            (u, h) => u.or(h),
        };
        proven.is_some_and(|p| gap >= p)
    }

    /// The gateway refused a change sent `gap` after the last accepted one as busy.
    pub(crate) fn refused(&mut self, gap: Duration) -> Busy {
        self.read = None;
        let fits = self.busy(gap);
        if fits == Busy::Contradicting {
            self.noise += 1;
        }
        self.busy_at = Some(self.busy_at.map_or(gap, |b| b.max(gap)));
        fits
    }

    /// What to do next in this cycle; `gap` is the time since the last accepted change, `me`
    /// this gateway among those sharing `shared`, `now` the clock.
    pub(crate) fn advise(
        &mut self,
        shared: &mut Shared,
        me: u64,
        gap: Duration,
        now: Instant,
    ) -> Advice {
        if let Some(r) = self.read {
            // The read planned for this cycle stands, unless another gateway of the region
            // proved a shorter gap free since.
            let sooner = shared.hint(self.lower).filter(|h| !self.alone && *h < r);
            if sooner.is_none() {
                return Advice::Read(r);
            }
            self.read = None;
        }
        let (advice, keep) = self.choose(shared, me, gap, now);
        if keep && let Advice::Read(r) = advice {
            self.read = Some(r);
        }
        advice
    }

    fn choose(&self, shared: &mut Shared, me: u64, gap: Duration, now: Instant) -> (Advice, bool) {
        if self.noise > 0 {
            // Busy after a proven-free gap: read again after a short pause, never send blind.
            let b = self.busy_at.unwrap_or(gap);
            return (Advice::Read(b + self.noise_pause(self.noise - 1)), true);
        }
        let hint = shared.hint(self.lower).filter(|_| !self.alone);
        if let Some(b) = self.busy_at {
            // One read this cycle said `updating`: go at the proven bound without another read,
            // the region's if it is tighter (another gateway's read may have proven it since).
            let hinted = hint.filter(|h| *h > b);
            return match (self.upper.filter(|u| *u > b), hinted) {
                (Some(u), h) => {
                    let u = h.map_or(u, |h| h.min(u));
                    (Advice::Send(u + margin(u)), false)
                }
                (None, Some(h)) => (Advice::Read(h + tolerance(h)), true),
                (None, None) => self.blind(shared, me, gap, now),
            };
        }
        let Some(upper) = self.upper else {
            if let Some(h) = hint {
                // Another gateway of the region proved this gap free: trust it, as later
                // cycles do. Gateways of one region, account and specification update alike; one
                // that is slower is refused once (the call a confirming read would cost on every
                // gateway) and then learns its own pace.
                return (Advice::Send(h + margin(h)), false);
            }
            return self.blind(shared, me, gap, now);
        };
        // The region proved a shorter gap free: trust it without a read of its own. A gateway
        // that is slower after all is refused once, its lower bound then passes the region's
        // and `hint` ignores the region.
        let upper = hint.filter(|h| *h < upper).unwrap_or(upper);
        let lower = if shared.lower < upper && !self.alone {
            self.lower.max(shared.lower)
        } else {
            self.lower
        };
        if upper.saturating_sub(lower) > self.resolution(upper) {
            return (Advice::Read(shared.point(lower, upper)), true);
        }
        if self.quiet >= self.check_after {
            return (Advice::Read(upper.mul_f64(CHECK_AT)), true);
        }
        (Advice::Send(upper + margin(upper)), false)
    }

    /// Nothing proves a free gap: one gateway of the region reads at growing gaps; the others
    /// read once each inside its step while the region has reads to hand out
    /// (`FOLLOWER_READS`), and otherwise wait for what they find.
    fn blind(&self, shared: &mut Shared, me: u64, gap: Duration, now: Instant) -> (Advice, bool) {
        if let Some((leader, due)) = shared.leader
            && leader != me
            && now < due + LEADER_SLACK
        {
            let step = (shared.lower, shared.lower.mul_f64(PROBE_GROWTH));
            // At most once in a step each: a gateway that read busy in it waits until the
            // region's lower bound passes its read.
            if self.busy_at.is_none_or(|b| b < shared.lower)
                && step.1 - step.0 >= FOLLOW_STEP
                && shared.follower_reads < FOLLOWER_READS
            {
                shared.follower_reads += 1;
                return (Advice::Read(shared.point(step.0, step.1).max(gap)), true);
            }
            let wait = due.saturating_duration_since(now) + FOLLOW_PAUSE;
            return (Advice::Wait(gap + wait), false);
        }
        let base = self
            .busy_at
            .unwrap_or_default()
            .max(self.lower)
            .max(shared.lower);
        let next = FIRST_PROBE.max(base.mul_f64(PROBE_GROWTH));
        shared.leader = Some((me, now + next.saturating_sub(gap)));
        shared.follower_reads = 0;
        (Advice::Read(next), true)
    }

    fn is_check(&self, read: Duration) -> bool {
        self.upper
            .is_some_and(|u| read == u.mul_f64(CHECK_AT) && self.settled())
    }

    /// The gateway was busy `gap` after the last accepted change.
    fn busy(&mut self, gap: Duration) -> Busy {
        if self.upper.is_some_and(|u| gap >= u) {
            self.contradicted = true;
            return Busy::Contradicting;
        }
        self.lower = self.lower.max(gap);
        Busy::Consistent
    }

    /// The gateway was free `gap` after the last accepted change.
    fn free(&mut self, gap: Duration) {
        if self.contradicted {
            self.contradicted = false;
            self.contradicted_cycles += 1;
            if self.contradicted_cycles >= RELEARN_AFTER {
                // Busy after proven-free gaps cycle after cycle: the gateway got slower.
                *self = Self {
                    lower: self.upper.unwrap_or_default(),
                    upper: Some(gap),
                    alone: true,
                    ..Self::default()
                };
            }
            // A noisy cycle proves nothing about the update time.
            return;
        }
        self.contradicted_cycles = 0;
        let upper = self.upper.map_or(gap, |u| u.min(gap));
        self.upper = Some(upper);
        if self.lower >= upper {
            // The gateway got faster: forget the old lower bound (and the region's).
            self.lower = upper.div_f64(PROBE_GROWTH);
            self.alone = true;
        }
    }

    /// Whether the bounds are close enough to send at the upper one without reading.
    fn settled(&self) -> bool {
        self.upper
            .is_some_and(|u| u.saturating_sub(self.lower) <= self.resolution(u))
    }

    /// How close the bounds must be to stop reading: the tolerance, widened by what reads
    /// that take long to answer can still tell apart (bisection with answers dated anywhere in
    /// a window `w` narrows the bounds to about `2w`, never below).
    fn resolution(&self, upper: Duration) -> Duration {
        tolerance(upper) + self.window * 2
    }

    /// The gateway's pace: the proven upper bound, else the longest busy gap (at least the
    /// first probe). Paces re-reads of the entry list.
    pub(crate) fn pace(&self) -> Duration {
        self.upper.unwrap_or(FIRST_PROBE.max(self.lower))
    }

    /// Pause before reading again after a busy answer that contradicts what is known (the
    /// `n`-th in this cycle, from 0): short, since such answers are mostly timing jitter.
    fn noise_pause(&self, n: u32) -> Duration {
        let base = self.upper.map_or(FIRST_PROBE, |u| tolerance(u) * 2);
        base.saturating_mul(1u32 << n.min(10))
            .min(Duration::from_secs(30))
    }
}

/// How close the bounds must be before the estimate is used as is, and the margin added to
/// the proven upper bound for timing jitter (gaps are measured on our side of the network).
fn tolerance(upper: Duration) -> Duration {
    Duration::from_millis(5).max(upper.mul_f64(0.005))
}

/// Margin added to the proven upper bound before sending: timing jitter only, since the gap is
/// measured from our receipt of the answer, after the gateway started updating.
fn margin(upper: Duration) -> Duration {
    Duration::from_millis(5).max(upper.mul_f64(0.0025))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// What a run of cycles cost.
    #[derive(Debug, Default)]
    struct Run {
        reads: usize,
        refused: usize,
        /// Gap of each accepted change after the previous one.
        cycles: Vec<Duration>,
    }

    /// Runs `n` changes of a gateway with update time `t(cycle)`, doing what the estimate
    /// plans, with no other gateway in the region unless `shared` says so.
    fn run(
        e: &mut Estimate,
        shared: &mut Shared,
        me: u64,
        n: usize,
        t: impl Fn(usize) -> Duration,
    ) -> Run {
        run_with_window(e, shared, me, n, t, Duration::ZERO)
    }

    /// [`run`] with status reads answered `window` after they are asked, the gateway seen as
    /// it is halfway through.
    fn run_with_window(
        e: &mut Estimate,
        shared: &mut Shared,
        me: u64,
        n: usize,
        t: impl Fn(usize) -> Duration,
        window: Duration,
    ) -> Run {
        let now = Instant::now();
        let mut r = Run::default();
        for c in 0..n {
            let t = t(c);
            let mut gap = Duration::ZERO;
            let mut free = false;
            let sent = loop {
                assert!(r.reads + r.refused < 10_000, "no progress");
                if free {
                    break gap;
                }
                match e.advise(shared, me, gap, now) {
                    Advice::Read(g) => {
                        let asked = gap.max(g);
                        gap = asked + window;
                        r.reads += 1;
                        free = asked + window / 2 >= t;
                        e.read(asked, gap, free, shared);
                    }
                    Advice::Send(g) => {
                        gap = gap.max(g);
                        if gap >= t {
                            break gap;
                        }
                        r.refused += 1;
                        e.refused(gap);
                    }
                    Advice::Wait(g) => gap = gap.max(g),
                }
            };
            r.cycles.push(sent);
            e.accepted(Some(sent).filter(|_| !free), shared);
        }
        r
    }

    /// What the gateways of one region cost together: `n` changes on each of `gateways`
    /// gateways of update time `t`, the k-th starting `stagger` x k after the first, all planning
    /// on one shared estimate in steps of a 2,000th of `t`, at least 1 ms (reads answer at
    /// once).
    fn run_region(gateways: usize, n: usize, t: Duration, stagger: Duration) -> Vec<Run> {
        let start = Instant::now();
        let mut shared = Shared::default();
        let mut es = vec![Estimate::default(); gateways];
        let mut runs: Vec<Run> = (0..gateways).map(|_| Run::default()).collect();
        // Per gateway: when its last change was accepted, and whether a read of this cycle
        // found it free.
        let mut last: Vec<Duration> = (0..gateways).map(|k| stagger * k as u32).collect();
        let mut free = vec![false; gateways];
        let (mut clock, step) = (Duration::ZERO, ms(1).max(t / 2000));
        while runs.iter().any(|r| r.cycles.len() < n) {
            assert!(clock < t * (n as u32) * 4, "no progress");
            clock += step;
            for g in 0..gateways {
                if runs[g].cycles.len() >= n || clock < last[g] {
                    continue;
                }
                let gap = clock - last[g];
                let (e, r, me) = (&mut es[g], &mut runs[g], g as u64 + 1);
                let send = free[g]
                    || match e.advise(&mut shared, me, gap, start + clock) {
                        Advice::Read(at) if gap >= at => {
                            r.reads += 1;
                            free[g] = gap >= t;
                            e.read(gap, gap, free[g], &mut shared);
                            free[g]
                        }
                        Advice::Send(at) if gap >= at => {
                            if gap < t {
                                r.refused += 1;
                                e.refused(gap);
                            }
                            gap >= t
                        }
                        _ => false,
                    };
                if send {
                    r.cycles.push(gap);
                    e.accepted(Some(gap).filter(|_| !free[g]), &mut shared);
                    (last[g], free[g]) = (clock, false);
                }
            }
        }
        runs
    }

    #[test]
    fn a_regions_gateways_starting_together_learn_fast_and_with_few_reads() {
        // Twenty gateways of one region, fifty changes each, started `stagger` apart: (update
        // time, stagger) -> most reads, longest first cycle, longest run (the prober alone found
        // a 2 s update time at 2.7 s, and every gateway waiting on it sent that late: 101.5 s
        // for the runs at 2 s, 73 s for a first cycle at 45 s).
        let table = [
            ((ms(2000), ms(50)), (63, ms(2300), ms(101_000))),
            ((ms(2000), ms(0)), (50, ms(2100), ms(100_600))),
            // Steps narrower than `FOLLOW_STEP`: the prober alone, as before.
            ((ms(300), ms(10)), (64, ms(310), ms(15_500))),
            ((ms(45_000), ms(500)), (90, ms(52_000), ms(2_280_000))),
        ];
        for ((t, stagger), (most_reads, first_cycle, longest)) in table {
            let runs = run_region(20, 50, t, stagger);
            let reads: usize = runs.iter().map(|r| r.reads).sum();
            let refused: usize = runs.iter().map(|r| r.refused).sum();
            let first = runs.iter().map(|r| r.cycles[0]).max();
            let total = runs.iter().map(|r| r.cycles.iter().sum::<Duration>()).max();
            let got = format!("{t:?}/{stagger:?}: {reads} reads, first {first:?}, run {total:?}");
            assert_eq!(refused, 0, "{got}");
            assert!(reads <= most_reads, "{got}");
            assert!(first.is_some_and(|f| f <= first_cycle), "{got}");
            assert!(total.is_some_and(|d| d <= longest), "{got}");
        }
    }

    #[test]
    fn converges_within_two_percent_with_reads_only() {
        for t in [ms(300), ms(2000), ms(7300), ms(45_000)] {
            let mut e = Estimate::default();
            let r = run(&mut e, &mut Shared::default(), 1, 40, |_| t);
            assert_eq!(r.refused, 0, "{t:?}: refused sends on a steady gateway");
            assert!(r.reads <= 16, "{t:?}: {} reads", r.reads);
            let last = *r.cycles.last().expect("cycles");
            assert!(
                last >= t && last.as_secs_f64() <= t.as_secs_f64() * 1.02 + 0.020,
                "{t:?}: {last:?}"
            );
            // The learning costs little time: the whole run is within a few % of n x T.
            let total: Duration = r.cycles.iter().sum();
            let limit = t * 40;
            assert!(
                total.as_secs_f64() <= limit.as_secs_f64() * 1.08,
                "{t:?}: {total:?} for {limit:?}"
            );
        }
    }

    #[test]
    fn fifty_changes_at_two_seconds_cost_few_reads_and_little_time() {
        let t = ms(2000);
        let r = run(
            &mut Estimate::default(),
            &mut Shared::default(),
            1,
            50,
            |_| t,
        );
        let total: Duration = r.cycles.iter().sum();
        assert_eq!(r.refused, 0);
        assert!(r.reads <= 12, "{} reads", r.reads);
        assert!(total <= (t * 50).mul_f64(1.05), "{total:?}");
    }

    #[test]
    fn noise_is_answered_with_reads_and_does_not_move_the_estimate() {
        let mut shared = Shared::default();
        let mut e = Estimate::default();
        run(&mut e, &mut shared, 1, 20, |_| ms(2000));
        let now = Instant::now();
        let Advice::Send(proven) = e.advise(&mut shared, 1, ms(0), now) else {
            panic!("settled")
        };
        // Refused after the proven gap: the next step is a read, not another send.
        assert_eq!(e.refused(proven), Busy::Contradicting);
        let Advice::Read(again) = e.advise(&mut shared, 1, proven, now) else {
            panic!("read after noise")
        };
        assert!(again > proven && again < proven + ms(200), "{again:?}");
        e.read(again, again, true, &mut shared);
        e.accepted(None, &mut shared);
        assert_eq!(e.advise(&mut shared, 1, ms(0), now), Advice::Send(proven));
    }

    #[test]
    fn follows_a_gateway_that_gets_slower_or_faster() {
        let mut shared = Shared::default();
        let mut e = Estimate::default();
        run(&mut e, &mut shared, 1, 20, |_| ms(2000));
        // Slower: a few refusals (each followed by reads), then sends at the new time.
        let r = run(&mut e, &mut shared, 1, 30, |_| ms(3000));
        assert!(
            r.refused <= RELEARN_AFTER as usize + 1,
            "{} refused",
            r.refused
        );
        let last = *r.cycles.last().expect("cycles");
        assert!(last >= ms(3000) && last <= ms(3070), "{last:?}");
        // Faster: found by the periodic check, without any refusal.
        let r = run(&mut e, &mut shared, 1, 80, |_| ms(1000));
        assert_eq!(r.refused, 0);
        let last = *r.cycles.last().expect("cycles");
        assert!(last >= ms(1000) && last <= ms(1030), "{last:?}");
        assert!(r.reads <= 16, "{} reads", r.reads);
    }

    #[test]
    fn a_new_gateway_starts_from_its_region_without_a_read() {
        let mut shared = Shared::default();
        let alone = run(&mut Estimate::default(), &mut shared, 1, 30, |_| ms(2000));
        assert!(alone.reads > 0);
        // A gateway like the others sends at the region's proven bound from its first change:
        // no read of its own, none refused.
        let joined = run(&mut Estimate::default(), &mut shared, 2, 30, |_| ms(2000));
        assert_eq!((joined.reads, joined.refused), (0, 0), "{joined:?}");
        assert!(joined.cycles[0] <= ms(2050), "{:?}", joined.cycles[0]);
        // A slower one is refused once, the call the read would have cost, then learns its
        // own pace apart from the region.
        let slow = run(&mut Estimate::default(), &mut shared, 3, 30, |_| ms(5000));
        assert_eq!(slow.refused, 1, "{slow:?}");
        assert!(*slow.cycles.last().expect("cycles") <= ms(5100));
    }

    #[test]
    fn a_read_past_a_proven_free_gap_expects_the_gateway_active() {
        let mut shared = Shared::default();
        let fresh = Estimate::default();
        // Nothing proven anywhere: no read expects `active`.
        assert!(!fresh.expects_active(ms(60_000), &shared));
        // The region proved 2 s free: a new gateway expects it from 2 s on.
        shared.free(ms(2000));
        assert!(!fresh.expects_active(ms(1999), &shared));
        assert!(fresh.expects_active(ms(2000), &shared));
        // Its own proof counts where the region knows nothing.
        let mut own = Estimate::default();
        own.free(ms(1500));
        assert!(own.expects_active(ms(1500), &Shared::default()));
        assert!(!own.expects_active(ms(1400), &Shared::default()));
        // A gateway that changed pace ignores the region.
        let alone = Estimate {
            alone: true,
            ..Estimate::default()
        };
        assert!(!alone.expects_active(ms(2000), &shared));
    }

    #[test]
    fn while_nobody_knows_one_gateway_probes_for_the_region() {
        let now = Instant::now();
        let mut shared = Shared::default();
        let (mut a, mut b) = (Estimate::default(), Estimate::default());
        assert_eq!(
            a.advise(&mut shared, 1, ms(0), now),
            Advice::Read(FIRST_PROBE)
        );
        // The other waits for the prober's read instead of reading too.
        assert!(matches!(
            b.advise(&mut shared, 2, ms(0), now),
            Advice::Wait(_)
        ));
        a.read(FIRST_PROBE, FIRST_PROBE, false, &mut shared);
        let Advice::Read(next) = a.advise(&mut shared, 1, FIRST_PROBE, now) else {
            panic!("probe on")
        };
        a.read(next, next, true, &mut shared);
        // Now the region knows a free gap: the other sends there.
        assert_eq!(
            b.advise(&mut shared, 2, next, now),
            Advice::Send(next + margin(next))
        );
    }

    #[test]
    fn concurrent_reads_split_the_interval() {
        let mut shared = Shared::default();
        let points: Vec<_> = (0..4).map(|_| shared.point(ms(1000), ms(2000))).collect();
        assert_eq!(points, vec![ms(1500), ms(1250), ms(1750), ms(1125)]);
    }

    #[test]
    fn reads_that_answer_late_stop_once_they_cannot_tell_more() {
        // Status reads waiting up to a quarter second behind other calls (a binding API rate):
        // the bounds never get within 0.5 %, and the reads stop at what they can tell apart
        // instead of costing one per change.
        let t = ms(2000);
        for window in [ms(50), ms(250), ms(1000)] {
            let mut e = Estimate::default();
            let r = run_with_window(&mut e, &mut Shared::default(), 1, 50, |_| t, window);
            assert_eq!(r.refused, 0, "{window:?}");
            assert!(r.reads <= 12, "{window:?}: {} reads", r.reads);
            let last = *r.cycles.last().expect("cycles");
            assert!(last >= t && last <= t + window * 3, "{window:?}: {last:?}");
        }
    }
}
