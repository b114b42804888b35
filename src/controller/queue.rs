//! One gateway's change queue as a pure state machine: the order of its changes, their pacing
//! (at most one in flight, the next once the gateway should be `active` again), the read-back
//! of applied changes and the rules for retrying. No locks, channels or clock reads: the driver
//! (`scheduler.rs`) feeds it events with the time and runs the commands it returns.
//!
//! The driver's loop: `Event::Free` plans the next step and answers `Command::SleepUntil`; the
//! driver sleeps until then, or until new work wakes it, and says `Event::Due`. A due step
//! answers with a call to make (`Send`, `ReadStatus`, `ReadList`, `LearnPeers`), whose outcome
//! comes back as the matching event, or with nothing (the next `Free` plans again). Calls of
//! reconciles (`submit`, `forget`, `view`) change the state directly; the driver wakes its loop
//! when `submit` says so.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::estimate::{Advice, Estimate, Shared};
use super::job::{JobView, Owner, Stall};
use super::model::{Accepted, Entry, GatewayStatus, Mutation, Scope};
use alicloud_vpc_client::{CloudError, ErrorClass, Priority, Retrier};

/// Retry delays after errors that say nothing about the update time (throttling, a gateway
/// busy with someone else's change, failed status reads): doubling from the first to the last.
pub(crate) const FIRST_STEP: Duration = Duration::from_millis(200);
const MAX_STEP: Duration = Duration::from_secs(30);

/// The longest wait between tries while the gateway is busy with a change not ours.
const FOREIGN_BUSY_MAX_STEP: Duration = Duration::from_secs(5);

/// While other changes of its gateway wait to be sent, applied changes are read back (one
/// list call) only once the oldest has waited this long and at least `VERIFY_BATCH` of them
/// are unlisted; otherwise once the queue is empty. Each such read costs a call that a long
/// burst would rather spend on changes: a minute is about thirty changes at a 2 s update time,
/// and the batch keeps read-backs below one call in thirty changes when the account's API
/// rate, not the gateway, paces the changes (they then come far apart).
const VERIFY_AT_MOST: Duration = Duration::from_secs(60);
const VERIFY_BATCH: usize = 32;
/// While the gateway, not the account's API rate, paces its changes (`gateway_binds`), a list
/// costs no change its turn: applied changes are read back every this many
/// (`--read-back-every`), so a route turns `Ready` a few update times after its change instead
/// of at the batch or the queue's end.
pub(crate) const READ_BACK_EVERY: usize = 4;
/// List reads that may miss an applied change (each change counts its own) before it is given
/// up on: a create whose answer did not name its entry is then replayed once with its own token
/// (the cloud repeats its answer if the entry exists, unlisted or not); any other change, a
/// create answered with its entry (a replay would repeat that answer) and a replayed create go
/// back to their route, which re-plans from the list.
pub(crate) const VERIFY_TRIES: u32 = 5;
/// The least time after a change was accepted before its read-back gives up on the list:
/// the cloud lists changes some time after the gateway is `active` again (late visibility), so
/// reads at the gateway's pace alone could give up on a change that is merely not listed yet.
pub(crate) const LIST_LAG_MAX: Duration = Duration::from_secs(30);

/// The gateway's own reads (its status, or the entry list for applied changes) that fail in a
/// row, over at least `STALL_AFTER`, before the changes waiting on them say so: a one-off
/// failure is retried within a second and is not worth a status write per route. Both bounds
/// count failed reads and time since the first of them, never time in the queue (10,000
/// changes on one gateway legitimately wait for minutes).
pub(crate) const STALL_READS: u32 = 3;
pub(crate) const STALL_AFTER: Duration = Duration::from_secs(5);

/// Gateways that share what they learn of their update time: one region, one account and one
/// specification (the specification `None` when the gateway's answer had none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Peers {
    pub(crate) region_id: String,
    /// The account key of the gateways' rate limiter (`CredentialsHandle::account`). The
    /// gateway that probes for its peers spends its own account's rate and waits at its
    /// limiter, and its peers wait for that probe: gateways of another account must neither pay
    /// for it nor wait behind another account's throttling.
    pub(crate) account: String,
    pub(crate) spec: Option<String>,
}

impl Peers {
    /// The peers of the gateway of `scope`, of specification `spec`.
    pub(crate) fn of(scope: &Scope, spec: Option<String>) -> Self {
        Self {
            region_id: scope.region_id.clone(),
            account: scope.credentials.account.clone(),
            spec,
        }
    }
}

/// What each region (and specification) learned of its gateways' update time.
pub(crate) type Regions = HashMap<Peers, Shared>;

/// The cloud's answer to a call.
pub(crate) type Answer<T> = Result<T, CloudError>;

/// What happened, as the driver tells it.
#[derive(Debug)]
pub(crate) enum Event {
    /// The driver is free for the next step: plan it.
    Free,
    /// The planned step's time came, or (`woken`) new work woke the driver before it.
    Due { woken: bool },
    /// The answer to `Command::Send`.
    Sent(Answer<Accepted>),
    /// The answer to `Command::LearnPeers`.
    Peers(Peers),
    /// The answer to `Command::ReadStatus`.
    StatusRead(Answer<GatewayStatus>),
    /// The answer to `Command::ReadList`.
    ListRead(Answer<Arc<Vec<Entry>>>),
}

