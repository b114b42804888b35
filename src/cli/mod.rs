//! The command line: `vpn-pbr-operator` with flags only runs the operator (what the chart
//! does); the subcommands are tools for people and CI:
//!
//! - `import`: writes one `VpnPbrRoute` manifest per policy-based route that already exists on
//!   the named gateways, with the adopt annotation set (`cli/import.rs`); `--account` reads
//!   them through a `VpnAccount` and writes it as `spec.accountRef`;
//! - `plan`: reads manifests (and, with `--live`/`--kubeconfig`, the cluster) and the gateways,
//!   and prints what the operator would do per route, checking every create with `DryRun`
//!   (`cli/plan/`), each route in its account as the operator resolves it (`cli/accounts.rs`).
//!
//! Neither changes anything in the cloud or the cluster.

mod accounts;
mod cloud;
mod import;
mod manifests;
mod plan;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

/// Kubernetes operator for Alibaba Cloud VPN gateway policy-based routes.
///
/// Without a subcommand it runs the operator with the flags below (each has an environment
/// variable). `import` and `plan` are tools for moving existing routes in and checking
/// manifests before they are merged; see `vpn-pbr-operator help import` and `help plan`.
#[derive(Parser, Debug)]
#[command(
    name = "vpn-pbr-operator",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_value_name = "COMMAND",
    subcommand_help_heading = "Commands (instead of running the operator)"
)]
pub struct Cli {
    #[command(flatten)]
    pub operator: Config,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The tools beside the operator.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write a VpnPbrRoute manifest for every policy-based route that already exists on the
    /// given gateways (with `vpn.alicloud.dev/adopt: "true"`), ready for `kubectl apply` or Git.
    Import(import::ImportArgs),
    /// Show what the operator would do for the given manifests: create, modify, replace,
    /// delete, adopt, conflict or nothing; every create is checked with DryRun. Changes nothing.
    /// Exit code: 0 no changes, 2 changes, 1 errors.
    Plan(plan::PlanArgs),
}

/// Why a command failed before it could give its answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    // In the order a run meets them: logging is set up before the command runs.
    #[error("logging: {0}")]
    Logging(String),
    #[error(transparent)]
    Import(#[from] import::ImportError),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
}

/// Exit code of a failure (as `terraform plan -detailed-exitcode`: 1 is an error).
pub(crate) const EXIT_ERROR: u8 = 1;

/// Parses the command line, exiting on `--help`, `--version` and usage errors. A usage error of
/// a subcommand exits with 1, not clap's 2, which `plan` uses for "changes".
pub fn parse() -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let subcommand = args
                .get(1)
                .and_then(|a| a.to_str())
                .is_some_and(|a| matches!(a, "import" | "plan"));
            if subcommand && e.use_stderr() {
                let _ = e.print();
                std::process::exit(i32::from(EXIT_ERROR));
            }
            e.exit()
        }
    }
}

/// Runs a subcommand; its exit code.
pub async fn run(command: Command) -> ExitCode {
    let result = async {
        match command {
            Command::Import(args) => {
                init_logging(&args.cloud.log_level)?;
                Ok(import::run(args).await?)
            }
            Command::Plan(args) => {
                init_logging(&args.cloud.log_level)?;
                Ok(plan::run(args).await?)
            }
        }
    }
    .await;
    let result: Result<u8, CliError> = result;
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("vpn-pbr-operator: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Logs go to stderr, so stdout carries only the command's answer (manifests, the plan).
fn init_logging(level: &str) -> Result<(), CliError> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| CliError::Logging(format!("invalid --log-level {level:?}: {e}")))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| CliError::Logging(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn no_subcommand_runs_the_operator_with_its_flags() {
        let cli = Cli::try_parse_from(["op", "--namespaces", "a,b", "--resync", "30s"])
            .expect("operator flags");
        assert!(cli.command.is_none());
        assert_eq!(cli.operator.watched_namespaces(), vec!["a", "b"]);
        let cli = Cli::try_parse_from(["op"]).expect("no flags");
        assert!(cli.command.is_none());
    }

    #[test]
    fn subcommands_parse_and_do_not_mix_with_operator_flags() {
        let cli = Cli::try_parse_from([
            "op",
            "import",
            "--region",
            "cn-hangzhou",
            "--gateway",
            "vpn-a",
            "--gateway",
            "vpn-b",
        ])
        .expect("import");
        match cli.command {
            Some(Command::Import(a)) => assert_eq!(a.gateways, vec!["vpn-a", "vpn-b"]),
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from(["op", "plan", "-f", "a.yaml", "-f", "dir", "-o", "json"])
            .expect("plan");
        assert!(matches!(cli.command, Some(Command::Plan(_))));
        assert!(Cli::try_parse_from(["op", "--resync", "30s", "plan", "-f", "x"]).is_err());
        // `--prune` needs the cluster: checked when the environment is known
        // (`plan::cluster_source`).
        assert!(
            Cli::try_parse_from(["op", "plan", "-f", "x", "--prune", "--kubeconfig", "k"]).is_ok()
        );
        assert!(Cli::try_parse_from(["op", "plan", "-f", "x", "--prune", "--live"]).is_ok());
    }

    fn import_destination(flags: &[&str]) -> Result<(String, bool), clap::Error> {
        let mut args = vec!["op", "import", "--region", "r", "--gateway", "g"];
        args.extend_from_slice(flags);
        match Cli::try_parse_from(args)?.command {
            Some(Command::Import(a)) => {
                let (out, deprecated) = a.destination();
                Ok((out.to_owned(), deprecated))
            }
            other => panic!("{other:?}"),
        }
    }

    /// `import --output-dir` names the directory; `-o`/`--output`, its old spelling, still
    /// works and is marked deprecated (the caller warns); naming both is refused.
    #[test]
    fn import_writes_to_output_dir_and_o_is_its_deprecated_alias() {
        let d = |flags: &[&str]| import_destination(flags).expect("parses");
        assert_eq!(d(&[]), ("-".to_owned(), false));
        assert_eq!(d(&["--output-dir", "out"]), ("out".to_owned(), false));
        assert_eq!(d(&["-o", "out"]), ("out".to_owned(), true));
        assert_eq!(d(&["--output", "-"]), ("-".to_owned(), true));
        assert!(import_destination(&["-o", "a", "--output-dir", "b"]).is_err());
    }

    #[test]
    fn help_documents_every_flag() {
        let mut cmd = Cli::command();
        cmd.build();
        fn check(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                if matches!(arg.get_id().as_str(), "help" | "version") {
                    continue;
                }
                assert!(
                    arg.get_help().is_some() || arg.get_long_help().is_some(),
                    "{path} --{}: no help",
                    arg.get_id()
                );
            }
            for sub in cmd.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&cmd, "vpn-pbr-operator");
        cmd.debug_assert();
    }
}
