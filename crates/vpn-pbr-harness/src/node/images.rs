//! The images of the repository's Dockerfile, built by `hack/image/build.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::command::run_ok;

/// The images of the Dockerfile as docker-archive tarballs.
#[derive(Clone, Debug)]
pub struct Images {
    pub operator_tar: PathBuf,
    pub emulator_tar: PathBuf,
}

impl Images {
    /// The operator image's repository.
    pub const OPERATOR: &str = "vpn-pbr-operator";
    /// The emulator image's repository.
    pub const EMULATOR: &str = "vpc-emulator";
    /// The workspace version, the tag of both.
    pub const TAG: &str = env!("CARGO_PKG_VERSION");

    /// `repository:TAG`.
    pub fn reference(repository: &str) -> String {
        format!("{repository}:{}", Self::TAG)
    }

    /// Runs `hack/image/build.sh` (cargo and buildah; incremental): the images of the current
    /// sources.
    pub fn build(repo: &Path) -> Result<Images> {
        let out = run_ok(&mut Command::new(repo.join("hack/image/build.sh")), None)
            .context("hack/image/build.sh (builds the images from the Dockerfile)")?;
        let mut lines = out.lines().map(PathBuf::from);
        let (Some(operator_tar), Some(emulator_tar)) = (lines.next(), lines.next()) else {
            bail!("hack/image/build.sh printed no tarballs:\n{out}");
        };
        Ok(Images {
            operator_tar,
            emulator_tar,
        })
    }
}
