//! Reading `VpnPbrRoute` manifests as `kubectl apply -f` would take them: files, directories
//! (recursively: `*.yaml`, `*.yml`, `*.json`, in name order), `-` for stdin; multi-document
//! YAML and `kind: List`. Documents of other kinds are counted and left alone (a GitOps
//! repository holds more than routes).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::api::v1alpha1::{GROUP, VpnPbrRoute};

/// `apiVersion` of the manifests this version reads.
pub(super) fn api_version() -> String {
    format!("{GROUP}/v1alpha1")
}

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ManifestError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: not YAML: {source}")]
    Yaml {
        origin: String,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
    #[error("{origin}: not a valid VpnPbrRoute: {source}")]
    Invalid {
        origin: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{origin}: VpnPbrRoute of apiVersion {found:?}; this version reads {expected:?}")]
    Version {
        origin: String,
        found: String,
        expected: String,
    },
    #[error("{origin}: a VpnPbrRoute without metadata.name")]
    NoName { origin: String },
}

/// One route read from a manifest.
#[derive(Clone, Debug)]
pub(super) struct Loaded {
    pub route: VpnPbrRoute,
    /// `file` or `file#n` (the n-th document, from 1) where it was read.
    pub origin: String,
}

/// Everything read.
#[derive(Clone, Debug, Default)]
pub(super) struct Manifests {
    pub routes: Vec<Loaded>,
    /// Documents of other kinds, left alone.
    pub other_kinds: usize,
}

/// Reads every path (a file, a directory, or `-` for stdin).
pub(super) fn load(paths: &[PathBuf]) -> Result<Manifests, ManifestError> {
    let mut out = Manifests::default();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| ManifestError::Io {
                    path: "-".to_owned(),
                    source,
                })?;
            parse_into(&text, "stdin", &mut out)?;
            continue;
        }
        for file in files(path)? {
            let text = std::fs::read_to_string(&file).map_err(|source| ManifestError::Io {
                path: file.display().to_string(),
                source,
            })?;
            parse_into(&text, &file.display().to_string(), &mut out)?;
        }
    }
    Ok(out)
}

/// The manifest files of `path`: itself, or those under it in name order.
fn files(path: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let io = |source| ManifestError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut children: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io)?;
    children.sort();
    let mut out = Vec::new();
    for child in children {
        let hidden = child
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if child.is_dir() {
            out.extend(files(&child)?);
        } else if child
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(child);
        }
    }
    Ok(out)
}

/// Parses one YAML stream (several documents) into `out`.
pub(super) fn parse_into(text: &str, name: &str, out: &mut Manifests) -> Result<(), ManifestError> {
    let docs = documents(text).map_err(|source| ManifestError::Yaml {
        origin: name.to_owned(),
        source: Box::new(source),
    })?;
    let many = docs.len() > 1;
    for (i, doc) in docs.into_iter().enumerate() {
        let origin = if many {
            format!("{name}#{}", i + 1)
        } else {
            name.to_owned()
        };
        take(doc, &origin, out)?;
    }
    Ok(())
}

/// The documents of a YAML stream in order, an empty or null one as `Null`: they count in the
/// numbering of `file#n` (the n-th document as written) like every other.
fn documents(text: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    // No budget: a stream holds as many routes as the repository has (the parser's own
    // bounds on nesting and aliases still hold).
    let options = serde_saphyr::options! { budget: None };
    let values: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options)?;
    // serde-saphyr leaves null documents out; the parser's events say where they were (should
    // the two ever disagree, the documents are numbered as serde-saphyr returns them).
    let Some(null_docs) =
        null_documents(text).filter(|n| n.iter().filter(|&&null| !null).count() == values.len())
    else {
        return Ok(values);
    };
    let mut values = values.into_iter();
    Ok(null_docs
        .into_iter()
        .map(|null| {
            if null {
                Value::Null
            } else {
                values.next().unwrap_or_default()
            }
        })
        .collect())
}

/// For each document of the stream, whether it is null as serde-saphyr reads it: empty, a plain
/// untagged `~`/`null`, or tagged `!!null`. `None` when the stream does not parse.
fn null_documents(text: &str) -> Option<Vec<bool>> {
    use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};
    let mut out = Vec::new();
    let mut root_next = false;
    for event in Parser::new_from_str(text) {
        let (event, _) = event.ok()?;
        if !root_next {
            root_next = matches!(event, Event::DocumentStart(..));
            continue;
        }
        let null = match event {
            Event::Scalar(value, style, _, tag) => match tag {
                Some(tag) => tag.is_yaml_core_schema_tag("null"),
                None => {
                    style == ScalarStyle::Plain
                        && matches!(value.as_ref(), "" | "~" | "null" | "Null" | "NULL")
                }
            },
            Event::SequenceStart(..)
            | Event::MappingStart(..)
            | Event::Alias(..)
            | Event::UnresolvedAlias(..) => false,
            Event::DocumentEnd => true,
            // Comments, anchors: not the root node yet.
            _ => continue,
        };
        out.push(null);
        root_next = false;
    }
    Some(out)
}

