//! A gate the caller sets around a call and the client checks at the last moment before each
//! request leaves: after the rate limiter, the credentials and the signature, just before the
//! bytes are written. A leader that may send changes only until a deadline (a lease fence)
//! thereby never sends a request whose deadline passed while it waited in the
//! limiter; a check made before the call could not tell.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::{ApiError, CloudError, ErrorClass};

/// The code of a request the gate kept from leaving. Nothing was sent, so it is safe to try
/// again; the client does not retry it itself.
pub const NOT_SENT: &str = "RequestNotSent";

/// Whether a request may leave now.
#[derive(Clone)]
pub struct SendGate(Arc<dyn Fn() -> bool + Send + Sync>);

impl SendGate {
    pub fn new(open: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(open))
    }
}

tokio::task_local! {
    static GATE: SendGate;
}

/// Runs `future` with every request it makes passing `gate` first.
pub async fn with_send_gate<F: Future>(gate: SendGate, future: F) -> F::Output {
    GATE.scope(gate, future).await
}

/// Whether the gate around the running task (if any) lets a request leave now.
pub fn send_gate_open() -> bool {
    GATE.try_with(|g| (g.0)()).unwrap_or(true)
}

impl CloudError {
    /// The request never left: the caller's send gate was closed when it was due (see
    /// [`with_send_gate`]).
    pub fn is_not_sent(&self) -> bool {
        self.code() == NOT_SENT
    }
}

/// `Err` with [`NOT_SENT`] when the gate around the running task is closed.
pub(crate) fn check(action: &'static str) -> Result<(), CloudError> {
    if send_gate_open() {
        return Ok(());
    }
    Err(CloudError::Api(Box::new(ApiError {
        action,
        http_status: 0,
        code: NOT_SENT.to_owned(),
        message: "not sent: the caller's send gate was closed when the request was due to leave"
            .to_owned(),
        request_id: None,
        host_id: None,
        recommend: None,
        retry_after: Some(Duration::from_secs(1)),
        class: ErrorClass::Throttled,
    })))
}
