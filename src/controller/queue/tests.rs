//! Table tests of the gateway queue, driven event by event.