/// What the driver does, in order.
#[derive(Debug)]
pub(crate) enum Command {
    /// Sleep until then (`None`: until woken), waking early for new work; then `Event::Due`.
    SleepUntil(Option<Instant>),
    /// Wait this long whatever comes (a back-off); then `Event::Free`.
    Pause(Duration),
    /// Send the change at this class (`Priority::Prompt` for a lone change, else
    /// `Priority::Mutation`); its answer is `Event::Sent`.
    Send {
        scope: Arc<Scope>,
        mutation: Mutation,
        class: Priority,
    },
    /// Read the gateway's status at this class; the answer is `Event::StatusRead`.
    ReadStatus { scope: Arc<Scope>, class: Priority },
    /// Read the whole entry list now at this class; the answer is `Event::ListRead`.
    ReadList { scope: Arc<Scope>, class: Priority },
    /// Find the gateway's region, account and specification; the answer is `Event::Peers`.
    LearnPeers(Arc<Scope>),
    /// Tell the read cache of an accepted change.
    CacheApply {
        scope: Arc<Scope>,
        mutation: Mutation,
        created: Option<Entry>,
    },
    /// The cache may be wrong: the change may or may not have happened.
    CacheInvalidate(Arc<Scope>),
    /// Wake these owners (their job moved on).
    Wake(Vec<Owner>),
    /// The owner's job is gone from this gateway (it was dropped while on the wire): forget
    /// where it was and wake it.
    Release(Owner),
    /// The region proved a shorter update time: the other gateways sharing it plan again.
    WakePeers(Peers),
}

/// The gateway's reads of one kind that failed in a row, until one succeeds.
#[derive(Debug, Default)]
struct FailedReads {
    count: u32,
    since: Option<Instant>,
    last: Option<Arc<CloudError>>,
    /// The code the waiting routes were told last: told again only for a new one.
    told: Option<String>,
}

impl FailedReads {
    /// Records a failed read at `now`; true when the changes waiting on it should say so now
    /// (the bounds were just passed, or the failure has a new code).
    fn failed(&mut self, e: CloudError, now: Instant) -> bool {
        self.count += 1;
        self.since.get_or_insert(now);
        let code = e.code().to_owned();
        self.last = Some(Arc::new(e));
        if self.stalled(now).is_none() || self.told.as_deref() == Some(code.as_str()) {
            return false;
        }
        self.told = Some(code);
        true
    }

    fn succeeded(&mut self) {
        *self = Self::default();
    }

    /// The last error, once the reads failed past both bounds.
    fn stalled(&self, now: Instant) -> Option<Arc<CloudError>> {
        let long = self
            .since
            .is_some_and(|s| now.saturating_duration_since(s) >= STALL_AFTER);
        self.last
            .clone()
            .filter(|_| self.count >= STALL_READS && long)
    }
}

#[derive(Debug)]
enum JobState {
    Queued,
    InFlight,
    Accepted {
        /// Boxed: most jobs of a backlog are queued, and a queued job should not carry the
        /// room of an answer (the entry and request id) it does not have yet.
        accepted: Box<Accepted>,
        seq: u64,
        at: Instant,
        /// Seen in the entry list (or given up on: the route then re-plans from the list).
        listed: bool,
        /// List reads since it was applied that did not show it.
        tries: u32,
    },
    Failed(Arc<CloudError>),
}

impl JobState {
    /// Whether the job still holds its gateway: waiting, on the wire, or accepted and not yet
    /// seen in the list.
    fn pending(&self) -> bool {
        matches!(
            self,
            Self::Queued | Self::InFlight | Self::Accepted { listed: false, .. }
        )
    }
}

#[derive(Debug)]
struct Job {
    /// The gateway's scope, shared by its jobs while their credentials agree (`submit`).
    scope: Arc<Scope>,
    mutation: Mutation,
    generation: Option<i64>,
    state: JobState,
    /// The owner no longer wants it, but it was on the wire: not sent again.
    cancelled: bool,
    /// A create sent again with its token after the list never showed it.
    replayed: bool,
    /// Submitted while no other change held the gateway and no other route shared its reads:
    /// its calls go at `Priority::Prompt`.
    lone: bool,
}

/// The step planned by `Event::Free`, run when due.
#[derive(Debug)]
enum Step {
    Send(Owner, Instant),
    Probe(Arc<Scope>, Instant),
    Verify(Arc<Scope>, Instant),
    /// Nothing waits to be sent: the last change counts as applied at this instant (the
    /// proven update time has passed), without a read.
    Settle(Instant),
    /// Plan again at this instant (another gateway of the region is probing for this one).
    Wait(Instant),
    Idle,
}

impl Step {
    fn at(&self) -> Option<Instant> {
        match self {
            Self::Send(_, at)
            | Self::Probe(_, at)
            | Self::Verify(_, at)
            | Self::Settle(at)
            | Self::Wait(at) => Some(*at),
            Self::Idle => None,
        }
    }
}

/// The call on the wire, whose answer the next event brings.
#[derive(Debug)]
enum Call {
    Send {
        owner: Owner,
        scope: Arc<Scope>,
        mutation: Mutation,
        /// Time since the last accepted change when it went out, if that one was not known
        /// applied.
        gap: Option<Duration>,
        /// When it went out (the driver's call then waits at the rate limiter first).
        at: Instant,
    },
    /// An accepted change waiting for the gateway's peers to be known.
    Peers {
        owner: Owner,
        accepted: Accepted,
        answered: Instant,
    },
    Status {
        gap: Option<Duration>,
    },
    List {
        /// Time since the last accepted change when the read went out, if that change was not
        /// known applied: a list that shows it proves it applied, as an `active` status would.
        gap: Option<Duration>,
    },
}