fn take(doc: Value, origin: &str, out: &mut Manifests) -> Result<(), ManifestError> {
    if doc.is_null() {
        return Ok(());
    }
    let kind = doc.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
    match kind {
        "VpnPbrRoute" => {
            let found = doc
                .get("apiVersion")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            if found != api_version() {
                return Err(ManifestError::Version {
                    origin: origin.to_owned(),
                    found: found.to_owned(),
                    expected: api_version(),
                });
            }
            let route: VpnPbrRoute =
                serde_json::from_value(doc).map_err(|source| ManifestError::Invalid {
                    origin: origin.to_owned(),
                    source,
                })?;
            if route
                .metadata
                .name
                .as_deref()
                .unwrap_or_default()
                .is_empty()
            {
                return Err(ManifestError::NoName {
                    origin: origin.to_owned(),
                });
            }
            out.routes.push(Loaded {
                route,
                origin: origin.to_owned(),
            });
        }
        "List" => {
            let items = doc
                .get("items")
                .and_then(|i| i.as_array())
                .cloned()
                .unwrap_or_default();
            for (i, item) in items.into_iter().enumerate() {
                take(item, &format!("{origin}[{i}]"), out)?;
            }
        }
        _ => out.other_kinds += 1,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "apiVersion: vpn.alicloud.dev/v1alpha1\nkind: VpnPbrRoute\nmetadata:\n  name: r1\nspec:\n  regionId: cn-hangzhou\n  vpnGatewayId: vpn-a\n  routeSource: 192.168.1.0/24\n  routeDest: 10.1.0.0/16\n  nextHop: vco-a\n  weight: 100\n  publishVpc: false\n";

    #[test]
    fn multi_document_streams_lists_and_other_kinds() {
        let text = format!(
            "---\n{ROUTE}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n---\n\n---\napiVersion: v1\nkind: List\nitems:\n  - {}\n",
            serde_json::to_string(
                &serde_saphyr::from_str::<serde_json::Value>(&ROUTE.replace("r1", "r2"))
                    .expect("json")
            )
            .expect("json")
        );
        let mut out = Manifests::default();
        parse_into(&text, "f.yaml", &mut out).expect("parse");
        assert_eq!(out.other_kinds, 1);
        let names: Vec<_> = out
            .routes
            .iter()
            .map(|l| {
                (
                    l.route.metadata.name.clone().unwrap_or_default(),
                    l.origin.clone(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("r1".to_owned(), "f.yaml#1".to_owned()),
                ("r2".to_owned(), "f.yaml#4[0]".to_owned())
            ]
        );
        // Defaults as the apiserver would apply them.
        assert_eq!(out.routes[0].route.spec.priority, 10);
    }

    #[test]
    fn documents_are_numbered_as_written_empty_and_null_ones_too() {
        let a = serde_json::json!({"a": 1});
        let b = serde_json::json!({"b": 2});
        let cases: [(&str, Vec<Value>); 6] = [
            ("a: 1\n---\n", vec![a.clone(), Value::Null]),
            ("---\n---\n", vec![Value::Null, Value::Null]),
            ("---\na: 1\n...\n---\nb: 2\n", vec![a.clone(), b.clone()]),
            (
                "a: 1\n---\n# only a comment\n",
                vec![a.clone(), Value::Null],
            ),
            (
                "~\n---\nnull\n---\n!!null\n---\na: 1\n",
                vec![Value::Null, Value::Null, Value::Null, a.clone()],
            ),
            (
                "'~'\n---\n!!str null\n",
                vec![Value::from("~"), Value::from("null")],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(documents(text).expect(text), want, "{text:?}");
        }
        for one in ["", "# a comment\n", "---\n", "a: 1\n"] {
            assert!(documents(one).expect(one).len() <= 1, "{one:?}");
        }
    }

    #[test]
    fn wrong_version_missing_field_and_bad_yaml_are_errors() {
        let mut out = Manifests::default();
        let e = parse_into(&ROUTE.replace("v1alpha1", "v2"), "f", &mut out).unwrap_err();
        assert!(matches!(e, ManifestError::Version { .. }), "{e}");
        let e = parse_into(&ROUTE.replace("  weight: 100\n", ""), "f", &mut out).unwrap_err();
        assert!(e.to_string().contains("weight"), "{e}");
        assert!(parse_into("a: [", "f", &mut out).is_err());
    }

    #[test]
    fn directories_are_read_recursively_in_name_order() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(dir.path().join("sub")).expect("sub");
        std::fs::write(dir.path().join("b.yaml"), ROUTE.replace("r1", "b")).expect("b");
        std::fs::write(dir.path().join("sub/a.yml"), ROUTE.replace("r1", "a")).expect("a");
        std::fs::write(dir.path().join("README.md"), "# not yaml: [").expect("md");
        std::fs::write(dir.path().join(".hidden.yaml"), "a: [").expect("hidden");
        let out = load(&[dir.path().to_owned()]).expect("load");
        let names: Vec<_> = out
            .routes
            .iter()
            .filter_map(|l| l.route.metadata.name.clone())
            .collect();
        assert_eq!(names, vec!["b", "a"]);
        assert!(load(&[dir.path().join("missing.yaml")]).is_err());
    }
}
