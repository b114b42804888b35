//! A seeded random history: the gateways, and the steps users, the console and crashes take
//! over virtual time. Generated up front from the seed alone against the generator's own model
//! of what exists, so one seed always gives the same history; a step that no longer applies
//! when it runs (the object is still terminating, a console change the API refuses) is a no-op.

use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vpn_pbr_operator::api::v1alpha1::{
    DeletionPolicy, ManagementPolicy, SecretRef, VpnPbrRouteSpec,
};

use super::world::{EntryKey, NAMESPACES, OPERATOR_ACCOUNT, REGION};

#[derive(Clone, Debug)]
pub struct GatewayConf {
    pub id: String,
    pub priority: bool,
    pub update_ms: u64,
    /// The account it belongs to (1 is the operator's own).
    pub account: u8,
    /// Entries someone else has on it (with `pages`): with the routes, more than a page.
    pub fillers: u32,
}

#[derive(Clone, Debug)]
pub enum Edit {
    Weight(i32),
    Priority(i32),
    Publish(bool),
    /// A new destination; the apiserver refuses it once the route exists in the cloud.
    Dest(String),
    Deletion(DeletionPolicy),
    Management(ManagementPolicy),
}

#[derive(Clone, Debug)]
pub enum Console {
    /// Someone makes an entry (weight, publish) before any object names it.
    Create(EntryKey, i32, bool),
    Delete(EntryKey),
    Weight(EntryKey, i32),
    Priority(EntryKey, i32),
    Publish(EntryKey, bool),
}

/// An object to create: `namespace/name` (and first its Secret, when the spec names one).
#[derive(Clone, Debug)]
pub struct Creation {
    pub name: String,
    pub spec: VpnPbrRouteSpec,
    pub paused: bool,
    /// With the adopt annotation.
    pub adopt: bool,
    /// The account of the key in its Secret.
    pub secret: Option<u8>,
}

impl fmt::Display for Creation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.spec;
        write!(
            f,
            "create {} {}:{}->{}/{} w={} p={} pub={} {:?}/{:?}{}{}{}",
            self.name,
            s.vpn_gateway_id,
            s.route_source,
            s.route_dest,
            s.next_hop,
            s.weight,
            s.priority,
            s.publish_vpc,
            s.management_policy,
            s.deletion_policy,
            self.secret
                .map_or(String::new(), |a| format!(" +secret(account {a})")),
            if self.paused { " paused" } else { "" },
            if self.adopt { " adopt" } else { "" }
        )
    }
}

#[derive(Clone, Debug)]
pub enum Op {
    Create(Creation),
    Edit {
        name: String,
        edit: Edit,
    },
    /// Both members of an active/standby pair change weight at once.
    Swap {
        a: String,
        b: String,
    },
    Pause {
        name: String,
        on: bool,
    },
    /// Sets or removes the adopt annotation.
    Adopt {
        name: String,
        on: bool,
    },
    /// Deletes the object (and, just before, the Secret it names).
    Delete {
        name: String,
    },
    Console(Console),
    DeleteGateway {
        gw: String,
    },
    /// Deletes a namespace (with `namespaces`): its Secrets go at once, its routes are deleted.
    DeleteNamespace {
        ns: String,
    },
    /// The leader loses the apiserver for a while (with `leader`): the standby takes the Lease
    /// over once it expired.
    Partition {
        secs: u64,
    },
    /// Every watch starts again with a fresh list (with `stale`).
    Relist,
    Crash,
    Nothing,
}

#[derive(Clone, Debug)]
pub struct Step {
    pub wait: Duration,
    pub op: Op,
}

