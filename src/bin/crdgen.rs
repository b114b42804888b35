//! Prints the CustomResourceDefinition of `VpnPbrRoute` as YAML (`crds/` is generated from it).

fn main() -> Result<(), serde_yaml::Error> {
    print!("{}", vpn_pbr_operator::api::crd_yaml()?);
    Ok(())
}
