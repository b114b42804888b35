//! docs/benchmarks.md: the results of `make bench` as tables, with the command, the machine and
//! the commit; the targets and whether each is met.
//!
//! - `results`: the runs of one `pbr-bench bench` and the targets they are held to;
//! - `header`: how the document was made (command, commit, machine, date);
//! - `document`: the whole document, its order and the kept analysis block;
//! - `runs`, `restart`, `accounts`: the sections of the scenario runs, of the restart run and
//!   of the multi-account run;
//! - `format`: how values are written.

mod accounts;
mod document;
#[cfg(test)]
mod fixtures;
mod format;
mod header;
mod restart;
mod results;
mod runs;

pub use document::{render, write};
pub use header::Header;
pub use results::Results;