pub struct History {
    pub seed: u64,
    /// How long the cloud remembers a `ClientToken` (with `expiry`).
    pub token_ttl_ms: u64,
    /// How long the operator stays down after each `Crash` step, in order (with `expiry`:
    /// zero, or longer than the cloud remembers a token).
    pub outages: Vec<Duration>,
    pub gateways: Vec<GatewayConf>,
    pub steps: Vec<Step>,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Create(c) => write!(f, "{c}"),
            Op::Edit { name, edit } => write!(f, "edit {name} {edit:?}"),
            Op::Swap { a, b } => write!(f, "swap weights of {a} and {b}"),
            Op::Pause { name, on } => write!(f, "{} {name}", if *on { "pause" } else { "unpause" }),
            Op::Adopt { name, on } => {
                write!(
                    f,
                    "{} the adopt annotation of {name}",
                    if *on { "set" } else { "remove" }
                )
            }
            Op::Delete { name } => write!(f, "delete {name}"),
            Op::Console(c) => write!(f, "console {c:?}"),
            Op::DeleteGateway { gw } => write!(f, "delete gateway {gw}"),
            Op::DeleteNamespace { ns } => write!(f, "delete namespace {ns}"),
            Op::Partition { secs } => write!(f, "the leader loses the apiserver for {secs}s"),
            Op::Relist => write!(f, "every watch relists"),
            Op::Crash => write!(f, "CRASH the operator"),
            Op::Nothing => write!(f, "(nothing)"),
        }
    }
}

impl fmt::Display for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for g in &self.gateways {
            writeln!(
                f,
                "  gateway {} update={}ms priority={} account={} fillers={}",
                g.id, g.update_ms, g.priority, g.account, g.fillers
            )?;
        }
        for (i, s) in self.steps.iter().enumerate() {
            writeln!(f, "  {i:3} +{:.3}s {}", s.wait.as_secs_f64(), s.op)?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Single,
    /// Member 0 or 1 of its gateway's pair.
    Pair(usize),
    Dup,
}

struct GObj {
    /// `namespace/name`.
    name: String,
    gw: usize,
    role: Role,
    spec: VpnPbrRouteSpec,
    alive: bool,
    paused: bool,
    adopt: bool,
}

pub fn hop(gw: usize, member: usize) -> String {
    format!("vco-g{gw}{}", if member == 0 { 'a' } else { 'b' })
}

pub fn gateway_id(gw: usize) -> String {
    format!("vpn-g{gw}")
}

/// The spec of a manifest naming only these: the rest as the CRD defaults it.
fn spec(gw: usize, src: String, dest: String, hop: String, weight: i32) -> VpnPbrRouteSpec {
    serde_json::from_value(serde_json::json!({
        "regionId": REGION, "vpnGatewayId": gateway_id(gw), "routeSource": src,
        "routeDest": dest, "nextHop": hop, "weight": weight, "publishVpc": false
    }))
    .expect("a spec")
}

struct Gen {
    rng: StdRng,
    gws: Vec<GatewayConf>,
    gw_gone: Vec<bool>,
    /// Namespaces deleted (no object is made in them again).
    ns_gone: Vec<bool>,
    objs: Vec<GObj>,
    next_dest: u32,
    next_name: u32,
    steps: Vec<Step>,
    /// A step that undoes the last one, taken soon after it.
    revert: Option<Op>,
}

impl Gen {
    fn wait(&mut self) -> Duration {
        let ms = match self.rng.random_range(0..100) {
            0..40 => self.rng.random_range(0..300),
            40..70 => self.rng.random_range(300..3000),
            70..90 => self.rng.random_range(3000..10_000),
            _ => self.rng.random_range(10_000..40_000),
        };
        Duration::from_millis(ms)
    }

    fn push(&mut self, wait: Duration, op: Op) {
        self.steps.push(Step { wait, op });
    }

    fn alive(&self, pred: impl Fn(&GObj) -> bool) -> Vec<usize> {
        (0..self.objs.len())
            .filter(|i| self.objs[*i].alive && pred(&self.objs[*i]))
            .collect()
    }

    fn pick(&mut self, v: &[usize]) -> Option<usize> {
        (!v.is_empty()).then(|| v[self.rng.random_range(0..v.len())])
    }

    /// Flips the `flag` of a live object that `eligible` admits: the step that says so.
    fn toggle(
        &mut self,
        eligible: impl Fn(&GObj) -> bool,
        flag: fn(&mut GObj) -> &mut bool,
        step: fn(String, bool) -> Op,
    ) -> Option<Op> {
        let all = self.alive(eligible);
        self.pick(&all).map(|i| {
            let o = &mut self.objs[i];
            let flag = flag(o);
            *flag = !*flag;
            let on = *flag;
            step(o.name.clone(), on)
        })
    }

    /// Records the object `c` makes as `role` on `gw`: the step that creates it.
    fn create(&mut self, gw: usize, role: Role, c: Creation) -> Op {
        self.objs.push(GObj {
            name: c.name.clone(),
            gw,
            role,
            spec: c.spec.clone(),
            alive: true,
            paused: c.paused,
            adopt: c.adopt,
        });
        Op::Create(c)
    }

