//! The operator crate's layers point one way: a module uses only its own layer and those below,
//! by `use` or by inline path (docs/architecture.md, "Layers").
//!
//! Plain text scanning of every `src/**/*.rs`: comments, strings and character literals are
//! blanked out, inline `mod name { .. }` blocks are followed by their braces (so `super::` in a
//! `#[cfg(test)] mod tests` means the file's own module), every path that starts with
//! `crate::`, `super::` or `self::` is read (`use` trees with their `{a, b}` groups, and paths
//! inside code), resolved to the longest module of the table it names, and compared by layer.
//! A test module is in its file's layer. A path that starts with a child module's name needs
//! no resolving: a child is never in a higher layer than its parent (checked on the table).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every module of `src/`, bottom layer first. `crate` is the crate root (`src/lib.rs`, the
/// façade); `main` and `bin::crdgen` are the binaries (`src/main.rs`, `src/bin/crdgen.rs`). A
/// `tests` child module (`decide/tests.rs`) is in its parent's layer. The "Layers" section of
/// docs/architecture.md lists the same modules in the same layers (checked below).
const LAYERS: [(&str, &[&str]); 4] = [
    (
        "core",
        &[
            "api",
            "api::compat",
            "api::v1alpha1",
            "api::v1alpha1::account",
            "api::v1alpha1::status",
            "api::v1alpha1::validation",
            "duration",
            "sync",
            "controller::error",
            "controller::event",
            "controller::fixtures",
            "controller::job",
            "controller::model",
            "controller::plan",
            "controller::reason",
            "controller::resolve",
            "controller::account_status",
            "controller::status",
        ],
    ),
    (
        "decisions",
        &[
            "controller::cached",
            "controller::decide",
            "controller::decide::apply",
            "controller::decide::cleanup",
            "controller::decide::failure",
            "controller::decide::gates",
            "controller::decide::observe",
            "controller::decide::outcome",
            "controller::decide::ownership",
            "controller::estimate",
            "controller::queue",
        ],
    ),
    (
        "drivers",
        &[
            "controller::account_reconcile",
            "controller::accounts",
            "controller::backoff",
            "controller::context",
            "controller::credentials",
            "controller::duplicates",
            "controller::echoes",
            "controller::entries",
            "controller::metrics",
            "controller::objects",
            "controller::port",
            "controller::prompt",
            "controller::reconcile",
            "controller::runner",
            "controller::roles",
            "controller::scheduler",
            "controller::tenancy",
            "controller::turns",
            "controller::verified",
            "controller::vpc",
            "controller::vpc::ram_policy",
            "fence",
            "http",
        ],
    ),
    (
        "process",
        &[
            "crate",
            "main",
            "bin::crdgen",
            "app",
            "cli",
            "cli::accounts",
            "cli::cloud",
            "cli::import",
            "cli::manifests",
            "cli::plan",
            "cli::plan::progress",
            "cli::plan::render",
            "cli::plan::rehearse",
            "cli::plan::route",
            "config",
            "shutdown",
            "telemetry",
        ],
    ),
];

/// Modules that only declare others (`src/controller/mod.rs`): in no layer, so a path must go
/// through them to one of their modules.
const NAMESPACES: &[&str] = &["controller"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file as the repository names it (`src/controller/decide.rs`).
fn shown_file(file: &Path) -> String {
    file.strip_prefix(root())
        .unwrap_or(file)
        .display()
        .to_string()
}

fn table() -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for (layer, (_, modules)) in LAYERS.iter().enumerate() {
        for m in *modules {
            assert!(
                t.insert((*m).to_owned(), layer).is_none(),
                "{m} is twice in the table"
            );
        }
    }
    t
}

fn layer_name(layer: usize) -> String {
    format!("layer {}, {}", layer + 1, LAYERS[layer].0)
}

