//! Prints the CustomResourceDefinition of `VpnPbrRoute` as YAML (`crds/` is generated from it).

fn main() -> Result<(), serde_saphyr::SerializeError> {
    print!("{}", vpn_pbr_operator::api::crd_yaml()?);
    Ok(())
}