    fn live_gw(&mut self) -> usize {
        let live: Vec<usize> = (0..self.gws.len()).filter(|g| !self.gw_gone[*g]).collect();
        live[self.rng.random_range(0..live.len())]
    }

    /// A namespace for a new object (mostly the first), one not deleted.
    fn namespace(&mut self) -> &'static str {
        let live: Vec<usize> = (0..NAMESPACES.len())
            .filter(|n| !self.ns_gone[*n])
            .collect();
        let pick = if live.len() > 1 && self.rng.random_bool(0.35) {
            live[1]
        } else {
            live[0]
        };
        NAMESPACES[pick]
    }

    fn ns_alive(&self, name: &str) -> bool {
        let ns = name.split_once('/').map_or(NAMESPACES[0], |(ns, _)| ns);
        NAMESPACES
            .iter()
            .position(|n| *n == ns)
            .is_none_or(|i| !self.ns_gone[i])
    }

    /// The Secret of the new route `name` on gateway `gw`, named in its `spec`: mostly a key of
    /// the gateway's own account (always on another account's gateway, where the operator's key
    /// sees nothing), now and then a key of the wrong account (a misconfiguration the route must
    /// report).
    fn credentials(
        &mut self,
        gw: usize,
        careful: bool,
        name: &str,
        spec: &mut VpnPbrRouteSpec,
    ) -> Option<u8> {
        let own = self.gws[gw].account;
        let other = 3 - own;
        let roll = self.rng.random_range(0..100);
        let account = match (own == OPERATOR_ACCOUNT, careful) {
            (true, true) => (roll < 20).then_some(own),
            (false, true) => Some(own),
            (true, false) => match roll {
                0..20 => Some(own),
                20..23 => Some(other),
                _ => None,
            },
            (false, false) => match roll {
                0..85 => Some(own),
                85..90 => Some(other),
                _ => None,
            },
        };
        spec.credentials_ref = secret_ref(name, account);
        account
    }

    fn create_single(&mut self) -> Option<Op> {
        let gw = self.live_gw();
        // Sometimes a deleted single comes back under its old name (adopting what an
        // `Orphan` deletion left, or racing its own termination).
        let dead: Vec<usize> = (0..self.objs.len())
            .filter(|i| {
                let o = &self.objs[*i];
                !o.alive
                    && o.role == Role::Single
                    && !self.gw_gone[o.gw]
                    && self.ns_alive(&o.name)
                    && !self.objs.iter().any(|x| x.alive && x.name == o.name)
            })
            .collect();
        let (name, mut s) = if !dead.is_empty() && self.rng.random_bool(0.3) {
            let i = dead[self.rng.random_range(0..dead.len())];
            (self.objs[i].name.clone(), self.objs[i].spec.clone())
        } else {
            let ns = self.namespace();
            self.next_dest += 1;
            self.next_name += 1;
            let g = u32::try_from(gw).unwrap_or(0);
            let s = spec(
                gw,
                format!("192.168.{g}.0/24"),
                format!("10.{g}.{}.0/24", self.next_dest),
                hop(gw, 0),
                if self.rng.random_bool(0.7) { 100 } else { 0 },
            );
            (format!("{ns}/g{gw}-s{}", self.next_name), s)
        };
        let gw = self
            .gws
            .iter()
            .position(|g| g.id == s.vpn_gateway_id)
            .unwrap_or(gw);
        s.weight = if self.rng.random_bool(0.7) { 100 } else { 0 };
        s.publish_vpc = self.rng.random_bool(0.4);
        s.priority = if self.gws[gw].priority && self.rng.random_bool(0.5) {
            self.rng.random_range(1..=20)
        } else {
            10
        };
        s.deletion_policy = if self.rng.random_bool(0.3) {
            DeletionPolicy::Orphan
        } else {
            DeletionPolicy::Delete
        };
        s.management_policy = if self.rng.random_bool(0.15) {
            ManagementPolicy::ObserveOnly
        } else {
            ManagementPolicy::Full
        };
        let secret = self.credentials(gw, false, &name, &mut s);
        let paused = self.rng.random_bool(0.05);
        let adopt = self.rng.random_bool(0.4);
        let c = Creation {
            name,
            spec: s,
            paused,
            adopt,
            secret,
        };
        Some(self.create(gw, Role::Single, c))
    }

    fn create_pair_member(&mut self) -> Option<Op> {
        let gw = self.live_gw();
        let missing: Vec<usize> = (0..2)
            .filter(|m| {
                !self
                    .objs
                    .iter()
                    .any(|o| o.gw == gw && o.role == Role::Pair(*m) && o.alive)
            })
            .collect();
        let member = *missing.get(self.rng.random_range(0..missing.len().max(1)))?;
        let partner = self
            .objs
            .iter()
            .find(|o| o.gw == gw && o.role == Role::Pair(1 - member) && o.alive);
        let weight = partner.map_or(if member == 0 { 100 } else { 0 }, |p| 100 - p.spec.weight);
        let g = u32::try_from(gw).unwrap_or(0);
        let mut s = spec(
            gw,
            format!("172.16.{g}.0/24"),
            format!("10.200.{g}.0/24"),
            hop(gw, member),
            weight,
        );
        s.publish_vpc = self.rng.random_bool(0.5);
        let ns = self.namespace();
        let name = format!("{ns}/g{gw}-p{}", if member == 0 { 'a' } else { 'b' });
        if self.objs.iter().any(|o| o.alive && o.name == name) {
            return None;
        }
        let secret = self.credentials(gw, true, &name, &mut s);
        let c = Creation {
            name,
            spec: s,
            paused: false,
            adopt: false,
            secret,
        };
        Some(self.create(gw, Role::Pair(member), c))
    }

    fn create_dup(&mut self) -> Option<Op> {
        let singles = self.alive(|o| o.role == Role::Single);
        let i = self.pick(&singles)?;
        let mut s = self.objs[i].spec.clone();
        let gw = self.objs[i].gw;
        s.credentials_ref = None;
        s.management_policy = ManagementPolicy::Full;
        s.weight = if self.rng.random_bool(0.5) { 100 } else { 0 };
        s.deletion_policy = if self.rng.random_bool(0.5) {
            DeletionPolicy::Orphan
        } else {
            DeletionPolicy::Delete
        };
        self.next_name += 1;
        let ns = self.namespace();
        let name = format!("{ns}/g{gw}-d{}", self.next_name);
        let adopt = self.rng.random_bool(0.5);
        let secret = self.credentials(gw, true, &name, &mut s);
        let c = Creation {
            name,
            spec: s,
            paused: false,
            adopt,
            secret,
        };
        Some(self.create(gw, Role::Dup, c))
    }

    /// A change of a single (or a duplicate), and the edit that undoes it.
    fn edit(&mut self) -> Option<(Op, Option<Op>)> {
        let cands = self.alive(|o| o.role != Role::Pair(0) && o.role != Role::Pair(1));
        let i = self.pick(&cands)?;
        let gwp = self.gws[self.objs[i].gw].priority;
        let o = &self.objs[i];
        let name = o.name.clone();
        let s = o.spec.clone();
        let roll = self.rng.random_range(0..100);
        let (edit, back) = match roll {
            0..30 => {
                let w = if s.weight == 100 { 0 } else { 100 };
                (Edit::Weight(w), Edit::Weight(s.weight))
            }
            30..50 => (Edit::Publish(!s.publish_vpc), Edit::Publish(s.publish_vpc)),
            50..65 if gwp => (
                Edit::Priority(self.rng.random_range(1..=20)),
                Edit::Priority(s.priority),
            ),
            65..73 => (Edit::Weight(50), Edit::Weight(s.weight)),
            73..80 if o.role == Role::Single => {
                self.next_dest += 1;
                let g = o.gw;
                (
                    Edit::Dest(format!("10.{g}.{}.0/24", self.next_dest)),
                    Edit::Dest(s.route_dest.clone()),
                )
            }
            80..88 => {
                let d = if s.deletion_policy == DeletionPolicy::Delete {
                    DeletionPolicy::Orphan
                } else {
                    DeletionPolicy::Delete
                };
                (Edit::Deletion(d), Edit::Deletion(s.deletion_policy))
            }
            _ => {
                let m = if s.management_policy == ManagementPolicy::Full {
                    ManagementPolicy::ObserveOnly
                } else {
                    ManagementPolicy::Full
                };
                (Edit::Management(m), Edit::Management(s.management_policy))
            }
        };
        apply_edit(&mut self.objs[i].spec, &edit);
        Some((
            Op::Edit {
                name: name.clone(),
                edit,
            },
            Some(Op::Edit { name, edit: back }),
        ))
    }

    fn swap(&mut self) -> Option<Op> {
        let gws: Vec<usize> = (0..self.gws.len())
            .filter(|g| {
                (0..2).all(|m| {
                    self.objs
                        .iter()
                        .any(|o| o.gw == *g && o.role == Role::Pair(m) && o.alive)
                })
            })
            .collect();
        let gw = *gws.get(self.rng.random_range(0..gws.len().max(1)))?;
        let mut names = Vec::new();
        for o in self
            .objs
            .iter_mut()
            .filter(|o| o.gw == gw && o.alive && matches!(o.role, Role::Pair(_)))
        {
            o.spec.weight = 100 - o.spec.weight;
            names.push(o.name.clone());
        }
        if self.rng.random_bool(0.5) {
            names.reverse();
        }
        Some(Op::Swap {
            a: names[0].clone(),
            b: names[1].clone(),
        })
    }

    /// Applies a revert to the model (the step it undoes was applied when it was made).
    fn model(&mut self, op: &Op) {
        match op {
            Op::Edit { name, edit } => {
                for o in self.objs.iter_mut().filter(|o| o.alive && &o.name == name) {
                    apply_edit(&mut o.spec, edit);
                }
            }
            Op::Swap { a, b } => {
                for o in self
                    .objs
                    .iter_mut()
                    .filter(|o| o.alive && (&o.name == a || &o.name == b))
                {
                    o.spec.weight = 100 - o.spec.weight;
                }
            }
            _ => {}
        }
    }

    fn console(&mut self) -> Option<Op> {
        let all = self.alive(|_| true);
        let i = self.pick(&all)?;
        let o = &self.objs[i];
        let key = EntryKey::of(&o.spec);
        let gwp = self.gws[o.gw].priority;
        let pair = matches!(o.role, Role::Pair(_));
        Some(Op::Console(match self.rng.random_range(0..4) {
            0 => Console::Weight(key, if self.rng.random_bool(0.5) { 0 } else { 100 }),
            1 if gwp => Console::Priority(key, self.rng.random_range(1..=20)),
            2 if !pair => Console::Publish(key, self.rng.random_bool(0.5)),
            _ => Console::Delete(key),
        }))
    }

    fn step(&mut self) {
        if let Some(op) = self.revert.take()
            && self.rng.random_bool(0.5)
        {
            self.model(&op);
            let wait = Duration::from_millis(self.rng.random_range(0..1500));
            self.push(wait, op);
            return;
        }
        let wait = self.wait();
        let roll = self.rng.random_range(0..100);
        let op = match roll {
            0..22 => match self.rng.random_range(0..100) {
                0..10 => self.create_single().inspect(|op| {
                    // The entry is made in the console first; the object comes a bit later.
                    if let Op::Create(c) = op {
                        let console = Op::Console(Console::Create(
                            EntryKey::of(&c.spec),
                            if self.rng.random_bool(0.5) { 100 } else { 0 },
                            self.rng.random_bool(0.5),
                        ));
                        self.push(wait, console);
                    }
                }),
                10..55 => self.create_single(),
                55..85 => self.create_pair_member(),
                _ => self.create_dup(),
            },
            22..47 => self.edit().map(|(op, back)| {
                if self.rng.random_bool(0.3) {
                    self.revert = back;
                }
                op
            }),
            47..55 => self.swap().inspect(|op| {
                if self.rng.random_bool(0.3) {
                    self.revert = Some(op.clone());
                }
            }),
            55..60 => self.toggle(
                |_| true,
                |o| &mut o.paused,
                |name, on| Op::Pause { name, on },
            ),
            60..63 => self.toggle(
                |o| !matches!(o.role, Role::Pair(_)),
                |o| &mut o.adopt,
                |name, on| Op::Adopt { name, on },
            ),
            63..75 => {
                let all = self.alive(|_| true);
                self.pick(&all).map(|i| {
                    self.objs[i].alive = false;
                    Op::Delete {
                        name: self.objs[i].name.clone(),
                    }
                })
            }
            75..83 => self.console(),
            83..85 => {
                let live: Vec<usize> = (0..self.gws.len()).filter(|g| !self.gw_gone[*g]).collect();
                // At most one gateway goes, and never the last one.
                (live.len() == self.gws.len() && live.len() > 1).then(|| {
                    let g = live[self.rng.random_range(0..live.len())];
                    self.gw_gone[g] = true;
                    Op::DeleteGateway {
                        gw: self.gws[g].id.clone(),
                    }
                })
            }
            85..91 => Some(Op::Crash),
            91..92 if !self.ns_gone.iter().any(|g| *g) => {
                let n = self.rng.random_range(0..NAMESPACES.len());
                self.ns_gone[n] = true;
                for o in self
                    .objs
                    .iter_mut()
                    .filter(|o| o.name.split_once('/').map(|(ns, _)| ns) == Some(NAMESPACES[n]))
                {
                    o.alive = false;
                }
                Some(Op::DeleteNamespace {
                    ns: NAMESPACES[n].to_owned(),
                })
            }
            92..94 => Some(Op::Partition {
                secs: self.rng.random_range(3..40),
            }),
            94..96 => Some(Op::Relist),
            _ => None,
        };
        self.push(wait, op.unwrap_or(Op::Nothing));
    }
}