/// The layer of a module: its own, or for a `tests` child its parent's.
fn layer_of(table: &BTreeMap<String, usize>, module: &str) -> Option<usize> {
    table.get(module).copied().or_else(|| {
        module
            .strip_suffix("::tests")
            .and_then(|parent| table.get(parent).copied())
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// `src/controller/decide.rs` -> `controller::decide`; `src/api/mod.rs` -> `api`;
/// `src/lib.rs` -> `crate`.
fn module_of(relative: &Path) -> String {
    let s = relative
        .with_extension("")
        .to_string_lossy()
        .replace('\\', "/");
    let s = s.strip_suffix("/mod").unwrap_or(&s);
    if s == "lib" {
        "crate".to_owned()
    } else {
        s.replace('/', "::")
    }
}

/// The source with comments, strings and character literals replaced by spaces (line breaks
/// kept, so lines still count).
fn code_only(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if c == 'r'
            && (i == 0 || !ident(b[i - 1]) || (b[i - 1] == 'b' && (i == 1 || !ident(b[i - 2]))))
            && {
                let mut j = i + 1;
                while b.get(j) == Some(&'#') {
                    j += 1;
                }
                b.get(j) == Some(&'"')
            }
        {
            // A raw string: r"..", r#".."#, br"..".
            let mut j = i + 1;
            while b[j] == '#' {
                j += 1;
            }
            let hashes = j - i - 1;
            let closes = |k: usize| b[k] == '"' && (1..=hashes).all(|h| b.get(k + h) == Some(&'#'));
            out.push_str(&" ".repeat(j + 1 - i));
            i = j + 1;
            while i < b.len() && !closes(i) {
                blank(&mut out, b[i]);
                i += 1;
            }
            let end = (i + 1 + hashes).min(b.len());
            out.push_str(&" ".repeat(end - i));
            i = end;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped character literal: '\n', '\'', '\u{7f}'.
            out.push_str("  ");
            i += 2;
            while i < b.len() {
                let d = b[i];
                out.push(' ');
                i += 1;
                if d == '\'' {
                    break;
                }
            }
        } else if c == '\'' && b.get(i + 2) == Some(&'\'') {
            out.push_str("   ");
            i += 3;
        } else {
            // Code, including a lifetime's quote.
            out.push(c);
            i += 1;
        }
    }
    out
}

struct Token {
    text: String,
    line: usize,
}

fn tokens(code: &str) -> Vec<Token> {
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let chars: Vec<char> = line.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() {
                i += 1;
                continue;
            }
            let start = i;
            if c.is_alphanumeric() || c == '_' {
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
            } else if c == ':' && chars.get(i + 1) == Some(&':') {
                i += 2;
            } else {
                i += 1;
            }
            out.push(Token {
                text: chars[start..i].iter().collect(),
                line: n + 1,
            });
        }
    }
    out
}

/// A path the source names, as written, with its line and the module it is written in.
#[derive(Debug, PartialEq, Eq)]
struct Reference {
    line: usize,
    /// The module the path is written in (the file's module, then any inline `mod`).
    module: Vec<String>,
    path: Vec<String>,
}

/// Reads one `use` tree from `toks[*i]`, adding every leaf path to `out`.
fn use_tree(toks: &[Token], i: &mut usize, prefix: &[String], out: &mut Vec<(Vec<String>, usize)>) {
    let mut path = prefix.to_vec();
    while let Some(t) = toks.get(*i) {
        match t.text.as_str() {
            "{" => {
                *i += 1;
                while let Some(t) = toks.get(*i) {
                    match t.text.as_str() {
                        "}" => {
                            *i += 1;
                            break;
                        }
                        "," => *i += 1,
                        _ => {
                            let before = *i;
                            use_tree(toks, i, &path, out);
                            if *i == before {
                                *i += 1;
                            }
                        }
                    }
                }
                return;
            }
            "::" => *i += 1,
            "*" => {
                *i += 1;
                out.push((path, t.line));
                return;
            }
            ";" | "," | "}" => return,
            segment => {
                path.push(segment.to_owned());
                *i += 1;
                match toks.get(*i).map(|t| t.text.as_str()) {
                    Some("::") => continue,
                    Some("as") => *i += 2,
                    _ => {}
                }
                out.push((path, t.line));
                return;
            }
        }
    }
}

