//! Client of the Alibaba Cloud VPC API (2016-04-28): signatures, operations, errors, credentials.

pub mod signature;
