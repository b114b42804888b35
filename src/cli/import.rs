//! `vpn-pbr-operator import`: one `VpnPbrRoute` manifest per policy-based route that already
//! exists on the given gateways, so routes made in the console or by Terraform can be moved
//! under the operator. Each manifest carries `vpn.alicloud.dev/adopt: "true"` (the operator
//! adopts an entry it did not create only with that consent) and every field the cloud
//! reports; fields at their default are left out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use clap::builder::PossibleValue;
use clap::{Args, ValueEnum};
use serde_json::Value;

use super::accounts::{self, AccountsError, Tenants};
use super::cloud::{Cloud, CloudArgs, CloudSetupError};
use crate::api::v1alpha1::{
    ADOPT_ANNOTATION, DEFAULT_PRIORITY, DeletionPolicy, ManagementPolicy, VpnPbrRoute,
    VpnPbrRouteSpec, validation,
};
use crate::controller::model::CredentialsHandle;
use crate::controller::resolve::AccountOptions;
use alicloud_vpc_client::{CloudError, DescribeVpnGatewayRequest, VpnPbrRouteEntry};

/// Longest object name (a DNS-1123 subdomain, what the apiserver checks for custom resources).
pub(super) const MAX_NAME: usize = 253;
/// Hex digits of the hash suffix of a name that had to be shortened or made unique.
const HASH_DIGITS: usize = 6;

/// Flags of `import`.
#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// Region of the gateways, e.g. cn-hangzhou.
    #[arg(long)]
    pub(crate) region: String,

    /// A VPN gateway whose policy-based routes to import (repeat for more).
    #[arg(long = "gateway", value_name = "GATEWAY", required = true)]
    pub(crate) gateways: Vec<String>,

    /// Namespace written into every manifest; left out when unset (kubectl's current
    /// namespace applies).
    #[arg(long, short = 'n')]
    pub(crate) namespace: Option<String>,

    /// `-` for one multi-document YAML stream on stdout, or a directory for one file per route
    /// (`<name>.yaml`; created if missing; files of the same name are overwritten).
    #[arg(long = "output-dir", default_value = "-", value_name = "DIR|-")]
    pub(crate) output_dir: String,

    /// Deprecated spelling of --output-dir, kept so scripts keep working (it warns on stderr):
    /// `-o` is an output format elsewhere (`plan -o json`, kubectl).
    #[arg(
        long = "output",
        short = 'o',
        value_name = "DIR|-",
        conflicts_with = "output_dir",
        hide = true
    )]
    pub(crate) output_deprecated: Option<String>,

    /// Write this deletionPolicy into every manifest (default: left out, i.e. Delete). Orphan
    /// keeps the cloud entry when the object is deleted.
    #[arg(long, value_enum, ignore_case = true)]
    pub(crate) deletion_policy: Option<DeletionPolicy>,

    /// Write this managementPolicy into every manifest (default: left out, i.e. Full).
    /// ObserveOnly lets the operator report drift without changing anything.
    #[arg(long, value_enum, ignore_case = true)]
    pub(crate) management_policy: Option<ManagementPolicy>,

    /// Read the entries through this VpnAccount, with the credentials the operator would use
    /// for it (an assumeRole is assumed with this command's own credentials), and write it as
    /// spec.accountRef into every manifest. Reads the account (and its Secret) from the cluster
    /// kubectl would use, or --kubeconfig. Without it the entries are read with this command's
    /// own credentials and no accountRef is written: the imported routes then act in their
    /// namespace's default account, else the operator's own identity.
    #[arg(long, value_name = "NAME")]
    pub(crate) account: Option<String>,

    /// Kubeconfig file of the cluster --account is read from (default: as kubectl finds it).
    #[arg(long, value_name = "FILE", requires = "account")]
    pub(crate) kubeconfig: Option<PathBuf>,

    /// Kubeconfig context of the cluster --account is read from (default: the current one).
    #[arg(long, requires = "account")]
    pub(crate) context: Option<String>,

    #[command(flatten)]
    pub(crate) cloud: CloudArgs,
}

/// The warning `import -o`/`--output` prints on stderr.
pub(crate) const OUTPUT_DEPRECATED: &str =
    "vpn-pbr-operator import: -o/--output is deprecated, use --output-dir";

