//! Table tests of the read cache store, call by call.