/// What `forget` did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Forgot {
    /// The owner has no job left here.
    Gone,
    /// Its job is on the wire: it stays until it finishes.
    OnTheWire,
}

/// One gateway's queue and what is known of its update time.
#[derive(Debug)]
pub(crate) struct GatewayQueue {
    /// This gateway among those sharing what they learn.
    id: u64,
    /// Off: every change is sent at once and a busy gateway fails the job, as a naive
    /// operator would do (the benchmark's baseline).
    paced: bool,
    order: VecDeque<Owner>,
    /// Boxed: a job is large and the map keeps spare slots (10,000 routes hold one each).
    jobs: HashMap<Owner, Box<Job>>,
    /// Count of accepted changes; `confirmed` is the highest one known to be applied.
    accepted: u64,
    confirmed: u64,
    last_accept: Option<Instant>,
    /// What is known of the time the gateway stays `updating` after a change.
    estimate: Estimate,
    /// Whom it shares what it learns with (known after its first accepted change).
    peers: Option<Peers>,
    status: Option<GatewayStatus>,
    /// A scope to probe the gateway with (any job's).
    probe_scope: Option<Arc<Scope>>,
    /// How long the last change took from going out to its answer: mostly its wait at the
    /// account's rate limiter, which tells whether the API rate or the gateway binds.
    last_send: Option<Duration>,
    /// Whether the account's API rate had room when the driver last asked (`CloudPort::
    /// rate_has_room`, before each event).
    rate_room: bool,
    /// Applied changes read back together while the gateway binds (`READ_BACK_EVERY`).
    read_back_every: usize,
    /// Whether a list read back a change since the gateway was last quiet: until one has, the
    /// first applied change is read back alone (the first route of a burst is `Ready` one read
    /// after its change).
    read_back_since_quiet: bool,
    /// When to read the list again for applied changes it did not show yet.
    verify_after: Option<Instant>,
    /// The last accepted change a list read was sent to confirm: if that list did not show
    /// it, a status read confirms it (the cloud may list a change late).
    list_confirms: u64,
    /// Status reads (probes) and list reads (read-backs) failing in a row.
    status_reads: FailedReads,
    list_reads: FailedReads,
    /// The current retry delay (see `FIRST_STEP`).
    retry: Duration,
    planned: Step,
    call: Option<Call>,
}

/// Whether an accepted create's answer named the entry it made.
fn answered_with_entry(state: &JobState) -> bool {
    matches!(state, JobState::Accepted { accepted, .. } if accepted.entry.is_some())
}

/// The accepted job of the lowest sequence number among `jobs`.
fn oldest<'a>(jobs: impl Iterator<Item = (&'a Owner, &'a Job)>) -> Option<&'a Job> {
    jobs.map(|(_, j)| j).min_by_key(|j| match j.state {
        JobState::Accepted { seq, .. } => seq,
        _ => u64::MAX,
    })
}

/// Owners in key order, not a map's: a simulated seed replays the wake-ups exactly.
pub(crate) fn in_key_order(mut owners: Vec<Owner>) -> Vec<Owner> {
    owners.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    owners
}

/// A wake command, unless there is nobody to wake.
fn wake(owners: Vec<Owner>) -> Option<Command> {
    (!owners.is_empty()).then_some(Command::Wake(owners))
}

impl GatewayQueue {
    /// `id` tells this gateway from the others sharing its region's estimate; `paced` off
    /// sends every change at once (see the field).
    pub(crate) fn new(id: u64, paced: bool) -> Self {
        Self {
            id,
            paced,
            order: VecDeque::new(),
            jobs: HashMap::new(),
            accepted: 0,
            confirmed: 0,
            last_accept: None,
            estimate: Estimate::default(),
            peers: None,
            status: None,
            probe_scope: None,
            last_send: None,
            rate_room: true,
            read_back_every: READ_BACK_EVERY,
            read_back_since_quiet: false,
            verify_after: None,
            list_confirms: 0,
            status_reads: FailedReads::default(),
            list_reads: FailedReads::default(),
            retry: FIRST_STEP,
            planned: Step::Idle,
            call: None,
        }
    }

    /// Applied changes read back together while the gateway binds (at least 1).
    pub(crate) fn with_read_back_every(mut self, n: usize) -> Self {
        self.read_back_every = n.max(1);
        self
    }

    /// What the driver found of the account's API rate before an event.
    pub(crate) fn rate_has_room(&mut self, room: bool) {
        self.rate_room = room;
    }

    // ---- calls of reconciles ----

