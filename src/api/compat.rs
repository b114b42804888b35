//! Whether the installed `VpnPbrRoute` CRD serves what this binary needs: every field path of
//! the schema the binary generates (`VpnPbrRoute::crd()`), its printer columns and its
//! subresources, in each version the binary serves. An older CRD is not harmless: the apiserver
//! prunes the fields its schema lacks, so a status field the operator writes (say
//! `status.accountId`, which a deletion's safety depends on) would be silently dropped.
//!
//! Pure: `app.rs` reads the CRD and refuses to start when [`missing`] is not empty.

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion, CustomResourceSubresources,
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};

/// One thing the binary needs that the installed CRD lacks.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Missing {
    /// The version is not served (absent, or `served: false`).
    Version(String),
    /// A field, as a path: `status.accountId`, `status.conditions[].type` (`[]` is a list's
    /// items, `.*` a map's values).
    Field(String),
    /// A printer column: its name and JSON path must both match.
    Column { name: String, json_path: String },
    /// A subresource: `status` or `scale`.
    Subresource(&'static str),
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::Version(v) => write!(f, "served version {v}"),
            Missing::Field(p) => write!(f, "field {p}"),
            Missing::Column { name, json_path } => {
                write!(f, "printer column {name} ({json_path})")
            }
            Missing::Subresource(s) => write!(f, "subresource {s}"),
        }
    }
}

/// What `installed` lacks of `wanted`, for each version `wanted` serves; empty when it serves
/// all of it (more is fine: a newer CRD serves an older binary). A missing field whose parent
/// is missing too is left out: the parent names it.
pub(crate) fn missing(
    wanted: &CustomResourceDefinition,
    installed: &CustomResourceDefinition,
) -> Vec<Missing> {
    let mut out = Vec::new();
    for want in wanted.spec.versions.iter().filter(|v| v.served) {
        match installed
            .spec
            .versions
            .iter()
            .find(|v| v.name == want.name && v.served)
        {
            Some(have) => out.extend(version_gaps(want, have)),
            None => out.push(Missing::Version(want.name.clone())),
        }
    }
    out
}

