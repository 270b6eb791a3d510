//! The process-wide stream of lifecycle events that observers show.
//!
//! Supervisors and pools publish here (through `crate::metrics`) without
//! knowing whether anyone watches: with no observer running, publishing is
//! one atomic load and the event is never built. Observers subscribe to a
//! bounded `broadcast` channel, so a slow reader never makes a publisher
//! wait: it loses the oldest events and is told how many
//! (`RecvError::Lagged`).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for a subscriber that has not read them yet; past this it
/// lags (loses the oldest).
const CAPACITY: usize = 1024;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A child ended (the detail is the reason).
    Exit,
    /// A child (or pool worker) started again.
    Restart,
    /// A child supervisor failed: its parent received the escalation.
    Escalation,
    /// A supervisor gave up: one restart too many.
    IntensityExceeded,
    /// A message was not processed.
    DeadLetter,
    /// A peer came up.
    Up,
    /// A peer went down.
    Down,
    /// Another node event (membership, names, rejected connections).
    Node,
    /// Child actions taken through an observer.
    Action,
}

/// One event, as the observer's page and JSON API show it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Increasing within the process.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What happened.
    pub kind: EventKind,
    /// What it is about: a child's path in its tree (`app/storage/db`), a
    /// supervisor's, or a peer's name.
    pub path: String,
    /// The reason or other detail, as text.
    pub detail: String,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Event {
    /// An event stamped now.
    pub fn new(kind: EventKind, path: String, detail: String) -> Self {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        Event {
            seq: SEQ.fetch_add(1, Ordering::Relaxed) + 1,
            at_ms,
            kind,
            path,
            detail,
        }
    }
}

/// Observers subscribed now; publishers skip all work while it is zero.
static SUBSCRIBERS: AtomicUsize = AtomicUsize::new(0);
static CHANNEL: OnceLock<broadcast::Sender<Arc<Event>>> = OnceLock::new();

fn channel() -> &'static broadcast::Sender<Arc<Event>> {
    CHANNEL.get_or_init(|| broadcast::channel(CAPACITY).0)
}

/// Publishes the event `make` builds, if an observer listens.
pub(crate) fn publish(make: impl FnOnce() -> Event) {
    if SUBSCRIBERS.load(Ordering::Relaxed) == 0 {
        return;
    }
    let _ = channel().send(Arc::new(make()));
}

/// A subscription; publishers build events while one exists.
pub(crate) struct Subscription {
    pub(crate) rx: broadcast::Receiver<Arc<Event>>,
}

impl Subscription {
    pub(crate) fn new() -> Self {
        SUBSCRIBERS.fetch_add(1, Ordering::Relaxed);
        Subscription {
            rx: channel().subscribe(),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        SUBSCRIBERS.fetch_sub(1, Ordering::Relaxed);
    }
}