    /// Queues `mutation` for `owner`, planned from spec `generation`; `alone`: no other route
    /// shares the gateway's reads (`Cached::shared`). A queued job of the same owner is
    /// replaced (the plan changed); one in flight, or accepted and not yet listed, is left alone
    /// and its outcome reported first. True when the driver should plan again.
    pub(crate) fn submit(
        &mut self,
        owner: &Owner,
        scope: &Scope,
        mutation: Mutation,
        generation: Option<i64>,
        alone: bool,
    ) -> bool {
        if let Some(job) = self.jobs.get_mut(owner) {
            // On the wire, or accepted and not yet seen in the list: its outcome is recorded
            // first (a decision made meanwhile on an older copy must not replace it).
            if matches!(
                job.state,
                JobState::InFlight | JobState::Accepted { listed: false, .. }
            ) {
                return false;
            }
            if matches!(job.state, JobState::Queued) && job.mutation == mutation {
                job.generation = generation;
                return false;
            }
        }
        let quiet = self.quiet_besides(Some(owner));
        if quiet {
            self.read_back_since_quiet = false;
        }
        let lone = quiet && alone;
        self.order.retain(|o| o != owner);
        self.order.push_back(owner.clone());
        // One scope for the gateway's jobs while the credentials agree: the key names the
        // access key (or role), so an equal key signs the same way.
        let scope = match self.probe_scope.take() {
            Some(known) if known.signs_like(scope) => known,
            _ => Arc::new(scope.clone()),
        };
        self.probe_scope = Some(scope.clone());
        self.jobs.insert(
            owner.clone(),
            Box::new(Job {
                scope,
                mutation,
                generation,
                state: JobState::Queued,
                cancelled: false,
                replayed: false,
                lone,
            }),
        );
        true
    }

    /// Drops the owner's finished job (its outcome has been recorded) or cancels a queued one
    /// (the plan no longer wants it). A job on the wire stays until it finishes.
    pub(crate) fn forget(&mut self, owner: &Owner) -> Forgot {
        match self.jobs.get_mut(owner) {
            Some(j) if matches!(j.state, JobState::InFlight) => {
                j.cancelled = true;
                return Forgot::OnTheWire;
            }
            Some(_) => {
                self.jobs.remove(owner);
                self.order.retain(|o| o != owner);
            }
            None => {}
        }
        Forgot::Gone
    }

    /// The owner's job as its reconcile sees it.
    pub(crate) fn view(&self, owner: &Owner, now: Instant) -> Option<JobView> {
        let job = self.jobs.get(owner)?;
        let stalled = self.stall(&job.state, now);
        let create = matches!(job.mutation, Mutation::Create { .. });
        Some(match &job.state {
            JobState::Queued => JobView::Queued {
                mutation: job.mutation.clone(),
                generation: job.generation,
                stalled,
            },
            JobState::InFlight => JobView::InFlight,
            JobState::Accepted {
                accepted,
                seq,
                listed,
                ..
            } => JobView::Accepted {
                accepted: Accepted::clone(accepted),
                confirmed: *seq <= self.confirmed && *listed,
                create,
                stalled,
            },
            JobState::Failed(e) => JobView::Failed {
                error: e.clone(),
                create,
            },
        })
    }

    /// The last status the queue saw of its gateway.
    pub(crate) fn status(&self) -> Option<&GatewayStatus> {
        self.status.as_ref()
    }

    /// Whom it shares its update time with, once known.
    pub(crate) fn peers(&self) -> Option<&Peers> {
        self.peers.as_ref()
    }

    /// Changes on the wire right now.
    pub(crate) fn in_flight(&self) -> usize {
        self.jobs
            .values()
            .filter(|j| matches!(j.state, JobState::InFlight))
            .count()
    }

    /// The watch shows a burst joining the gateway: its changes are no longer lone (their
    /// calls go at the burst's classes from now on; one on the wire keeps its class).
    pub(crate) fn accompanied(&mut self) {
        for job in self.jobs.values_mut() {
            job.lone = false;
        }
    }

    /// No change holds the gateway (the next one submitted is lone).
    pub(crate) fn quiet(&self) -> bool {
        self.quiet_besides(None)
    }

    /// No change but `owner`'s holds the gateway.
    fn quiet_besides(&self, owner: Option<&Owner>) -> bool {
        !self
            .jobs
            .iter()
            .any(|(o, j)| Some(o) != owner && j.state.pending())
    }

    /// Changes waiting or on the wire (the queue-depth metric).
    pub(crate) fn depth(&self) -> usize {
        self.jobs
            .values()
            .filter(|j| matches!(j.state, JobState::Queued | JobState::InFlight))
            .count()
    }

    /// Whether some change waits on the gateway's status reads, and on its list reads, that
    /// keep failing (the stall metric).
    pub(crate) fn stalled_reads(&self, now: Instant) -> (bool, bool) {
        let waiting = |stall: fn(&Stall) -> bool| {
            self.jobs
                .values()
                .any(|j| self.stall(&j.state, now).as_ref().is_some_and(stall))
        };
        (
            waiting(|s| matches!(s, Stall::Queued(_) | Stall::Status(_))),
            waiting(|s| matches!(s, Stall::List(_))),
        )
    }

    // ---- the driver's events ----

    /// Takes one event at `now`; `regions` holds what every region learned (this gateway's
    /// share is looked up by its peers). Returns what the driver does next, in order.
    pub(crate) fn on(&mut self, event: Event, now: Instant, regions: &mut Regions) -> Vec<Command> {
        match event {
            Event::Free => self.plan_step(now, regions),
            Event::Due { woken } => {
                let send_due = matches!(self.planned, Step::Send(_, at) if at <= now);
                if woken && !send_due {
                    return self.plan_step(now, regions);
                }
                self.run_step(now)
            }
            Event::Sent(result) => self.sent(result, now, regions),
            Event::Peers(peers) => match self.call.take() {
                Some(Call::Peers {
                    owner,
                    accepted,
                    answered,
                }) => self.record_accepted(owner, accepted, peers, answered, now, regions),
                other => {
                    self.call = other;
                    Vec::new()
                }
            },
            Event::StatusRead(result) => self.status_read(result, now, regions),
            Event::ListRead(result) => self.list_read(result, now, regions),
        }
    }

