//! vpn-pbr-operator: a Kubernetes operator for Alibaba Cloud VPN gateway policy-based routes.

pub mod api;
pub mod cloud;
pub mod controller;
pub mod emulator;