/// `missing` as one line: the items, comma-separated.
pub(crate) fn describe(missing: &[Missing]) -> String {
    missing
        .iter()
        .map(Missing::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn version_gaps(
    want: &CustomResourceDefinitionVersion,
    have: &CustomResourceDefinitionVersion,
) -> Vec<Missing> {
    let mut out = Vec::new();
    let wanted = fields(want);
    let installed = fields(have);
    let absent: BTreeSet<&String> = wanted
        .paths
        .iter()
        .filter(|p| !installed.covers(p))
        .collect();
    out.extend(
        absent
            .iter()
            .filter(|p| !absent.iter().any(|q| is_below(p, q)))
            .map(|p| Missing::Field((*p).clone())),
    );
    let columns = have
        .additional_printer_columns
        .as_deref()
        .unwrap_or_default();
    out.extend(
        want.additional_printer_columns
            .iter()
            .flatten()
            .filter(|c| {
                !columns
                    .iter()
                    .any(|h| h.name == c.name && h.json_path == c.json_path)
            })
            .map(|c| Missing::Column {
                name: c.name.clone(),
                json_path: c.json_path.clone(),
            }),
    );
    type Has = fn(&CustomResourceSubresources) -> bool;
    let subresources: [(&'static str, Has); 2] = [
        ("status", |s| s.status.is_some()),
        ("scale", |s| s.scale.is_some()),
    ];
    for (name, has) in subresources {
        let (wanted, served) = (
            want.subresources.as_ref().is_some_and(has),
            have.subresources.as_ref().is_some_and(has),
        );
        if wanted && !served {
            out.push(Missing::Subresource(name));
        }
    }
    out
}

/// The field paths of a version's schema, and those under which the schema keeps unknown
/// fields (`x-kubernetes-preserve-unknown-fields`), which therefore hold any path below them.
#[derive(Default)]
struct Fields {
    paths: BTreeSet<String>,
    open: BTreeSet<String>,
}

impl Fields {
    fn covers(&self, path: &str) -> bool {
        self.paths.contains(path) || self.open.iter().any(|o| o == path || is_below(path, o))
    }
}

fn fields(version: &CustomResourceDefinitionVersion) -> Fields {
    let mut out = Fields::default();
    if let Some(root) = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
    {
        walk(root, "", &mut out);
    }
    out
}

fn walk(schema: &JSONSchemaProps, path: &str, out: &mut Fields) {
    if schema.x_kubernetes_preserve_unknown_fields == Some(true) {
        out.open.insert(path.to_owned());
    }
    for (name, child) in schema.properties.iter().flatten() {
        let child_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        out.paths.insert(child_path.clone());
        walk(child, &child_path, out);
    }
    let below = |suffix: &str| format!("{path}{suffix}");
    match &schema.items {
        Some(JSONSchemaPropsOrArray::Schema(items)) => {
            let p = below("[]");
            out.paths.insert(p.clone());
            walk(items, &p, out);
        }
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            for items in items {
                let p = below("[]");
                out.paths.insert(p.clone());
                walk(items, &p, out);
            }
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = &schema.additional_properties {
        let p = below(".*");
        out.paths.insert(p.clone());
        walk(values, &p, out);
    }
}

/// Whether `path` lies strictly below `ancestor` (the root, "", is above every path).
fn is_below(path: &str, ancestor: &str) -> bool {
    ancestor.is_empty() && !path.is_empty()
        || path
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with("[]"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1alpha1::VpnPbrRoute;
    use kube::CustomResourceExt;

    /// The binary's CRD with `change` applied to its one version.
    fn installed(
        change: impl Fn(&mut CustomResourceDefinitionVersion),
    ) -> CustomResourceDefinition {
        let mut crd = VpnPbrRoute::crd();
        change(&mut crd.spec.versions[0]);
        crd
    }

    fn schema(v: &mut CustomResourceDefinitionVersion) -> &mut JSONSchemaProps {
        v.schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .expect("a schema")
    }

    /// The schema node at `path` (property names, `[]` for a list's items).
    fn node<'a>(v: &'a mut CustomResourceDefinitionVersion, path: &str) -> &'a mut JSONSchemaProps {
        let mut s = schema(v);
        for part in path.split('.') {
            s = if part == "[]" {
                match s.items.as_mut() {
                    Some(JSONSchemaPropsOrArray::Schema(items)) => items,
                    _ => panic!("no items at {path}"),
                }
            } else {
                s.properties
                    .as_mut()
                    .and_then(|p| p.get_mut(part))
                    .unwrap_or_else(|| panic!("no {part} in {path}"))
            };
        }
        s
    }

    fn remove(v: &mut CustomResourceDefinitionVersion, parent: &str, name: &str) {
        let props = node(v, parent).properties.as_mut().expect("properties");
        assert!(props.remove(name).is_some(), "{parent}.{name} exists");
    }

    fn field(p: &str) -> Missing {
        Missing::Field(p.to_owned())
    }

    fn column(name: &str) -> Missing {
        let crd = VpnPbrRoute::crd();
        let c = crd.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .find(|c| c.name == name)
            .expect("a column of the binary");
        Missing::Column {
            name: c.name.clone(),
            json_path: c.json_path.clone(),
        }
    }

    type Change = fn(&mut CustomResourceDefinitionVersion);

    #[test]
    fn an_installed_crd_must_serve_every_path_column_and_subresource_of_the_binary() {
        let cases: Vec<(&str, Change, Vec<Missing>)> = vec![
            ("the same CRD", |_| {}, vec![]),
            (
                "a newer CRD with a field the binary does not know",
                |v| {
                    let extra = JSONSchemaProps {
                        type_: Some("string".into()),
                        ..JSONSchemaProps::default()
                    };
                    node(v, "status")
                        .properties
                        .as_mut()
                        .expect("properties")
                        .insert("fromTheFuture".into(), extra);
                },
                vec![],
            ),
            (
                "an object that keeps unknown fields holds any field below it",
                |v| {
                    let status = node(v, "status");
                    status.properties = None;
                    status.x_kubernetes_preserve_unknown_fields = Some(true);
                },
                vec![],
            ),
            (
                "printer columns removed",
                |v| {
                    let cols = v.additional_printer_columns.as_mut().expect("columns");
                    cols.retain(|c| c.name != "Synced" && c.name != "Message");
                },
                vec![column("Synced"), column("Message")],
            ),
            (
                "a printer column of the same name reading another path",
                |v| {
                    let cols = v.additional_printer_columns.as_mut().expect("columns");
                    let synced = cols
                        .iter_mut()
                        .find(|c| c.name == "Synced")
                        .expect("Synced");
                    synced.json_path = ".status.synced".into();
                },
                vec![column("Synced")],
            ),
            (
                "no status subresource",
                |v| v.subresources = None,
                vec![Missing::Subresource("status")],
            ),
            (
                "the version not served",
                |v| v.served = false,
                vec![Missing::Version("v1alpha1".into())],
            ),
            (
                "another version only",
                |v| v.name = "v1alpha0".into(),
                vec![Missing::Version("v1alpha1".into())],
            ),
            (
                "no schema at all",
                |v| v.schema = None,
                vec![field("spec"), field("status")],
            ),
        ];
        let wanted = VpnPbrRoute::crd();
        for (what, change, want) in cases {
            assert_eq!(missing(&wanted, &installed(change)), want, "{what}");
        }
        // A property removed from the installed schema: (its parent, its name, the gap named).
        let removed = [
            // The CRD of a release before status.accountId.
            ("status", "accountId", "status.accountId"),
            ("spec", "priority", "spec.priority"),
            // A field of a list's items.
            (
                "status.conditions.[]",
                "observedGeneration",
                "status.conditions[].observedGeneration",
            ),
            // An object: named once, not its fields too.
            ("status", "observed", "status.observed"),
        ];
        for (parent, name, gap) in removed {
            let gaps = missing(&wanted, &installed(|v| remove(v, parent, name)));
            assert_eq!(gaps, vec![field(gap)], "{parent}.{name} removed");
        }
    }

    #[test]
    fn the_description_names_each_gap() {
        let gaps = missing(
            &VpnPbrRoute::crd(),
            &installed(|v| {
                remove(v, "status", "accountId");
                v.additional_printer_columns
                    .as_mut()
                    .expect("columns")
                    .retain(|c| c.name != "Synced");
            }),
        );
        assert_eq!(
            describe(&gaps),
            "field status.accountId, printer column Synced \
             (.status.conditions[?(@.type==\"Synced\")].status)"
        );
    }

    #[test]
    fn paths_below_and_not_below() {
        for (path, ancestor, below) in [
            ("status.accountId", "status", true),
            ("status.conditions[].type", "status.conditions", true),
            ("status", "", true),
            ("", "", false),
            ("status", "status", false),
            ("statusx", "status", false),
            ("spec.priority", "status", false),
        ] {
            assert_eq!(is_below(path, ancestor), below, "{path} below {ancestor:?}");
        }
    }
}
