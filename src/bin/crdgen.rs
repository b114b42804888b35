//! Prints the CustomResourceDefinition of `VpnPbrRoute` as YAML (`crds/` is generated from it),
//! or with `--chart-template` the chart's template of it (`make crds` writes both).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let yaml = match args.as_slice() {
        [] => vpn_pbr_operator::api::crd_yaml(),
        [flag] if flag == "--chart-template" => vpn_pbr_operator::api::crd_chart_template(),
        _ => {
            eprintln!("usage: crdgen [--chart-template]");
            return ExitCode::from(2);
        }
    };
    match yaml {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("crdgen: {e}");
            ExitCode::FAILURE
        }
    }
}