/// The Secret a route names for a key of `account` (`creds-<name>` in its namespace).
fn secret_ref(name: &str, account: Option<u8>) -> Option<SecretRef> {
    let plain = name.split_once('/').map_or(name, |(_, n)| n);
    account.map(|_| SecretRef {
        name: format!("creds-{plain}"),
    })
}

pub fn apply_edit(s: &mut VpnPbrRouteSpec, edit: &Edit) {
    match edit {
        Edit::Weight(w) => s.weight = *w,
        Edit::Priority(p) => s.priority = *p,
        Edit::Publish(b) => s.publish_vpc = *b,
        Edit::Dest(d) => s.route_dest = d.clone(),
        Edit::Deletion(d) => s.deletion_policy = *d,
        Edit::Management(m) => s.management_policy = *m,
    }
}

/// The history of one seed.
pub fn generate(seed: u64) -> History {
    let mut rng = StdRng::seed_from_u64(seed);
    let n_gw = rng.random_range(2..=3);
    let gws: Vec<GatewayConf> = (0..n_gw)
        .map(|g| GatewayConf {
            id: gateway_id(g),
            priority: rng.random_bool(0.5),
            update_ms: [400, 800, 1500, 2500][rng.random_range(0..4)],
            // Both accounts always have a gateway.
            account: match g {
                0 => OPERATOR_ACCOUNT,
                1 => 3 - OPERATOR_ACCOUNT,
                _ => rng.random_range(1..=2),
            },
            fillers: rng.random_range(46..=70),
        })
        .collect();
    // Hours in the cloud (AWS documents 8 to 36; Alibaba Cloud does not say), compressed to
    // minutes: still far longer than a live process takes to replay a create.
    let token_ttl_ms = rng.random_range(60_000..180_000);
    let n_steps = rng.random_range(30..=60);
    let mut g = Gen {
        rng,
        gw_gone: vec![false; gws.len()],
        ns_gone: vec![false; NAMESPACES.len()],
        gws,
        objs: Vec::new(),
        next_dest: 0,
        next_name: 0,
        steps: Vec::new(),
        revert: None,
    };
    // A start with something on every gateway, close together.
    for _ in 0..g.gws.len() * 2 {
        let op = if g.rng.random_bool(0.6) {
            g.create_single()
        } else {
            g.create_pair_member()
        };
        let wait = Duration::from_millis(g.rng.random_range(0..500));
        g.push(wait, op.unwrap_or(Op::Nothing));
    }
    while g.steps.len() < n_steps {
        g.step();
    }
    // Drawn apart, so the steps are those of the worlds without `expiry`.
    let mut down = StdRng::seed_from_u64(seed ^ 0x6f75_7461_6765);
    let outages = g
        .steps
        .iter()
        .filter(|s| matches!(s.op, Op::Crash))
        .map(|_| {
            if down.random_bool(0.5) {
                Duration::from_millis(down.random_range(token_ttl_ms + 1_000..2 * token_ttl_ms))
            } else {
                Duration::ZERO
            }
        })
        .collect();
    History {
        seed,
        token_ttl_ms,
        outages,
        gateways: g.gws,
        steps: g.steps,
    }
}