    fn plan_step(&mut self, now: Instant, regions: &mut Regions) -> Vec<Command> {
        self.planned = self.next_step(now, regions);
        vec![Command::SleepUntil(self.planned.at())]
    }

    fn run_step(&mut self, now: Instant) -> Vec<Command> {
        match std::mem::replace(&mut self.planned, Step::Idle) {
            Step::Send(owner, _) => self.start_send(owner, now),
            Step::Probe(scope, _) => {
                self.call = Some(Call::Status {
                    gap: self.pending_gap(now),
                });
                // Ahead of every other call: an answer delayed by a backlog times the backlog.
                vec![Command::ReadStatus {
                    scope,
                    class: Priority::Pacing,
                }]
            }
            Step::Verify(scope, _) => {
                if self.unconfirmed() {
                    self.list_confirms = self.accepted;
                }
                self.call = Some(Call::List {
                    gap: self.pending_gap(now),
                });
                // A lone change's read-back is what its route waits for to be `Ready`; so is
                // the first read-back since the gateway was quiet (a burst's first route of the
                // gateway): one per gateway and quiet spell, like a lone change, so the class
                // cannot hold a burst back.
                let class =
                    if !self.read_back_since_quiet || self.awaiting_list().any(|(_, j)| j.lone) {
                        Priority::Prompt
                    } else {
                        Priority::Progress
                    };
                vec![Command::ReadList { scope, class }]
            }
            Step::Settle(_) => {
                self.confirm(self.accepted);
                self.status = Some(GatewayStatus::Active);
                // Nothing waits on a status read any more.
                self.status_reads.succeeded();
                Vec::new()
            }
            Step::Wait(_) | Step::Idle => Vec::new(),
        }
    }

    /// What to do next, and when.
    fn next_step(&mut self, now: Instant, regions: &mut Regions) -> Step {
        let change = if let Some((owner, scope)) = self.queued_head() {
            match self.advice(regions, now).filter(|_| self.paced) {
                None => Step::Send(owner, now),
                Some((Advice::Send(_), at)) => Step::Send(owner, at),
                Some((Advice::Read(_), at)) => Step::Probe(scope, at),
                Some((Advice::Wait(_), at)) => Step::Wait(at),
            }
        } else if let Some(scope) = self.probe_scope.clone().filter(|_| self.paced) {
            match self.advice(regions, now) {
                None => Step::Idle,
                Some((Advice::Send(_), at)) => Step::Settle(at),
                // The read-back goes now anyway: when the gateway should be active by then, the
                // list that shows the last change confirms it, without a status read first.
                Some((Advice::Read(g), at)) if self.list_may_confirm(g, regions) => {
                    let scope = self.oldest_awaiting_list().unwrap_or(scope);
                    Step::Verify(scope, at)
                }
                Some((Advice::Read(_), at)) => Step::Probe(scope, at),
                Some((Advice::Wait(_), at)) => Step::Wait(at),
            }
        } else {
            Step::Idle
        };
        // A due list read of applied changes goes before a change that is not due yet.
        match (self.verify_at(now), change.at()) {
            (Some((scope, at)), None) => Step::Verify(scope, at),
            (Some((scope, at)), Some(t)) if at < t => Step::Verify(scope, at),
            _ => change,
        }
    }

    /// Puts the owner's queued job on the wire as it stands now: while the driver slept, the
    /// job may have been replaced or cancelled, and only what is still queued goes.
    fn start_send(&mut self, owner: Owner, now: Instant) -> Vec<Command> {
        let gap = self.pending_gap(now);
        let Some(job) = self
            .jobs
            .get_mut(&owner)
            .filter(|j| matches!(j.state, JobState::Queued))
        else {
            return Vec::new();
        };
        job.state = JobState::InFlight;
        let class = if job.lone {
            Priority::Prompt
        } else {
            Priority::Mutation
        };
        let (scope, mutation) = (job.scope.clone(), job.mutation.clone());
        self.call = Some(Call::Send {
            owner,
            scope: scope.clone(),
            mutation: mutation.clone(),
            gap,
            at: now,
        });
        vec![Command::Send {
            scope,
            mutation,
            class,
        }]
    }

