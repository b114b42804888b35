//! The official Python SDKs, unchanged, against the real `vpc-emulator` binary.
//! Needs `SDK_PYTHON` (the venv python from `hack/python-venv.sh`; `make test` exports it).

use std::process::{Command, Stdio};

use vpc_emulator::process::EmulatorProcess;

/// Config of the SDK scripts (`tests/python/emulator_common.py` names the same ids).
const CONFIG: &str = r#"
settings:
  task_conflict_window_ms: 150
  cross_gateway_conflict: true
  shuffle_seed: 11
access_keys:
  - {id: sdk-key, secret: sdk-secret}
  - {id: sdk-readonly, secret: sdk-readonly-secret, allowed_actions: ["vpc:Describe*"]}
  - {id: sdk-subuser, secret: sdk-subuser-secret, allowed_actions: [DescribeVpnGateway], forbidden_code: Forbbiden.SubUser}
regions: [cn-hangzhou]
vpn_gateways:
  - {id: vpn-sdk-a, region: cn-hangzhou, vpc_id: vpc-sdk, priority_support: true, update_duration_ms: 600}
  - {id: vpn-sdk-b, region: cn-hangzhou, vpc_id: vpc-sdk, update_duration_ms: 600}
  - {id: vpn-sdk-bulk, region: cn-hangzhou, vpc_id: vpc-bulk, update_duration_ms: 0}
  - {id: vpn-sdk-async, region: cn-hangzhou, vpc_id: vpc-async, priority_support: true, update_duration_ms: 1000, visibility: on_active, shuffle_lists: true}
  - {id: vpn-sdk-dual, region: cn-hangzhou, vpc_id: vpc-dual, priority_support: true, update_duration_ms: 300, dual_tunnel: true}
  - {id: vpn-sdk-doomed, region: cn-hangzhou, vpc_id: vpc-doomed, update_duration_ms: 0}
vpn_connections:
  - {id: vco-sdk-a1, gateway_id: vpn-sdk-a}
  - {id: vco-sdk-a2, gateway_id: vpn-sdk-a}
  - {id: vco-sdk-b1, gateway_id: vpn-sdk-b}
  - {id: vco-sdk-bulk1, gateway_id: vpn-sdk-bulk}
  - {id: vco-sdk-async1, gateway_id: vpn-sdk-async}
  - {id: vco-sdk-async2, gateway_id: vpn-sdk-async}
  - {id: vco-sdk-dual1, gateway_id: vpn-sdk-dual}
  - {id: vco-sdk-doomed1, gateway_id: vpn-sdk-doomed}
accounts:
  - id: "2222222222222222"
    roles:
      - name: sdk-cross
        trust_policy:
          Statement:
            - Action: sts:AssumeRole
              Effect: Allow
              Principal: {RAM: ["acs:ram::1234567890123456:user/sdk-key"]}
              Condition: {StringEquals: {"sts:ExternalId": sdk-ext}}
oidc:
  provider_arn: acs:ram::1234567890123456:oidc-provider/sdk-test
  roles:
    - {arn: "acs:ram::1234567890123456:role/sdk-test"}
  accepted_tokens: [good-oidc-token]
"#;

fn sdk_python() -> String {
    match std::env::var("SDK_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => panic!(
            "SDK_PYTHON is not set: run `export SDK_PYTHON=$(hack/python-venv.sh)` (make test does this) \
             so the official SDKs can be driven against the emulator"
        ),
    }
}

fn run_script(script: &str) {
    let python = sdk_python();
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("emulator.yaml");
    std::fs::write(&config, CONFIG).expect("write config");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_vpc-emulator"));
    let emu =
        EmulatorProcess::spawn(bin, &config, Stdio::null(), None).expect("start vpc-emulator");
    let addr = emu.url().trim_start_matches("http://");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python");
    let out = Command::new(&python)
        .arg(format!("{dir}/{script}"))
        .arg(addr)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.lines().any(|l| l.starts_with("ALL OK")),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    let checks = stdout.lines().filter(|l| l.starts_with("ok ")).count();
    assert!(checks >= 40, "{script}: only {checks} checks ran");
    println!("{stdout}");
}

#[test]
fn classic_sdk_signature_v1() {
    run_script("emulator_classic.py");
}

#[test]
fn tea_sdk_signature_v3() {
    run_script("emulator_tea.py");
}
