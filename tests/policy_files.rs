//! The RAM policies docs/install.md shows are the files of `deploy/` (the ones the emulator's
//! trust tests load, crates/vpc-emulator/src/server.rs), and they fit the `VpnAccount` examples
//! of the same guide: the operator may assume every role an example names, and the target
//! role's trust policy wants the external ID its account's example gives. Starts nothing.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::repo_root;

const GUIDE: &str = "docs/install.md";
const OPERATOR_POLICY: &str = "deploy/policies/operator-assume-role.json";
const TRUST_POLICY: &str = "deploy/policies/target-role-trust.json";
const VPC_POLICY: &str = "deploy/ram-policy.json";

/// The fenced blocks of `text`: (info string, body).
fn blocks(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => open = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn json(path: &str) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_guide_shows_each_policy_file_as_it_is() {
    let guide = read(GUIDE);
    let mut shown = BTreeSet::new();
    for (info, body) in blocks(&guide) {
        let Some(file) = info
            .split_whitespace()
            .find_map(|w| w.strip_prefix("file="))
        else {
            continue;
        };
        assert_eq!(
            body,
            read(file),
            "{GUIDE}: the block marked file={file} differs from the file"
        );
        shown.insert(file.to_owned());
    }
    let mut files: BTreeSet<String> = [VPC_POLICY.to_owned()].into();
    for entry in std::fs::read_dir(repo_root().join("deploy/policies")).expect("deploy/policies") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        files.insert(format!("deploy/policies/{name}"));
    }
    assert_eq!(
        shown, files,
        "{GUIDE} shows every policy file, marked file=<path>"
    );
}

#[test]
fn the_policies_fit_the_guides_accounts() {
    let guide = read(GUIDE);
    let accounts: Vec<Value> = blocks(&guide)
        .into_iter()
        .filter(|(info, _)| info == "yaml")
        .flat_map(|(_, body)| serde_saphyr::from_multiple::<Value>(&body).expect("yaml block"))
        .filter(|doc| doc["kind"] == "VpnAccount")
        .collect();
    let assumed: Vec<(&str, &str)> = accounts
        .iter()
        .filter_map(|a| {
            let r = &a["spec"]["credentials"]["assumeRole"];
            Some((r["roleArn"].as_str()?, r["externalId"].as_str()?))
        })
        .collect();
    assert!(
        assumed.len() >= 2,
        "{GUIDE}: the guide's VpnAccounts assume roles in several accounts: {assumed:?}"
    );

    // The operator may assume each of them, and no other role.
    let operator = json(OPERATOR_POLICY);
    let statement = &operator["Statement"][0];
    assert_eq!(statement["Effect"], "Allow");
    assert_eq!(statement["Action"], "sts:AssumeRole");
    let resources: BTreeSet<&str> = statement["Resource"]
        .as_array()
        .expect("Resource list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let roles: BTreeSet<&str> = assumed.iter().map(|(arn, _)| *arn).collect();
    assert_eq!(
        resources, roles,
        "{OPERATOR_POLICY}: the roles the accounts assume"
    );

    // The trust policy admits the operator's RRSA role (the guide's roleArn) with the external
    // ID of the account whose role it is.
    let trust = json(TRUST_POLICY);
    let statement = &trust["Statement"][0];
    let rrsa_role = guide
        .split_whitespace()
        .find_map(|w| w.strip_prefix("credentials.rrsa.roleArn="))
        .expect("the guide's credentials.rrsa.roleArn");
    assert_eq!(statement["Principal"]["RAM"][0], rrsa_role);
    let external_id = statement["Condition"]["StringEquals"]["sts:ExternalId"]
        .as_str()
        .expect("the trust policy's ExternalId");
    let (role, _) = assumed
        .iter()
        .find(|(_, id)| *id == external_id)
        .unwrap_or_else(|| panic!("no VpnAccount of {GUIDE} gives the ExternalId {external_id}"));
    let account = |arn: &str| {
        arn.strip_prefix("acs:ram::")
            .and_then(|r| r.split(':').next())
            .map(str::to_owned)
    };
    assert!(
        external_id.ends_with(&account(role).expect("role account")),
        "the example external ID names its account, so that each account has its own"
    );
}