/// Every `crate::`, `super::` and `self::` path of a file whose module is `module`.
fn references(src: &str, module: &[String]) -> Vec<Reference> {
    let toks = tokens(&code_only(src));
    let text = |i: usize| toks.get(i).map_or("", |t| t.text.as_str());
    let is_ident = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
    };
    let mut out = Vec::new();
    // Inline modules open at a brace depth.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let current = |inline: &[(String, usize)]| {
        let mut m = module.to_vec();
        m.extend(inline.iter().map(|(name, _)| name.clone()));
        m
    };
    // A path kept when it starts at `crate`, `super` or `self`, in the module open at `inline`.
    let reference = |path: Vec<String>, line: usize, inline: &[(String, usize)]| {
        matches!(
            path.first().map(String::as_str),
            Some("crate" | "super" | "self")
        )
        .then(|| Reference {
            line,
            module: current(inline),
            path,
        })
    };
    let mut i = 0;
    while i < toks.len() {
        match text(i) {
            "mod" if is_ident(text(i + 1)) && text(i + 2) == "{" => {
                inline.push((text(i + 1).to_owned(), depth));
                i += 2;
                continue;
            }
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                while inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            "use" => {
                let mut j = i + 1;
                let mut leaves = Vec::new();
                use_tree(&toks, &mut j, &[], &mut leaves);
                out.extend(
                    leaves
                        .into_iter()
                        .filter_map(|(path, line)| reference(path, line, &inline)),
                );
                i = j;
                continue;
            }
            "crate" | "super" | "self"
                if text(i + 1) == "::" && !(i > 0 && text(i - 1) == "in") =>
            {
                let line = toks[i].line;
                let mut path = vec![text(i).to_owned()];
                let mut j = i + 1;
                while text(j) == "::" && is_ident(text(j + 1)) {
                    path.push(text(j + 1).to_owned());
                    j += 2;
                }
                out.extend(reference(path, line, &inline));
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The absolute path a reference names (`crate::a::b` -> `[a, b]`), or `None` for a `super`
/// above the crate root.
fn absolute(r: &Reference) -> Option<Vec<String>> {
    let mut abs = r.module.clone();
    for (n, seg) in r.path.iter().enumerate() {
        match seg.as_str() {
            "crate" if n == 0 => abs.clear(),
            "super" => {
                abs.pop()?;
            }
            "self" => {}
            s => abs.push(s.to_owned()),
        }
    }
    Some(abs)
}

/// The longest known module that `abs` starts with (`crate` when none).
fn target(abs: &[String], known: &BTreeSet<String>) -> String {
    (1..=abs.len())
        .rev()
        .map(|n| abs[..n].join("::"))
        .find(|m| known.contains(m))
        .unwrap_or_else(|| "crate".to_owned())
}

/// The modules of each numbered item of the "Layers" section of docs/architecture.md: the
/// names in backticks on an item's line and its indented continuation lines (`None` without
/// the section).
fn documented_layers() -> Option<Vec<Vec<String>>> {
    let doc =
        std::fs::read_to_string(root().join("docs/architecture.md")).expect("architecture.md");
    let section = doc.split("\n## ").find(|s| s.starts_with("Layers\n"))?;
    let mut layers: Vec<Vec<String>> = Vec::new();
    let mut in_item = false;
    for line in section.lines() {
        let numbered = line
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if numbered {
            layers.push(Vec::new());
            in_item = true;
        } else if line.trim().is_empty() || !line.starts_with(' ') {
            in_item = false;
        }
        if let (true, Some(current)) = (in_item, layers.last_mut()) {
            current.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
        }
    }
    Some(layers)
}

#[test]
fn modules_use_only_their_own_layer_and_those_below() {
    let table = table();
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);

    let mut problems = Vec::new();
    let mut known: BTreeSet<String> = table.keys().cloned().collect();
    known.extend(NAMESPACES.iter().map(|m| (*m).to_owned()));
    let modules: Vec<(PathBuf, String)> = files
        .iter()
        .map(|f| {
            (
                f.clone(),
                module_of(f.strip_prefix(&src).expect("under src")),
            )
        })
        .collect();
    known.extend(modules.iter().map(|(_, m)| m.clone()));

    // Every module is placed, and the table names only modules that exist.
    for (file, module) in &modules {
        if layer_of(&table, module).is_none() && !NAMESPACES.contains(&module.as_str()) {
            problems.push(format!(
                "{}: module {module} is in no layer: add it to LAYERS in tests/layers.rs and to \
                 \"Layers\" in docs/architecture.md",
                shown_file(file)
            ));
        }
    }
    let existing: BTreeSet<&str> = modules.iter().map(|(_, m)| m.as_str()).collect();
    for m in table
        .keys()
        .map(String::as_str)
        .chain(NAMESPACES.iter().copied())
    {
        if !existing.contains(m) {
            problems.push(format!("LAYERS names {m}, which has no file under src/"));
        }
    }
    // A child is never above its parent (unless the parent is a namespace): a path through a
    // child's name then never points up.
    for (m, &layer) in &table {
        if let Some((parent, _)) = m.rsplit_once("::")
            && let Some(&p) = table.get(parent)
            && layer > p
        {
            problems.push(format!(
                "{m} is in {}, above its parent {parent} in {}",
                layer_name(layer),
                layer_name(p)
            ));
        }
    }

    // Every path points to the module's own layer or below.
    for (file, module) in &modules {
        let Some(from) = layer_of(&table, module) else {
            continue;
        };
        let own: Vec<String> = if module == "crate" {
            Vec::new()
        } else {
            module.split("::").map(str::to_owned).collect()
        };
        let src = std::fs::read_to_string(file).expect("readable source");
        for r in references(&src, &own) {
            let shown = r.path.join("::");
            let place = format!("{}:{}", shown_file(file), r.line);
            let Some(abs) = absolute(&r) else {
                problems.push(format!("{place}: `{shown}` goes above the crate root"));
                continue;
            };
            let to = target(&abs, &known);
            if NAMESPACES.contains(&to.as_str()) {
                problems.push(format!(
                    "{place}: `{shown}` names {to} itself; name one of its modules"
                ));
                continue;
            }
            let Some(layer) = layer_of(&table, &to) else {
                continue; // the module itself is reported above
            };
            if layer > from {
                problems.push(format!(
                    "{place}: `{shown}`: {module} ({}) uses {to} ({})",
                    layer_name(from),
                    layer_name(layer)
                ));
            }
        }
    }

    // The documentation lists the same layers.
    let documented = documented_layers().unwrap_or_else(|| {
        problems.push("docs/architecture.md has no section \"## Layers\"".to_owned());
        Vec::new()
    });
    let tabled: Vec<BTreeSet<String>> = LAYERS
        .iter()
        .map(|(_, ms)| ms.iter().map(|m| (*m).to_owned()).collect())
        .collect();
    if documented.is_empty() {
        // Reported above.
    } else if documented.len() == tabled.len() {
        for (n, (doc, tab)) in documented.iter().zip(&tabled).enumerate() {
            let doc: BTreeSet<String> = doc.iter().cloned().collect();
            for m in tab.difference(&doc) {
                problems.push(format!(
                    "docs/architecture.md, \"Layers\": {m} is missing from item {}",
                    n + 1
                ));
            }
            for m in doc.difference(tab) {
                problems.push(format!(
                    "docs/architecture.md, \"Layers\": item {} names `{m}`, which LAYERS does \
                     not put in {}",
                    n + 1,
                    layer_name(n)
                ));
            }
        }
    } else {
        problems.push(format!(
            "docs/architecture.md, \"Layers\" has {} numbered layers, LAYERS {}",
            documented.len(),
            tabled.len()
        ));
    }

    assert!(
        problems.is_empty(),
        "{} layering problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_scanner_reads_groups_inline_paths_and_test_modules() {
    let src = r##"
//! Docs name crate::ignored::in_comment.
use super::{a, b::{self, C}};
use crate::x::Y as Z;
pub(in crate::vis) fn f() -> &'static str {
    let _ = '{';
    let _ = "crate::ignored::in_string {";
    let _ = r#"super::ignored"#;
    crate::inline::path::call();
    "}"
}
#[cfg(test)]
mod tests {
    use super::*;
    fn g() { super::super::up::h(); }
}
fn after() { self::own::k(); }
"##;
    let module = vec!["m".to_owned(), "n".to_owned()];
    let refs: Vec<(usize, String, String)> = references(src, &module)
        .iter()
        .map(|r| {
            (
                r.line,
                r.module.join("::"),
                absolute(r).map(|a| a.join("::")).unwrap_or_default(),
            )
        })
        .collect();
    let expect = [
        (3, "m::n", "m::a"),
        (3, "m::n", "m::b"),
        (3, "m::n", "m::b::C"),
        (4, "m::n", "x::Y"),
        (9, "m::n", "inline::path::call"),
        (14, "m::n::tests", "m::n"),
        (15, "m::n::tests", "m::up::h"),
        (17, "m::n", "m::n::own::k"),
    ];
    let expect: Vec<(usize, String, String)> = expect
        .iter()
        .map(|(l, m, p)| (*l, (*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(refs, expect);
}