impl ImportArgs {
    /// Where the manifests go (`-`: stdout), and whether the deprecated flag named it.
    pub(crate) fn destination(&self) -> (&str, bool) {
        match &self.output_deprecated {
            Some(out) => (out, true),
            None => (&self.output_dir, false),
        }
    }
}

/// The policies take the CRD's spelling, their variants' names, on the command line.
macro_rules! crd_value_enum {
    ($policy:ty: $($variant:ident),+) => {
        impl ValueEnum for $policy {
            fn value_variants<'a>() -> &'a [Self] {
                &[$(Self::$variant),+]
            }
            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(PossibleValue::new(match self {
                    $(Self::$variant => stringify!($variant)),+
                }))
            }
        }
    };
}

crd_value_enum!(DeletionPolicy: Delete, Orphan);
crd_value_enum!(ManagementPolicy: Full, ObserveOnly);

/// Why `import` failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ImportError {
    #[error(transparent)]
    Setup(#[from] CloudSetupError),
    #[error("kubernetes client configuration: {0}")]
    KubeConfig(String),
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    #[error("VpnAccount {name}: its credentials cannot be had: {reason}: {why}")]
    Credentials {
        name: String,
        reason: String,
        why: String,
    },
    #[error("{region}/{gateway}: {source}")]
    Cloud {
        region: String,
        gateway: String,
        #[source]
        source: Box<CloudError>,
    },
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("manifest {name}: {source}")]
    Yaml {
        name: String,
        #[source]
        source: DocumentError,
    },
}

/// What the cloud told about one gateway.
#[derive(Clone, Debug)]
pub(super) struct GatewayRoutes {
    pub region: String,
    pub gateway: String,
    /// Whether the gateway takes priorities; without it the listed priority is left out.
    pub supports_priority: bool,
    /// A dual-tunnel gateway (it changes priorities by attribute, see `src/controller/plan.rs`).
    pub dual_tunnel: bool,
    pub entries: Vec<VpnPbrRouteEntry>,
}

/// Options that go into every manifest.
#[derive(Clone, Debug, Default)]
pub(super) struct ManifestOptions {
    pub namespace: Option<String>,
    /// `spec.accountRef`: the VpnAccount the entries were read through.
    pub account_ref: Option<String>,
    pub deletion_policy: Option<DeletionPolicy>,
    pub management_policy: Option<ManagementPolicy>,
}

/// One imported route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Imported {
    pub name: String,
    /// One YAML document (a comment line, then the object), without the `---` separator.
    pub yaml: String,
}

/// An entry that could not become a manifest, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Skipped {
    pub what: String,
    pub why: String,
}

