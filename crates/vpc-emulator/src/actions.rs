//! The actions the emulator answers, their API versions, and which of them change something.

pub const VPC_VERSION: &str = "2016-04-28";
pub const STS_VERSION: &str = "2015-04-01";

/// Every action the emulator answers, with the API version it belongs to.
pub const ACTIONS: &[(&str, &str)] = &[
    ("CreateVpnPbrRouteEntry", VPC_VERSION),
    ("DeleteVpnPbrRouteEntry", VPC_VERSION),
    ("DescribeVpnPbrRouteEntries", VPC_VERSION),
    ("ModifyVpnPbrRouteEntryWeight", VPC_VERSION),
    ("ModifyVpnPbrRouteEntryPriority", VPC_VERSION),
    ("ModifyVpnPbrRouteEntryAttribute", VPC_VERSION),
    ("PublishVpnRouteEntry", VPC_VERSION),
    ("DescribeVpnGateway", VPC_VERSION),
    ("DescribeVpnConnection", VPC_VERSION),
    ("DescribeVpnConnections", VPC_VERSION),
    ("AssumeRoleWithOIDC", STS_VERSION),
    ("AssumeRole", STS_VERSION),
    ("GetCallerIdentity", STS_VERSION),
];

/// The actions that change something; the others only read.
pub const MUTATIONS: &[&str] = &[
    "CreateVpnPbrRouteEntry",
    "DeleteVpnPbrRouteEntry",
    "ModifyVpnPbrRouteEntryWeight",
    "ModifyVpnPbrRouteEntryPriority",
    "ModifyVpnPbrRouteEntryAttribute",
    "PublishVpnRouteEntry",
];

pub fn is_mutation(action: &str) -> bool {
    MUTATIONS.contains(&action)
}

/// The canonical (static) name of a known action, for counters without allocation.
pub fn known_action(name: &str) -> Option<(&'static str, &'static str)> {
    ACTIONS.iter().copied().find(|(a, _)| *a == name)
}