    /// The answer to a send. The call may have waited in the rate limiter: the gateway was
    /// free when the change arrived, at the latest when the answer came (`now`), and busy at
    /// the earliest when it was sent.
    fn sent(
        &mut self,
        result: Answer<Accepted>,
        now: Instant,
        regions: &mut Regions,
    ) -> Vec<Command> {
        let Some(Call::Send {
            owner,
            scope,
            mutation,
            gap,
            at,
        }) = self.call.take()
        else {
            return Vec::new();
        };
        self.last_send = Some(now.saturating_duration_since(at));
        match result {
            Ok(accepted) => {
                let apply = Command::CacheApply {
                    scope: scope.clone(),
                    mutation: mutation.clone(),
                    created: accepted.entry.clone(),
                };
                debug!(gateway = %scope.key(), action = mutation.action(), "mutation accepted");
                match self.peers.clone() {
                    Some(peers) => {
                        let mut out = vec![apply];
                        out.extend(self.record_accepted(owner, accepted, peers, now, now, regions));
                        out
                    }
                    None => {
                        self.call = Some(Call::Peers {
                            owner,
                            accepted,
                            answered: now,
                        });
                        vec![apply, Command::LearnPeers(scope)]
                    }
                }
            }
            Err(e) if e.policy().retried_by == Retrier::CallerWhenFree && self.paced => {
                let mut out: Vec<Command> = self.requeue(&owner).into_iter().collect();
                debug!(gateway = %scope.key(), code = e.code(), ?gap, "gateway busy");
                self.status = Some(GatewayStatus::Updating);
                // Busy with our own last change: the estimate plans a read next, never
                // another send before the gateway is seen free.
                if let Some(g) = gap {
                    self.estimate.refused(g);
                    self.retry = FIRST_STEP;
                    return out;
                }
                // Busy with a change we did not make: back off. It takes about one update
                // time, so the wait doubles only up to a few of them.
                out.push(Command::Pause(self.retry));
                self.retry = (self.retry * 2).min(FOREIGN_BUSY_MAX_STEP);
                out
            }
            Err(e) if e.class() == ErrorClass::Throttled && self.paced => {
                let mut out: Vec<Command> = self.requeue(&owner).into_iter().collect();
                let delay = e.retry_after().unwrap_or(self.retry).min(MAX_STEP);
                warn!(gateway = %scope.key(), code = e.code(), ?delay, "throttled; retrying");
                out.push(Command::Pause(delay));
                self.retry = (self.retry * 2).min(MAX_STEP);
                out
            }
            Err(e) => {
                let mut out = Vec::new();
                if matches!(e.class(), ErrorClass::Transient | ErrorClass::AlreadyExists) {
                    // The change may or may not have happened: read the truth again.
                    out.push(Command::CacheInvalidate(scope.clone()));
                }
                info!(gateway = %scope.key(), action = mutation.action(), code = e.code(), "mutation failed");
                if let Some(job) = self.jobs.get_mut(&owner) {
                    job.state = JobState::Failed(Arc::new(e));
                }
                out.push(Command::Wake(vec![owner]));
                self.retry = FIRST_STEP;
                out
            }
        }
    }

    /// Records an accepted change once the gateway's peers are known; `answered` is when the
    /// cloud's answer came.
    fn record_accepted(
        &mut self,
        owner: Owner,
        accepted: Accepted,
        peers: Peers,
        answered: Instant,
        now: Instant,
        regions: &mut Regions,
    ) -> Vec<Command> {
        // Changes move again: the next waits on a status read of its own.
        self.status_reads.succeeded();
        let free_gap = self.pending_gap(answered);
        let peers = self.peers.get_or_insert(peers).clone();
        self.estimate
            .accepted(free_gap, regions.entry(peers).or_default());
        // This change was accepted, so every earlier one has been applied.
        self.confirm(self.accepted);
        self.accepted += 1;
        let seq = self.accepted;
        self.last_accept = Some(now);
        self.status = Some(GatewayStatus::Updating);
        if let Some(job) = self.jobs.get_mut(&owner) {
            job.state = JobState::Accepted {
                accepted: Box::new(accepted),
                seq,
                at: now,
                listed: false,
                tries: 0,
            };
        }
        if !self.paced {
            // Without pacing nobody tracks the gateway: treat it as done.
            self.confirm(seq);
        }
        self.retry = FIRST_STEP;
        // The route records what the answer says (a create's time) while it waits.
        vec![Command::Wake(vec![owner])]
    }

    /// A job that came back busy or throttled waits for its next turn, unless its owner
    /// dropped it while it was on the wire: then it goes, and the owner is told.
    fn requeue(&mut self, owner: &Owner) -> Option<Command> {
        let job = self.jobs.get_mut(owner)?;
        if job.cancelled {
            self.jobs.remove(owner);
            self.order.retain(|o| o != owner);
            return Some(Command::Release(owner.clone()));
        }
        job.state = JobState::Queued;
        None
    }

    /// The answer to a status read (a probe) of whether the last change has been applied.
    /// As for a send: `active` holds at the latest when the answer came (`now`), `updating`
    /// at the earliest when it was asked (the read may have waited in the rate limiter).
    fn status_read(
        &mut self,
        result: Answer<GatewayStatus>,
        now: Instant,
        regions: &mut Regions,
    ) -> Vec<Command> {
        let Some(Call::Status { gap }) = self.call.take() else {
            return Vec::new();
        };
        match result {
            Ok(status) => {
                let active = status == GatewayStatus::Active;
                self.status_reads.succeeded();
                self.status = Some(status);
                let out = self.learn(gap, active, now, regions).into_iter().collect();
                if active {
                    self.confirm(self.accepted);
                }
                self.retry = FIRST_STEP;
                out
            }
            Err(e) if e.is_gateway_gone() => self.gateway_gone(),
            Err(e) => {
                warn!(code = e.code(), "gateway status read failed");
                let mut out = Vec::new();
                if self.status_reads.failed(e, now) {
                    out.extend(wake(self.waiting_on_status()));
                }
                out.push(Command::Pause(self.retry));
                self.retry = (self.retry * 2).min(MAX_STEP);
                out
            }
        }
    }