/// Lower-case letters, digits and single dashes, no dash at either end.
fn sanitize(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

/// FNV-1a (64 bit): stable across runs, platforms and versions, unlike std's hasher.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The readable name of an entry: `<gateway>-<source>-<dest>-<next hop>` as a DNS-1123 name.
pub(super) fn base_name(gateway: &str, source: &str, dest: &str, next_hop: &str) -> String {
    sanitize(&format!("{gateway}-{source}-{dest}-{next_hop}"))
}

/// `base` shortened to fit [`MAX_NAME`] with a hash of the entry's identity after it.
fn hashed_name(base: &str, identity: &str) -> String {
    let hash = format!("{:016x}", fnv1a(identity));
    let keep = MAX_NAME - HASH_DIGITS - 1;
    let mut head: String = base.chars().take(keep).collect();
    while head.ends_with('-') {
        head.pop();
    }
    format!("{head}-{}", &hash[..HASH_DIGITS])
}

fn identity(region: &str, gateway: &str, e: &VpnPbrRouteEntry) -> String {
    format!(
        "{region}/{gateway}/{}/{}/{}",
        e.fields.route_source, e.fields.route_dest, e.fields.next_hop
    )
}

/// The manifests of every importable entry, ordered by gateway (as given), source,
/// destination and next hop, with unique names; and the entries that cannot be imported.
pub(super) fn manifests(
    gateways: &[GatewayRoutes],
    options: &ManifestOptions,
) -> Result<(Vec<Imported>, Vec<Skipped>), ImportError> {
    let mut skipped = Vec::new();
    let mut wanted: Vec<(&GatewayRoutes, &VpnPbrRouteEntry)> = Vec::new();
    for gw in gateways {
        let mut entries: Vec<&VpnPbrRouteEntry> = gw.entries.iter().collect();
        entries.sort_by(|a, b| {
            (
                &a.fields.route_source,
                &a.fields.route_dest,
                &a.fields.next_hop,
            )
                .cmp(&(
                    &b.fields.route_source,
                    &b.fields.route_dest,
                    &b.fields.next_hop,
                ))
        });
        entries.dedup_by(|a, b| {
            a.fields.route_source == b.fields.route_source
                && a.fields.route_dest == b.fields.route_dest
                && a.fields.next_hop == b.fields.next_hop
        });
        for e in entries {
            let what = format!(
                "{}/{}: {} -> {} via {}",
                gw.region,
                gw.gateway,
                e.fields.route_source,
                e.fields.route_dest,
                e.fields.next_hop
            );
            let spec = spec_of(gw, e);
            if let Err(errors) = validation::validate(&spec) {
                let why = errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                skipped.push(Skipped { what, why });
                continue;
            }
            wanted.push((gw, e));
        }
    }
    // Names: readable; a hash suffix only where two entries would share one or it is too long.
    let bases: Vec<String> = wanted
        .iter()
        .map(|(gw, e)| {
            base_name(
                &gw.gateway,
                &e.fields.route_source,
                &e.fields.route_dest,
                &e.fields.next_hop,
            )
        })
        .collect();
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for b in &bases {
        *uses.entry(b.as_str()).or_default() += 1;
    }
    let mut out = Vec::with_capacity(wanted.len());
    for ((gw, e), base) in wanted.iter().zip(&bases) {
        let unique = uses.get(base.as_str()).copied().unwrap_or(0) == 1;
        let name = if unique && base.len() <= MAX_NAME && !base.is_empty() {
            base.clone()
        } else {
            hashed_name(base, &identity(&gw.region, &gw.gateway, e))
        };
        out.push(Imported {
            yaml: String::new(),
            name,
        });
    }
    for (imported, (gw, e)) in out.iter_mut().zip(&wanted) {
        imported.yaml =
            document(gw, e, &imported.name, options).map_err(|source| ImportError::Yaml {
                name: imported.name.clone(),
                source,
            })?;
    }
    Ok((out, skipped))
}

/// What the operator would see for this entry (priority as the operator reads it: absent
/// means the default).
fn spec_of(gw: &GatewayRoutes, e: &VpnPbrRouteEntry) -> VpnPbrRouteSpec {
    VpnPbrRouteSpec {
        region_id: gw.region.clone(),
        vpn_gateway_id: gw.gateway.clone(),
        route_source: e.fields.route_source.clone(),
        route_dest: e.fields.route_dest.clone(),
        next_hop: e.fields.next_hop.clone(),
        weight: i32::try_from(e.fields.weight).unwrap_or(i32::MAX),
        publish_vpc: e.is_published(),
        priority: priority_of(gw, e).unwrap_or(DEFAULT_PRIORITY),
        description: e.fields.description.clone().filter(|d| !d.is_empty()),
        overlay_mode: None,
        credentials_ref: None,
        account_ref: None,
        deletion_policy: Default::default(),
        management_policy: Default::default(),
    }
}

/// The priority to write: only a non-default one, and only on a gateway that takes
/// priorities (elsewhere the operator never sends one, see `src/controller/plan.rs`).
fn priority_of(gw: &GatewayRoutes, e: &VpnPbrRouteEntry) -> Option<i32> {
    let p = i32::try_from(e.fields.priority?).ok()?;
    ((gw.supports_priority || gw.dual_tunnel) && p != DEFAULT_PRIORITY).then_some(p)
}

/// Why a manifest could not be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DocumentError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Yaml(#[from] serde_saphyr::SerializeError),
}

