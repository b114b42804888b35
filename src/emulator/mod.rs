//! The local VPC endpoint emulator (`vpc-emulator`).
