//! The marked shell blocks of chosen sections of a Markdown text (the convention: the module's
//! parent).

use std::collections::{BTreeMap, BTreeSet};

/// Languages of blocks a reader may paste into a shell; an empty language counts, so an
/// untagged block cannot slip past the check.
const SHELL: [&str; 6] = ["sh", "bash", "shell", "zsh", "console", ""];
/// Languages of blocks that can run as a step (`console` mixes prompts with output).
const RUNNABLE: [&str; 3] = ["sh", "bash", "shell"];
const STEP: &str = "install-step=";
const SKIP: &str = "install-skip=";

/// A block marked `install-step=<id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub id: String,
    /// The line of the opening fence, from 1.
    pub line: usize,
    /// The heading of the chosen section the block is in.
    pub section: String,
    /// The block's lines (without the fence's indentation), each ending in a newline.
    pub text: String,
}

/// Why a text's marks are wrong; `line` is the opening fence's, from 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error(
        "line {line}: the `{lang}` block in \"{section}\" is not marked: put install-step=<id> \
         (run it) or install-skip=<reason> (do not) after the language of its fence"
    )]
    Unmarked {
        line: usize,
        lang: String,
        section: String,
    },
    #[error(
        "line {line}: a marked block outside the install sections: move the marker, or add the \
         block's section to the sections the test reads"
    )]
    MarkedOutside { line: usize },
    #[error("line {line}: install-step on a `{lang}` block; only sh, bash and shell blocks run")]
    NotRunnable { line: usize, lang: String },
    #[error("line {line}: {problem}")]
    BadMarker { line: usize, problem: String },
    #[error("line {line}: step id `{id}` is taken already by the block at line {first}")]
    DuplicateId {
        line: usize,
        id: String,
        first: usize,
    },
    #[error("no heading \"{0}\": the install sections moved or were renamed")]
    MissingSection(String),
    #[error("line {line}: the code block opened here never closes")]
    Unclosed { line: usize },
}

/// What a fence's info string asks.
#[derive(Debug, PartialEq, Eq)]
enum Mark {
    None,
    Step(String),
    Skip,
}

/// An open fenced block.
struct Fence {
    line: usize,
    indent: usize,
    ch: char,
    len: usize,
    info: String,
    body: String,
}

/// The steps of `markdown`'s sections titled `sections` (ATX headings, the text after the `#`s),
/// in order; each section runs to the next heading of its level or above. Every problem is
/// reported, not only the first.
pub fn extract_steps(markdown: &str, sections: &[&str]) -> Result<Vec<Step>, Vec<ExtractError>> {
    let mut errors = Vec::new();
    let mut steps: Vec<Step> = Vec::new();
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    let mut found: BTreeSet<&str> = BTreeSet::new();
    // The chosen section the current line is in: its level and title.
    let mut current: Option<(usize, String)> = None;
    let mut open: Option<Fence> = None;
    for (i, line) in markdown.lines().enumerate() {
        let n = i + 1;
        if let Some(fence) = open.as_mut() {
            if closes(line, fence) {
                let fence = open.take().expect("open fence");
                let section = current.as_ref().map(|(_, t)| t.as_str());
                match block(&fence, section, &mut ids) {
                    Ok(Some(step)) => steps.push(step),
                    Ok(None) => {}
                    Err(e) => errors.push(e),
                }
            } else {
                fence.body.push_str(strip_indent(line, fence.indent));
                fence.body.push('\n');
            }
            continue;
        }
        if let Some(fence) = opens(line, n) {
            open = Some(fence);
        } else if let Some((level, title)) = heading(line) {
            if current.as_ref().is_some_and(|(l, _)| level <= *l) {
                current = None;
            }
            if let Some(s) = sections.iter().find(|s| **s == title) {
                found.insert(s);
                current = Some((level, title.to_owned()));
            }
        }
    }
    if let Some(fence) = open {
        errors.push(ExtractError::Unclosed { line: fence.line });
    }
    for s in sections {
        if !found.contains(s) {
            errors.push(ExtractError::MissingSection((*s).to_owned()));
        }
    }
    if errors.is_empty() {
        Ok(steps)
    } else {
        Err(errors)
    }
}

/// The step a closed block is, if any; an error when its mark is wrong for where it is.
fn block(
    fence: &Fence,
    section: Option<&str>,
    ids: &mut BTreeMap<String, usize>,
) -> Result<Option<Step>, ExtractError> {
    let line = fence.line;
    let (lang, rest) = match fence.info.split_once(char::is_whitespace) {
        Some((lang, rest)) => (lang.to_ascii_lowercase(), rest.trim()),
        None => (fence.info.to_ascii_lowercase(), ""),
    };
    let mark = mark(rest).map_err(|problem| ExtractError::BadMarker { line, problem })?;
    let Some(section) = section else {
        return match mark {
            Mark::None => Ok(None),
            Mark::Step(_) | Mark::Skip => Err(ExtractError::MarkedOutside { line }),
        };
    };
    match mark {
        Mark::None if SHELL.contains(&lang.as_str()) => Err(ExtractError::Unmarked {
            line,
            lang,
            section: section.to_owned(),
        }),
        Mark::None | Mark::Skip => Ok(None),
        Mark::Step(_) if !RUNNABLE.contains(&lang.as_str()) => {
            Err(ExtractError::NotRunnable { line, lang })
        }
        Mark::Step(id) => {
            if let Some(first) = ids.get(&id) {
                return Err(ExtractError::DuplicateId {
                    line,
                    id,
                    first: *first,
                });
            }
            ids.insert(id.clone(), line);
            Ok(Some(Step {
                id,
                line,
                section: section.to_owned(),
                text: fence.body.clone(),
            }))
        }
    }
}

