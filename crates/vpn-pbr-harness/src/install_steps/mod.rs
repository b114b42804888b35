//! The install steps of the documentation, as a user runs them: the shell blocks of chosen
//! sections of a Markdown file, in order, each marked as a step to run or as not run, and the
//! overlay that adapts marked steps to the local nodes. Pure (text in, steps out);
//! tests/install_steps.rs reads the files and runs the steps.
//!
//! The marker follows the language in the fence's info string (GitHub takes the first word as
//! the language, so the block renders as any `sh` block):
//!
//! - ` ```sh install-step=<id> `: a step, run in order; `<id>` (`a-z`, `0-9`, `-`) is unique
//!   in the file and names the step in the overlay;
//! - ` ```sh install-skip=<reason> `: not run, for the reason given (a real cloud account, a
//!   fragment of another command, ...).
//!
//! Inside the chosen sections every `sh`, `bash`, `shell`, `zsh` or `console` block, and every
//! block without a language, carries one of the two; a marker outside them is an error too.
//!
//! - `extract`: the steps of a Markdown text;
//! - `overlay`: the per-step text substitutions for the local nodes.

mod extract;
mod overlay;

pub use extract::{ExtractError, Step, extract_steps};
pub use overlay::{Edit, Overlay, OverlayError};