fn document(
    gw: &GatewayRoutes,
    e: &VpnPbrRouteEntry,
    name: &str,
    options: &ManifestOptions,
) -> Result<String, DocumentError> {
    let mut spec = spec_of(gw, e);
    if let Some(d) = options.deletion_policy {
        spec.deletion_policy = d;
    }
    if let Some(m) = options.management_policy {
        spec.management_policy = m;
    }
    spec.account_ref.clone_from(&options.account_ref);
    let mut manifest = VpnPbrRoute::new(name, spec);
    manifest.metadata.namespace = options.namespace.clone();
    manifest.metadata.annotations = Some(BTreeMap::from([(
        ADOPT_ANNOTATION.to_owned(),
        "true".to_owned(),
    )]));
    let body = crate::api::to_yaml(&without_defaults(&manifest)?)?;
    Ok(format!(
        "# Imported by `vpn-pbr-operator import` from {}/{}.\n{body}",
        gw.region, gw.gateway
    ))
}

/// The object to write, its spec without the fields that hold their default: a field goes when
/// the spec reads back the same without it (the type's own defaults decide, field by field).
fn without_defaults(route: &VpnPbrRoute) -> Result<Written, serde_json::Error> {
    let Value::Object(mut head) = serde_json::to_value(route)? else {
        return Err(serde::ser::Error::custom("a VpnPbrRoute is an object"));
    };
    head.remove("spec");
    // In the order of the spec's fields (a `serde_json::Map` would sort them).
    let Fields(mut spec) = serde_json::from_str(&serde_json::to_string(&route.spec)?)?;
    let keys: Vec<String> = spec.iter().map(|(k, _)| k.clone()).collect();
    for key in keys {
        let without: serde_json::Map<String, Value> = spec
            .iter()
            .filter(|(k, _)| *k != key)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let same = serde_json::from_value::<VpnPbrRouteSpec>(Value::Object(without))
            .is_ok_and(|s| s == route.spec);
        if same {
            spec.retain(|(k, _)| *k != key);
        }
    }
    Ok(Written {
        head,
        spec: Fields(spec),
    })
}

/// A manifest as `import` writes it: `apiVersion`, `kind` and `metadata` (in `serde_json`'s
/// alphabetical order, which is also the order of `VpnPbrRoute`'s fields), then the spec.
#[derive(serde::Serialize)]
struct Written {
    #[serde(flatten)]
    head: serde_json::Map<String, Value>,
    spec: Fields,
}

/// An object's fields in the order they were read or are to be written.
struct Fields(Vec<(String, Value)>);

impl serde::Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Fields, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    fields.push(entry);
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// Reads every gateway (its facts and all pages of its list) with `credentials`.
async fn read(
    cloud: &Cloud,
    credentials: &CredentialsHandle,
    region: &str,
    gateway: &str,
) -> Result<GatewayRoutes, CloudError> {
    let client = cloud.client(region, credentials)?;
    let facts = client
        .describe_vpn_gateway(&DescribeVpnGatewayRequest {
            vpn_gateway_id: gateway.to_owned(),
            ..Default::default()
        })
        .await?;
    let list = client.list_vpn_pbr_route_entries(gateway).await?;
    Ok(GatewayRoutes {
        region: region.to_owned(),
        gateway: gateway.to_owned(),
        supports_priority: facts.supports_pbr_priority(),
        dual_tunnel: facts.is_dual_tunnel(),
        entries: list.entries,
    })
}

fn write(path: &Path, text: &str) -> Result<(), ImportError> {
    std::fs::write(path, text).map_err(|source| ImportError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Runs `import`; 0 when every entry became a manifest, 1 when some could not.
/// A route of `gateway` in namespace `ns` naming `account`: what the account's resolution reads
/// of the imported routes (their entries do not matter to it).
fn probe(ns: &str, region: &str, gateway: &str, account: &str) -> Option<VpnPbrRoute> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "vpn.alicloud.dev/v1alpha1", "kind": "VpnPbrRoute",
        "metadata": {"name": "import", "namespace": ns},
        "spec": {"regionId": region, "vpnGatewayId": gateway, "routeSource": "",
                 "routeDest": "", "nextHop": "", "weight": 0, "publishVpc": false,
                 "accountRef": account}
    }))
    .ok()
}