    /// The answer to a list read: confirms the applied changes it shows; a change it does not
    /// show yet is read for again later. After `VERIFY_TRIES` reads of its own that missed it, a
    /// create whose answer did not name its entry is sent again with its token (once), ahead of
    /// the queue; any other change, or that replay, goes back to its route, which re-plans from
    /// the list.
    fn list_read(
        &mut self,
        result: Answer<Arc<Vec<Entry>>>,
        now: Instant,
        regions: &mut Regions,
    ) -> Vec<Command> {
        let Some(Call::List { gap }) = self.call.take() else {
            return Vec::new();
        };
        let list = match result {
            Ok(list) => list,
            Err(e) if e.is_gateway_gone() => return self.gateway_gone(),
            Err(e) => {
                warn!(code = e.code(), "entry list read failed");
                self.verify_after = Some(now + self.retry);
                self.retry = (self.retry * 2).min(MAX_STEP);
                // The routes waiting for it say why once it persists, and again only for a
                // new reason (not per retry).
                if self.list_reads.failed(e, now) {
                    let unlisted = self.unlisted().map(|(o, _)| o.clone()).collect();
                    return wake(in_key_order(unlisted)).into_iter().collect();
                }
                return Vec::new();
            }
        };
        self.list_reads.succeeded();
        let mut out: Vec<Command> = Vec::new();
        if self.unconfirmed() && self.shows_last_change(&list) {
            // Listed, so applied: the gateway was active again by the answer.
            out.extend(self.learn(gap, true, now, regions));
            self.confirm(self.accepted);
            self.status = Some(GatewayStatus::Active);
            self.status_reads.succeeded();
        }
        let confirmed = self.confirmed;
        let mut woken = Vec::new();
        let mut replay = Vec::new();
        // The most reads any change still missing has had: the next read waits longer.
        let mut missing = 0;
        for (owner, job) in &mut self.jobs {
            let with_entry = answered_with_entry(&job.state);
            let JobState::Accepted {
                ref accepted,
                seq,
                at,
                ref mut listed,
                ref mut tries,
                ..
            } = job.state
            else {
                continue;
            };
            if seq > confirmed || *listed {
                continue;
            }
            if job.mutation.reflected_in(&list, accepted.entry.as_ref()) {
                *listed = true;
                woken.push(owner.clone());
                continue;
            }
            *tries += 1;
            if *tries < VERIFY_TRIES || now.saturating_duration_since(at) < LIST_LAG_MAX {
                missing = missing.max(*tries);
            } else if matches!(job.mutation, Mutation::Create { .. })
                && !job.replayed
                && !with_entry
            {
                // Never a new token first: the same create again, which the cloud answers
                // as before if its entry exists (listed yet or not). A create answered with
                // its entry is not: the replay would only repeat that answer.
                job.replayed = true;
                job.state = JobState::Queued;
                replay.push(owner.clone());
            } else {
                *listed = true;
                woken.push(owner.clone());
            }
        }
        // A replay goes before every change queued meanwhile.
        for owner in &replay {
            self.order.retain(|o| o != owner);
            self.order.push_front(owner.clone());
        }
        self.verify_after = (missing > 0).then(|| {
            // The cloud lists changes a little after the gateway is active again: read at
            // the gateway's pace, never in a tight loop.
            let pause = self.estimate.pace().max(FIRST_STEP) * missing;
            now + pause.min(MAX_STEP)
        });
        if !replay.is_empty() {
            debug!(
                creates = replay.len(),
                "read-back gave up; replaying the creates with their tokens"
            );
        }
        self.retry = FIRST_STEP;
        self.read_back_since_quiet |= !woken.is_empty();
        out.extend(wake(woken));
        out
    }

    /// What a read asked `gap` after the last accepted change (while it was not known applied)
    /// and answered now proves of the update time; the gateways sharing it plan again when it
    /// proved a shorter one. A busy answer past every gap we know is paced by the estimate (it
    /// plans the next read after a growing pause).
    fn learn(
        &mut self,
        gap: Option<Duration>,
        active: bool,
        now: Instant,
        regions: &mut Regions,
    ) -> Option<Command> {
        let (asked, answered) = (gap?, self.pending_gap(now)?);
        let peers = self.peers.clone().unwrap_or_default();
        let region = regions.entry(peers.clone()).or_default();
        let before = region.upper();
        self.estimate.read(asked, answered, active, region);
        (region.upper() != before).then_some(Command::WakePeers(peers))
    }

    /// Whether `list` shows the last accepted change (its job is still here).
    fn shows_last_change(&self, list: &[Entry]) -> bool {
        self.jobs.values().any(|j| {
            matches!(&j.state, JobState::Accepted { accepted, seq, .. }
                if *seq == self.accepted && j.mutation.reflected_in(list, accepted.entry.as_ref()))
        })
    }

    /// Whether a list read `gap` after the last accepted change may confirm it instead of a
    /// status read: the gateway should be active by then, and no list has tried this change.
    fn list_may_confirm(&self, gap: Duration, regions: &mut Regions) -> bool {
        let peers = self.peers.clone().unwrap_or_default();
        self.list_confirms < self.accepted
            && self
                .estimate
                .expects_active(gap, regions.entry(peers).or_default())
    }

    /// The gateway is gone: every accepted change is as done as it will ever be. Its owners
    /// are woken (they read the gateway and see it gone).
    fn gateway_gone(&mut self) -> Vec<Command> {
        self.confirmed = self.accepted;
        let mut woken = Vec::new();
        for (owner, job) in &mut self.jobs {
            if let JobState::Accepted { ref mut listed, .. } = job.state
                && !*listed
            {
                *listed = true;
                woken.push(owner.clone());
            }
        }
        self.retry = FIRST_STEP;
        wake(woken).into_iter().collect()
    }

