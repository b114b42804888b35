//! What the chart and the emulator need on the local nodes, and only there: there is no pod
//! network, no kube-proxy and no cluster DNS, so Pods use the host network and reach the
//! apiserver and the emulator at loopback addresses, and images are imported, never pulled.
//! One place for the end-to-end test and the install steps of the docs.

use std::path::Path;

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

/// Chart values for the local nodes: the imported image (never pulled), the host network, the
/// apiserver at 127.0.0.1:`api_port` (no kube-proxy) and the VPC API at `endpoint`.
pub fn chart_values(api_port: u16, endpoint: &str) -> String {
    format!(
        r#"image:
  pullPolicy: Never
endpoint: "{endpoint}"
# No pod network on these nodes: the host's, and the apiserver on loopback (no kube-proxy).
hostNetwork: true
extraEnv:
  - name: KUBERNETES_SERVICE_HOST
    value: "127.0.0.1"
  - name: KUBERNETES_SERVICE_PORT
    value: "{api_port}"
"#
    )
}

/// `deploy/emulator/vpc-emulator.yaml` of `repo` for the local nodes: the host network of the
/// first node, `image` (imported, never pulled), API and admin API on the loopback ports `api`
/// and `admin`.
pub fn emulator_manifest(repo: &Path, image: &str, api: u16, admin: u16) -> Result<String> {
    let path = repo.join("deploy/emulator/vpc-emulator.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let mut out = String::new();
    for mut v in serde_saphyr::from_multiple::<Value>(&text)? {
        if v["kind"].as_str() == Some("Deployment") {
            let pod = &mut v["spec"]["template"]["spec"];
            pod["hostNetwork"] = true.into();
            // Its loopback address is the first node's: the kubelet probes the node's address.
            pod["nodeSelector"] = json!({"kubernetes.io/hostname": "127.0.0.1"});
            let c = &mut pod["containers"][0];
            c["image"] = image.into();
            c["imagePullPolicy"] = "Never".into();
            c["args"] = json!([
                "--config=/etc/vpc-emulator/config.yaml".to_owned(),
                format!("--listen=127.0.0.1:{api}"),
                format!("--admin-listen=127.0.0.1:{admin}"),
                "--log-format=text".to_owned(),
            ]);
            c["ports"][0]["containerPort"] = u64::from(api).into();
        }
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(&v)?);
    }
    Ok(out)
}