/// The credentials the entries are read with: the named VpnAccount's, as the operator builds
/// them, else the command's own.
async fn credentials(args: &ImportArgs, cloud: &Cloud) -> Result<CredentialsHandle, ImportError> {
    let Some(name) = &args.account else {
        return Ok(cloud.own());
    };
    let config = accounts::cluster_config(args.kubeconfig.as_deref(), args.context.as_deref())
        .await
        .map_err(ImportError::KubeConfig)?;
    let client =
        kube::Client::try_from(config).map_err(|e| ImportError::KubeConfig(e.to_string()))?;
    let namespaces: BTreeSet<String> = args.namespace.iter().cloned().collect();
    let tenants = Tenants::read(&client, &namespaces, AccountOptions::default(), cloud).await?;
    let held = tenants.named(name)?;
    // The account must admit the routes (their namespace, region and gateway), as the operator
    // judges it; the namespace is known only with --namespace.
    if let Some(ns) = &args.namespace {
        for gateway in &args.gateways {
            let Some(route) = probe(ns, &args.region, gateway, name) else {
                continue;
            };
            if let Err(refusal) = tenants.resolve(&route) {
                eprintln!(
                    "vpn-pbr-operator import: the operator would refuse the routes of {gateway} \
                     in namespace {ns}: {}: {}",
                    refusal.reason.as_str(),
                    refusal.message
                );
            }
        }
    }
    if !held.allows_adoption() {
        eprintln!(
            "vpn-pbr-operator import: VpnAccount {name} does not allow adoption \
             (spec.allowAdoption): the operator refuses to adopt these entries through it \
             (AdoptionForbidden) until it does"
        );
    }
    eprintln!(
        "vpn-pbr-operator import: reading through {}",
        accounts::how(&held)
    );
    tenants
        .credentials(cloud, &held)
        .await
        .map_err(|e| ImportError::Credentials {
            name: name.clone(),
            reason: e.reason().as_str().to_owned(),
            why: e.message(),
        })
}

