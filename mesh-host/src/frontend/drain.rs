//! Draining a listener so that no request is lost, as Envoy drains (`--drain-time-s`,
//! `drain_listeners?graceful`): first requests are discouraged for a while (HTTP/2
//! connections get a GOAWAY, every HTTP/1 response says `connection: close`, and a
//! client with a request already on its way on a keep-alive connection is answered
//! rather than cut off), then connections are closed as their last request ends, and
//! what is left when the drain timeout passes is dropped.

use std::time::Duration;

use tokio::sync::watch;

/// Where a listener is in its drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Phase {
    /// Serving as usual.
    Serving,
    /// Requests are discouraged: GOAWAY on HTTP/2, `connection: close` on HTTP/1
    /// responses; idle HTTP/1 connections stay open for requests already sent.
    Discouraging,
    /// Every connection closes once its requests in flight are answered.
    Closing,
    /// Connections still open are dropped.
    Closed,
}

/// How a listener drains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainPlan {
    /// Accept new connections while requests are discouraged (Envoy's graceful drain
    /// before shutdown); otherwise the socket closes at once (a listener removed or
    /// replaced, whose address may be needed again).
    pub keep_accepting: bool,
    /// How long requests are discouraged (Envoy's `--drain-time-s`).
    pub discourage_for: Duration,
    /// How long connections may then take to finish their requests.
    pub finish_within: Duration,
}

/// What a connection watches to follow its listener's drain.
#[derive(Debug, Clone)]
pub(super) struct DrainWatch(watch::Receiver<Phase>);

impl DrainWatch {
    pub(super) fn new() -> (watch::Sender<Phase>, Self) {
        let (sender, receiver) = watch::channel(Phase::Serving);
        (sender, Self(receiver))
    }

    /// The phase now.
    pub(super) fn phase(&self) -> Phase {
        *self.0.borrow()
    }

    /// Resolves with the next phase; `Closed` when the listener is gone.
    pub(super) async fn changed(&mut self) -> Phase {
        match self.0.changed().await {
            Ok(()) => *self.0.borrow_and_update(),
            Err(_) => Phase::Closed,
        }
    }
}