/// The mark in the info string after the language.
fn mark(rest: &str) -> Result<Mark, String> {
    if let Some(id) = rest.strip_prefix(STEP) {
        let valid = !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(format!(
                "`{STEP}{id}`: the id is one word of a-z, 0-9 and -, and nothing follows it"
            ));
        }
        Ok(Mark::Step(id.to_owned()))
    } else if let Some(reason) = rest.strip_prefix(SKIP) {
        if reason.trim().is_empty() {
            return Err(format!("`{SKIP}` without a reason"));
        }
        Ok(Mark::Skip)
    } else if rest.contains("install-") {
        Err(format!(
            "`{rest}`: the marker is {STEP}<id> or {SKIP}<reason>, right after the language"
        ))
    } else {
        Ok(Mark::None)
    }
}

/// An opening fence: three or more backticks or tildes after any indentation (fences inside
/// list items are indented), then the info string.
fn opens(line: &str, n: usize) -> Option<Fence> {
    let trimmed = line.trim_start_matches(' ');
    let indent = line.len() - trimmed.len();
    let ch = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = trimmed.chars().take_while(|c| *c == ch).count();
    let info = trimmed[len..].trim();
    if len < 3 || (ch == '`' && info.contains('`')) {
        return None;
    }
    Some(Fence {
        line: n,
        indent,
        ch,
        len,
        info: info.to_owned(),
        body: String::new(),
    })
}

/// Whether `line` closes `fence`: at least as many of its character, and nothing else.
fn closes(line: &str, fence: &Fence) -> bool {
    let t = line.trim();
    t.len() >= fence.len && t.chars().all(|c| c == fence.ch)
}

/// `line` without up to `indent` leading spaces.
fn strip_indent(line: &str, indent: usize) -> &str {
    let spaces = line.len() - line.trim_start_matches(' ').len();
    &line[spaces.min(indent)..]
}

/// An ATX heading's level and text.
fn heading(line: &str) -> Option<(usize, &str)> {
    let t = line.trim_start_matches(' ');
    if line.len() - t.len() > 3 {
        return None;
    }
    let level = t.chars().take_while(|c| *c == '#').count();
    let rest = &t[level..];
    if !(1..=6).contains(&level) || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    Some((level, rest.trim().trim_end_matches('#').trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# Title

```sh
make demo   # not in an install section: needs no mark
```

## Install

Text.

```sh install-step=first
echo one
# a comment, not a heading
```

```yaml
kind: NotShell
```

### Details

   ```bash install-step=second
   echo two
     indented
   ```

~~~sh install-skip=needs a real account
aliyun ram CreatePolicy
~~~

## After

```sh
echo not a step
```
";

    #[test]
    fn marked_blocks_of_the_sections_are_the_steps_in_order() {
        let steps = extract_steps(DOC, &["Install"]).expect("steps");
        let got: Vec<(&str, usize, &str, &str)> = steps
            .iter()
            .map(|s| (s.id.as_str(), s.line, s.section.as_str(), s.text.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "first",
                    11,
                    "Install",
                    "echo one\n# a comment, not a heading\n"
                ),
                ("second", 22, "Install", "echo two\n  indented\n"),
            ]
        );
    }

    #[test]
    fn an_unmarked_shell_block_in_a_section_fails() {
        for lang in ["sh", "bash", "shell", "console", ""] {
            let doc = format!("## Install\n\n```{lang}\nkubectl apply -f x\n```\n");
            assert_eq!(
                extract_steps(&doc, &["Install"]),
                Err(vec![ExtractError::Unmarked {
                    line: 3,
                    lang: lang.to_owned(),
                    section: "Install".into()
                }]),
                "{lang}"
            );
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let doc = "\
```sh install-step=outside
x
```
## Install
```sh install-step=a
x
```
```sh install-step=a
x
```
```console install-step=b
$ x
```
```sh install-step=Bad_Id
x
```
```sh install-skip=
x
```
```sh install-steps=c
x
```
```sh
";
        let errors = extract_steps(doc, &["Install", "Upgrade"]).expect_err("errors");
        assert_eq!(
            errors,
            [
                ExtractError::MarkedOutside { line: 1 },
                ExtractError::DuplicateId {
                    line: 8,
                    id: "a".into(),
                    first: 5
                },
                ExtractError::NotRunnable {
                    line: 11,
                    lang: "console".into()
                },
                ExtractError::BadMarker {
                    line: 14,
                    problem: "`install-step=Bad_Id`: the id is one word of a-z, 0-9 and -, and \
                              nothing follows it"
                        .into()
                },
                ExtractError::BadMarker {
                    line: 17,
                    problem: "`install-skip=` without a reason".into()
                },
                ExtractError::BadMarker {
                    line: 20,
                    problem: "`install-steps=c`: the marker is install-step=<id> or \
                              install-skip=<reason>, right after the language"
                        .into()
                },
                ExtractError::Unclosed { line: 23 },
                ExtractError::MissingSection("Upgrade".into()),
            ]
        );
    }

    #[test]
    fn a_section_ends_at_a_heading_of_its_level_or_above_only() {
        let doc = "# A\n## Install\n### Sub\n```sh install-step=x\ny\n```\n# B\n```sh\nz\n```\n";
        let steps = extract_steps(doc, &["Install"]).expect("steps");
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].section, "Install");
    }

    #[test]
    fn a_longer_fence_holds_a_shorter_one() {
        let doc = "## Install\n````sh install-step=x\n```\nstill inside\n````\n";
        let steps = extract_steps(doc, &["Install"]).expect("steps");
        assert_eq!(steps[0].text, "```\nstill inside\n");
    }
}