pub(super) async fn run(args: ImportArgs) -> Result<u8, ImportError> {
    let cloud = Cloud::new(&args.cloud)?;
    let credentials = credentials(&args, &cloud).await?;
    let mut gateways = Vec::new();
    let mut seen = Vec::new();
    for gw in &args.gateways {
        if seen.contains(gw) {
            continue;
        }
        seen.push(gw.clone());
        let routes = read(&cloud, &credentials, &args.region, gw)
            .await
            .map_err(|source| ImportError::Cloud {
                region: args.region.clone(),
                gateway: gw.clone(),
                source: Box::new(source),
            })?;
        gateways.push(routes);
    }
    let options = ManifestOptions {
        namespace: args.namespace.clone(),
        account_ref: args.account.clone(),
        deletion_policy: args.deletion_policy,
        management_policy: args.management_policy,
    };
    let (imported, skipped) = manifests(&gateways, &options)?;
    let (output, deprecated) = args.destination();
    if deprecated {
        eprintln!("{OUTPUT_DEPRECATED}");
    }
    if output == "-" {
        let mut stream = String::new();
        for i in &imported {
            stream.push_str("---\n");
            stream.push_str(&i.yaml);
        }
        print!("{stream}");
    } else {
        let dir = PathBuf::from(output);
        std::fs::create_dir_all(&dir).map_err(|source| ImportError::Write {
            path: dir.clone(),
            source,
        })?;
        for i in &imported {
            write(&dir.join(format!("{}.yaml", i.name)), &i.yaml)?;
        }
        eprintln!(
            "vpn-pbr-operator import: wrote {} manifest(s) to {}",
            imported.len(),
            dir.display()
        );
    }
    for s in &skipped {
        eprintln!("vpn-pbr-operator import: skipped {}: {}", s.what, s.why);
    }
    Ok(if skipped.is_empty() {
        0
    } else {
        super::EXIT_ERROR
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1alpha1::VpnPbrRoute;

    fn entry(
        src: &str,
        dst: &str,
        hop: &str,
        weight: u32,
        prio: u32,
        state: &str,
    ) -> VpnPbrRouteEntry {
        serde_json::from_value(serde_json::json!({
            "RouteSource": src, "RouteDest": dst, "NextHop": hop, "Weight": weight,
            "Priority": prio, "State": state, "VpnInstanceId": "vpn-a", "CreateTime": 1
        }))
        .expect("entry")
    }

    fn gw(id: &str, prio: bool, entries: Vec<VpnPbrRouteEntry>) -> GatewayRoutes {
        GatewayRoutes {
            region: "cn-hangzhou".into(),
            gateway: id.into(),
            supports_priority: prio,
            dual_tunnel: false,
            entries,
        }
    }

    /// The manifests of one gateway's entries, with the default options.
    fn import(g: GatewayRoutes) -> (Vec<Imported>, Vec<Skipped>) {
        manifests(&[g], &ManifestOptions::default()).expect("manifests")
    }

    /// The manifests of these entries on `vpn-a` (a gateway with priorities).
    fn import_on_a(entries: Vec<VpnPbrRouteEntry>) -> (Vec<Imported>, Vec<Skipped>) {
        import(gw("vpn-a", true, entries))
    }

    fn parse(yaml: &str) -> VpnPbrRoute {
        serde_saphyr::from_str(yaml).expect("a VpnPbrRoute")
    }

    #[test]
    fn names_are_readable_dns_names() {
        assert_eq!(
            base_name("vpn-bp1a", "192.168.10.0/24", "10.10.0.0/16", "vco-bp15"),
            "vpn-bp1a-192-168-10-0-24-10-10-0-0-16-vco-bp15"
        );
        assert_eq!(sanitize("--A_b..c--"), "a-b-c");
    }

    #[test]
    fn every_reported_field_and_no_default() {
        let g = gw(
            "vpn-a",
            true,
            vec![
                entry(
                    "192.168.1.0/24",
                    "10.1.0.0/16",
                    "vco-1",
                    100,
                    20,
                    "published",
                ),
                entry("192.168.2.0/24", "10.2.0.0/16", "vco-2", 0, 10, "normal"),
            ],
        );
        let (out, skipped) = manifests(
            &[g],
            &ManifestOptions {
                namespace: Some("net".into()),
                ..Default::default()
            },
        )
        .expect("manifests");
        assert!(skipped.is_empty());
        assert_eq!(out.len(), 2);
        let first = &out[0];
        assert_eq!(first.name, "vpn-a-192-168-1-0-24-10-1-0-0-16-vco-1");
        assert!(
            first.yaml.contains("vpn.alicloud.dev/adopt: \"true\""),
            "{}",
            first.yaml
        );
        let r = parse(&first.yaml);
        assert_eq!(r.metadata.namespace.as_deref(), Some("net"));
        assert_eq!(
            r.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ADOPT_ANNOTATION))
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(
            (r.spec.weight, r.spec.priority, r.spec.publish_vpc),
            (100, 20, true)
        );
        let second = &out[1];
        assert!(
            !second.yaml.contains("priority"),
            "default left out: {}",
            second.yaml
        );
        for left_out in ["deletionPolicy", "managementPolicy", "status", "null"] {
            assert!(
                !second.yaml.contains(left_out),
                "{left_out}: {}",
                second.yaml
            );
        }
        let r = parse(&second.yaml);
        assert_eq!(
            (r.spec.weight, r.spec.priority, r.spec.publish_vpc),
            (0, 10, false)
        );
    }

    #[test]
    fn priority_is_left_out_where_the_gateway_has_none() {
        let e = entry("192.168.1.0/24", "10.1.0.0/16", "vco-1", 100, 0, "normal");
        let g = gw("vpn-b", false, vec![e]);
        let (out, skipped) = import(g);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert!(!out[0].yaml.contains("priority"));
        assert!(!out[0].yaml.contains("namespace"));
    }

    #[test]
    fn policies_are_written_when_asked() {
        let e = entry("192.168.1.0/24", "10.1.0.0/16", "vco-1", 100, 10, "normal");
        let g = gw("vpn-a", true, vec![e]);
        let (out, _) = manifests(
            &[g],
            &ManifestOptions {
                namespace: None,
                account_ref: None,
                deletion_policy: Some(DeletionPolicy::Orphan),
                management_policy: Some(ManagementPolicy::ObserveOnly),
            },
        )
        .expect("manifests");
        let r = parse(&out[0].yaml);
        assert_eq!(
            (r.spec.deletion_policy, r.spec.management_policy),
            (DeletionPolicy::Orphan, ManagementPolicy::ObserveOnly)
        );
    }

    #[test]
    fn colliding_or_long_names_get_a_hash_suffix() {
        // Upper case folds onto the same name: both get a (different) suffix.
        let (out, _) = import_on_a(vec![
            entry("192.168.1.0/24", "10.1.0.0/16", "vco-X", 100, 10, "normal"),
            entry("192.168.1.0/24", "10.1.0.0/16", "vco-x", 0, 10, "normal"),
        ]);
        assert_eq!(out.len(), 2);
        assert_ne!(out[0].name, out[1].name);
        for i in &out {
            assert!(
                i.name
                    .starts_with("vpn-a-192-168-1-0-24-10-1-0-0-16-vco-x-"),
                "{}",
                i.name
            );
            assert_eq!(
                i.name.len(),
                "vpn-a-192-168-1-0-24-10-1-0-0-16-vco-x-".len() + 6
            );
        }
        let long = "vpn-".to_owned() + &"a".repeat(300);
        let e = entry("192.168.1.0/24", "10.1.0.0/16", "vco-1", 100, 10, "normal");
        let g = gw(&long, true, vec![e]);
        let (out, _) = import(g);
        // The gateway id is not a valid spec (too long): skipped, not mangled.
        assert!(out.is_empty());
        let name = hashed_name(&"a".repeat(300), "id");
        assert_eq!(name.len(), MAX_NAME);
        assert_eq!(name, hashed_name(&"a".repeat(300), "id"), "stable");
    }

    #[test]
    fn entries_the_crd_refuses_are_skipped_with_a_reason() {
        let (out, skipped) = import_on_a(vec![
            entry("192.168.1.0/24", "10.1.0.0/16", "vco-1", 50, 10, "normal"),
            entry("192.168.2.0/24", "10.2.0.0/16", "vco-2", 100, 10, "normal"),
        ]);
        assert_eq!((out.len(), skipped.len()), (1, 1));
        assert!(skipped[0].why.contains("weight"), "{skipped:?}");
    }

    #[test]
    fn dual_tunnel_gateways_keep_a_priority_without_the_tag() {
        let e = entry("192.168.1.0/24", "0.0.0.0/0", "vco-1", 100, 30, "normal");
        let mut g = gw("vpn-d", false, vec![e]);
        g.dual_tunnel = true;
        let (out, skipped) = import(g);
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(parse(&out[0].yaml).spec.priority, 30);
    }

    #[test]
    fn a_listed_description_is_kept() {
        let mut e = entry("192.168.1.0/24", "10.1.0.0/16", "vco-1", 100, 10, "normal");
        e.fields.description = Some("from the console".into());
        let (out, _) = import_on_a(vec![e]);
        assert_eq!(
            parse(&out[0].yaml).spec.description.as_deref(),
            Some("from the console")
        );
    }

    /// `--account` is written as `spec.accountRef`; without it none is written.
    #[test]
    fn the_account_entries_were_read_through_is_the_manifests_account_ref() {
        let entries = || {
            vec![entry(
                "192.168.1.0/24",
                "10.0.0.0/16",
                "vco-1",
                100,
                10,
                "normal",
            )]
        };
        let (plain, _) = import_on_a(entries());
        assert!(!plain[0].yaml.contains("accountRef"), "{}", plain[0].yaml);
        assert_eq!(parse(&plain[0].yaml).spec.account_ref, None);
        let options = ManifestOptions {
            account_ref: Some("team-b".into()),
            ..ManifestOptions::default()
        };
        let (through, skipped) =
            manifests(&[gw("vpn-a", true, entries())], &options).expect("manifests");
        assert!(skipped.is_empty());
        assert_eq!(
            parse(&through[0].yaml).spec.account_ref.as_deref(),
            Some("team-b")
        );
        assert!(
            through[0].yaml.contains("accountRef: team-b"),
            "{}",
            through[0].yaml
        );
    }

    /// The probe of an account's admission is a route the resolution can read.
    #[test]
    fn the_probe_names_the_account_namespace_region_and_gateway() {
        let r = probe("ns", "cn-hangzhou", "vpn-a", "team-b").expect("a route");
        assert_eq!(r.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(
            (
                r.spec.region_id.as_str(),
                r.spec.vpn_gateway_id.as_str(),
                r.spec.account_ref.as_deref()
            ),
            ("cn-hangzhou", "vpn-a", Some("team-b"))
        );
    }
}
