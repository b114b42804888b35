//! vpn-pbr-operator: a Kubernetes operator for Alibaba Cloud VPN gateway policy-based routes.

pub mod api;
pub mod app;
pub mod bench;
pub mod cloud;
pub mod config;
pub mod controller;
pub mod emulator;
pub mod http;
pub mod shutdown;
pub mod telemetry;
