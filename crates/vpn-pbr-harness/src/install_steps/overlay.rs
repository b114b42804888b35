//! The overlay: per file and step id, text substitutions that adapt a step to the local nodes
//! (tests/fixtures/install-overlay.yaml). Each substitution must match its step's text exactly
//! once, so a step rewritten in the docs fails loudly instead of running unadapted.
//!
//! ```yaml
//! README.md:                 # the file, relative to the repository
//!   chart:                   # the step id
//!     - replace: " --wait"   # text of the step, found exactly once
//!       with: ' -f "$VALUES" --wait'
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Step;

/// One substitution.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edit {
    pub replace: String,
    pub with: String,
}

/// The substitutions, per file and step id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Overlay {
    files: BTreeMap<String, BTreeMap<String, Vec<Edit>>>,
}

/// Why the overlay does not fit the steps.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverlayError {
    #[error("the overlay does not parse: {0}")]
    Parse(String),
    #[error("{file}: the overlay names step `{id}`, which the file does not have")]
    UnknownStep { file: String, id: String },
    #[error(
        "{file}:{line} step `{id}`: {found} occurrence(s) of {replace:?} where the overlay \
         expects exactly one; the step changed, so update the overlay with it"
    )]
    NoMatch {
        file: String,
        id: String,
        line: usize,
        replace: String,
        found: usize,
    },
}

impl Overlay {
    pub fn parse(yaml: &str) -> Result<Overlay, OverlayError> {
        serde_saphyr::from_str(yaml).map_err(|e| OverlayError::Parse(e.to_string()))
    }

    /// The files the overlay names.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// `steps` of `file` with the overlay's substitutions made, in the order written; every
    /// problem is reported, not only the first.
    pub fn apply(&self, file: &str, steps: &[Step]) -> Result<Vec<Step>, Vec<OverlayError>> {
        let empty = BTreeMap::new();
        let edits = self.files.get(file).unwrap_or(&empty);
        let mut errors: Vec<OverlayError> = edits
            .keys()
            .filter(|id| !steps.iter().any(|s| &s.id == *id))
            .map(|id| OverlayError::UnknownStep {
                file: file.to_owned(),
                id: id.clone(),
            })
            .collect();
        let mut out = Vec::with_capacity(steps.len());
        for step in steps {
            let mut step = step.clone();
            for edit in edits.get(&step.id).into_iter().flatten() {
                let found = step.text.matches(edit.replace.as_str()).count();
                if found == 1 && !edit.replace.is_empty() {
                    step.text = step.text.replacen(&edit.replace, &edit.with, 1);
                } else {
                    errors.push(OverlayError::NoMatch {
                        file: file.to_owned(),
                        id: step.id.clone(),
                        line: step.line,
                        replace: edit.replace.clone(),
                        found,
                    });
                }
            }
            out.push(step);
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(id: &str, text: &str) -> Step {
        Step {
            id: id.into(),
            line: 7,
            section: "Install".into(),
            text: text.into(),
        }
    }

    const OVERLAY: &str = r#"
README.md:
  chart:
    - replace: "<registry>/"
      with: ""
    - replace: " --wait"
      with: ' -f "$VALUES" --wait'
"#;

    #[test]
    fn substitutions_apply_in_order_and_leave_other_steps_alone() {
        let overlay = Overlay::parse(OVERLAY).expect("overlay");
        let steps = [
            step("crd", "kubectl apply -f crds/\n"),
            step("chart", "helm install x --set image=<registry>/op --wait\n"),
        ];
        let got = overlay.apply("README.md", &steps).expect("applied");
        assert_eq!(got[0], steps[0]);
        assert_eq!(
            got[1].text,
            "helm install x --set image=op -f \"$VALUES\" --wait\n"
        );
        assert_eq!(overlay.apply("docs/other.md", &steps), Ok(steps.to_vec()));
        assert_eq!(overlay.files().collect::<Vec<_>>(), ["README.md"]);
    }

    #[test]
    fn a_step_that_changed_or_went_fails() {
        let overlay = Overlay::parse(OVERLAY).expect("overlay");
        let changed = [step(
            "chart",
            "helm install x --set image=<registry>/op --wait --wait\n",
        )];
        assert_eq!(
            overlay.apply("README.md", &changed),
            Err(vec![OverlayError::NoMatch {
                file: "README.md".into(),
                id: "chart".into(),
                line: 7,
                replace: " --wait".into(),
                found: 2
            }])
        );
        assert_eq!(
            overlay.apply("README.md", &[step("crd", "x\n")]),
            Err(vec![OverlayError::UnknownStep {
                file: "README.md".into(),
                id: "chart".into()
            }])
        );
    }

    #[test]
    fn unknown_keys_do_not_parse() {
        let bad = "README.md:\n  chart:\n    - replace: a\n      width: b\n";
        assert!(matches!(Overlay::parse(bad), Err(OverlayError::Parse(_))));
    }
}
