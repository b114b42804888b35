//! Prints a CustomResourceDefinition of the API as YAML (`crds/` is generated from it), or with
//! `--chart-template` the chart's template of it (`make crds` writes both of each CRD). Without
//! a name, the `VpnPbrRoute` CRD.

use std::process::ExitCode;

const USAGE: &str = "usage: crdgen [--chart-template] [CRD-NAME]";
const DEFAULT_CRD: &str = "vpnpbrroutes.vpn.alicloud.dev";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (chart, rest) = match args.split_first() {
        Some((flag, rest)) if flag == "--chart-template" => (true, rest),
        _ => (false, args.as_slice()),
    };
    let name = match rest {
        [] => DEFAULT_CRD,
        [name] if !name.starts_with('-') => name.as_str(),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let Some(crd) = vpn_pbr_operator::api::crd_named(name) else {
        let names: Vec<String> = vpn_pbr_operator::api::crds()
            .into_iter()
            .filter_map(|crd| crd.metadata.name)
            .collect();
        eprintln!("crdgen: no CRD {name}; the API has {}", names.join(", "));
        return ExitCode::from(2);
    };
    let yaml = if chart {
        vpn_pbr_operator::api::crd_chart_template(&crd)
    } else {
        vpn_pbr_operator::api::crd_yaml(&crd)
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
