//! vpn-pbr-operator: a Kubernetes operator for Alibaba Cloud VPN gateway policy-based routes.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod controller;
pub mod duration;
pub mod fence;
pub mod http;
pub mod shutdown;
pub mod telemetry;