    // ---- what the rules read ----

    fn queued_head(&self) -> Option<(Owner, Arc<Scope>)> {
        self.order.iter().find_map(|o| {
            self.jobs
                .get(o)
                .filter(|j| matches!(j.state, JobState::Queued))
                .map(|j| (o.clone(), j.scope.clone()))
        })
    }

    fn unconfirmed(&self) -> bool {
        self.accepted > self.confirmed
    }

    /// Marks every accepted change up to `seq` as applied by the gateway. Their owners wait
    /// for the list to show it (see `verify_at`).
    fn confirm(&mut self, seq: u64) {
        self.confirmed = self.confirmed.max(seq);
    }

    /// Changes that wait on the gateway's status: those queued behind a change not known to
    /// be applied yet, and that change.
    fn waiting_on_status(&self) -> Vec<Owner> {
        let confirmed = self.confirmed;
        let owners = self
            .jobs
            .iter()
            .filter(|(_, j)| match j.state {
                JobState::Queued => true,
                JobState::Accepted { seq, .. } => seq > confirmed,
                _ => false,
            })
            .map(|(o, _)| o.clone())
            .collect();
        in_key_order(owners)
    }

    /// Why a queued or accepted job waits, when its reads keep failing.
    fn stall(&self, job: &JobState, now: Instant) -> Option<Stall> {
        match *job {
            JobState::Queued => self.status_reads.stalled(now).map(Stall::Queued),
            JobState::Accepted { seq, .. } if seq > self.confirmed => {
                self.status_reads.stalled(now).map(Stall::Status)
            }
            JobState::Accepted { listed: false, .. } => {
                self.list_reads.stalled(now).map(Stall::List)
            }
            _ => None,
        }
    }

    /// Accepted changes the list has not shown yet, applied or not.
    fn awaiting_list(&self) -> impl Iterator<Item = (&Owner, &Job)> {
        self.jobs
            .iter()
            .map(|(o, j)| (o, &**j))
            .filter(|(_, j)| matches!(j.state, JobState::Accepted { listed: false, .. }))
    }

    /// Applied changes the list has not shown yet.
    fn unlisted(&self) -> impl Iterator<Item = (&Owner, &Job)> {
        self.awaiting_list().filter(
            |(_, j)| matches!(j.state, JobState::Accepted { seq, .. } if seq <= self.confirmed),
        )
    }

    /// The scope of the oldest change awaiting the list: one a simulated seed replays (not a
    /// map's first).
    fn oldest_awaiting_list(&self) -> Option<Arc<Scope>> {
        oldest(self.awaiting_list()).map(|j| j.scope.clone())
    }

    /// When to read the list to confirm applied changes: once no change waits to be sent (one
    /// list then confirms a whole burst), or when a batch of them has waited long enough (see
    /// `VERIFY_AT_MOST`).
    fn verify_at(&self, now: Instant) -> Option<(Arc<Scope>, Instant)> {
        // The oldest, not the map's first: its scope (credentials) is one a simulated seed replays.
        let first = oldest(self.unlisted())?;
        let at = if self.queued_head().is_none() {
            if self.unconfirmed() {
                // The last change is about to be known applied: one list then shows them all.
                return None;
            }
            now
        } else if self.gateway_binds()
            && (self.unlisted().count() >= self.read_back_every || !self.read_back_since_quiet)
        {
            now
        } else if self.unlisted().count() >= VERIFY_BATCH {
            let oldest = self
                .unlisted()
                .filter_map(|(_, j)| match j.state {
                    JobState::Accepted { at, .. } => Some(at),
                    _ => None,
                })
                .min()
                .unwrap_or(now);
            oldest + VERIFY_AT_MOST
        } else {
            // Planned again after each change: it becomes due with the batch or the queue's end.
            return None;
        };
        let at = self.verify_after.map_or(at, |after| at.max(after));
        Some((first.scope.clone(), at))
    }

    /// Whether the gateway, not the account's API rate, paces the changes: the rate has room
    /// (hardly any call waits at its limiter) and the last change went out within half an
    /// update time. Otherwise a list would cost some change or plan read its turn.
    fn gateway_binds(&self) -> bool {
        self.rate_room
            && self
                .last_send
                .is_some_and(|took| took <= self.estimate.pace() / 2)
    }

    /// Time since the last accepted change, while it is not known to be applied.
    fn pending_gap(&self, now: Instant) -> Option<Duration> {
        self.last_accept
            .filter(|_| self.unconfirmed())
            .map(|at| now.saturating_duration_since(at))
    }

    /// What the estimate advises about the last accepted change while it is not known
    /// applied, with the instant it names: `None` when nothing is pending (a change can go at
    /// once).
    fn advice(&mut self, regions: &mut Regions, now: Instant) -> Option<(Advice, Instant)> {
        let at = self.last_accept.filter(|_| self.unconfirmed())?;
        let gap = now.saturating_duration_since(at);
        let peers = self.peers.clone().unwrap_or_default();
        let advice = self
            .estimate
            .advise(regions.entry(peers).or_default(), self.id, gap, now);
        let g = match advice {
            Advice::Send(g) | Advice::Read(g) | Advice::Wait(g) => g,
        };
        Some((advice, at + g))
    }
}

#[cfg(test)]
mod tests;
