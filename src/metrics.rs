//! Metrics: every name this crate records, in one place.
//!
//! Supervisors, pools and nodes record through the [`metrics`] facade
//! (feature `metrics`, on by default). The facade does nothing until the
//! application installs a recorder — an exporter such as
//! `metrics-exporter-prometheus`, or `install_prometheus` with the
//! `prometheus` feature — so a library user who installs none pays a
//! branch on a null handle per call (handles are registered once and
//! cached: no key is built per message or per restart); with the feature
//! off the calls are compiled out. `BENCHMARKS.md` ("Observability") has
//! the measured cost.
//!
//! Install the recorder before starting supervisors, pools and nodes: the
//! busy paths (pool messages, remote frames) register their handles when
//! they start, as every user of the facade does. Timing each pool message
//! reads the clock twice, which a build without a recorder should not pay:
//! it starts with [`enable_timings`], which `install_prometheus` and
//! [`describe_all`] call.
//!
//! # Names
//!
//! Prometheus conventions: the `ractor_otp_` prefix, `_total` on counters,
//! base units (`_seconds`, `_bytes`). Supervisors and pools are named by
//! their path in the supervision tree (`app/storage/db`), the same name
//! their tracing events, [`render_tree`](crate::SupervisorRef::render_tree)
//! and the observer use; peers by their node name.
//!
//! | name | type | labels | what |
//! |------|------|--------|------|
//! | `ractor_otp_supervisor_restarts_total` | counter | `supervisor`, `child`, `reason` | restart attempts (failed starts included), as counted by the restart intensity |
//! | `ractor_otp_supervisor_child_exits_total` | counter | `supervisor`, `child`, `reason` | children that ended, for any reason (not the stops of a group restart) |
//! | `ractor_otp_supervisor_intensity_exceeded_total` | counter | `supervisor`, `child` | a supervisor gave up: one restart too many, `child` the last to fail; it stops its children and fails to its parent |
//! | `ractor_otp_supervisor_escalations_total` | counter | `supervisor`, `child` | a child that is a supervisor (or pool) failed: the escalation this `supervisor` received |
//! | `ractor_otp_supervisor_children_running` | gauge | `supervisor` | children running now |
//! | `ractor_otp_pool_processed_total` | counter | `pool`, `worker` | messages a worker handled successfully |
//! | `ractor_otp_pool_in_flight` | gauge | `pool`, `worker` | messages routed to a worker and not yet finished, sampled as it finishes each |
//! | `ractor_otp_pool_worker_restarts_total` | counter | `pool`, `worker` | worker restarts in place after a failure |
//! | `ractor_otp_pool_dead_letters_total` | counter | `pool`, `reason` | messages the pool could not process (see [`DeadLetterReason`]) |
//! | `ractor_otp_pool_message_duration_seconds` | histogram | `pool` | how long a worker took to handle one routed message (after [`enable_timings`]) |
//! | `ractor_otp_remote_frames_received_total` | counter | `peer` | frames read from a peer |
//! | `ractor_otp_remote_bytes_received_total` | counter | `peer` | frame bytes read from a peer |
//! | `ractor_otp_remote_bytes_sent_total` | counter | `peer` | bytes written to a peer |
//! | `ractor_otp_remote_requests_total` | counter | `peer`, `outcome` | remote calls and lookups, by outcome (`ok`, `timeout`, `refused`, `node_down`, `busy`, `error`) |
//! | `ractor_otp_remote_request_duration_seconds` | histogram | `peer` | time from sending a remote call or lookup to its answer |
//! | `ractor_otp_remote_refusals_total` | counter | `peer`, `refusal` | casts and calls from a peer that this node refused |
//! | `ractor_otp_remote_dead_letters_total` | counter | `peer`, `reason` | casts to a peer that were not delivered |
//! | `ractor_otp_cluster_peer_phi` | gauge | `peer` | the phi-accrual suspicion of a peer, at each heartbeat tick |
//! | `ractor_otp_cluster_peer_rtt_seconds` | gauge | `peer` | the last heartbeat round trip |
//! | `ractor_otp_cluster_peer_status` | gauge | `peer` | `2` up, `1` suspect, `0` down |
//! | `ractor_otp_cluster_members` | gauge | `node` | members this node knows (joined and not left) |
//! | `ractor_otp_cluster_events_total` | counter | `node`, `event` | node events: `up`, `down`, `member_joined`, `member_left`, `name_conflict`, `checkpoint_lost`, `rejected`, `dead_letter` |
//! | `ractor_otp_observer_lagged_events_total` | counter | | events an observer's slow browser missed (dropped, never waited for) |
//!
//! Label values of reasons are short kinds (`failed`, `killed`,
//! `start_failed`, ...), never free text, so the number of series stays
//! bounded.
//!
//! # Examples
//!
//! With the `prometheus` feature, one line serves the metrics for
//! Prometheus to scrape:
//!
//! ```no_run
//! # #[cfg(feature = "prometheus")]
//! # #[tokio::main] async fn main() -> Result<(), ractor_otp::metrics::MetricsError> {
//! ractor_otp::metrics::install_prometheus("127.0.0.1:9000".parse().unwrap())?;
//! // ... start supervisors, pools and nodes; scrape http://127.0.0.1:9000/metrics
//! # Ok(()) }
//! # #[cfg(not(feature = "prometheus"))] fn main() {}
//! ```

use crate::exit::ExitReason;
use crate::pool::DeadLetterReason;

/// Restart attempts per supervisor and child.
pub const SUPERVISOR_RESTARTS: &str = "ractor_otp_supervisor_restarts_total";
/// Children that ended, per supervisor, child and reason kind.
pub const SUPERVISOR_CHILD_EXITS: &str = "ractor_otp_supervisor_child_exits_total";
/// Supervisors that exceeded their restart intensity.
pub const SUPERVISOR_INTENSITY_EXCEEDED: &str = "ractor_otp_supervisor_intensity_exceeded_total";
/// Failures of child supervisors, counted at their parent.
pub const SUPERVISOR_ESCALATIONS: &str = "ractor_otp_supervisor_escalations_total";
/// Children running per supervisor.
pub const SUPERVISOR_CHILDREN_RUNNING: &str = "ractor_otp_supervisor_children_running";
/// Messages a pool worker handled.
pub const POOL_PROCESSED: &str = "ractor_otp_pool_processed_total";
/// Messages in flight at a pool worker.
pub const POOL_IN_FLIGHT: &str = "ractor_otp_pool_in_flight";
/// Pool worker restarts in place.
pub const POOL_WORKER_RESTARTS: &str = "ractor_otp_pool_worker_restarts_total";
/// Pool dead letters by reason kind.
pub const POOL_DEAD_LETTERS: &str = "ractor_otp_pool_dead_letters_total";
/// Time a pool worker took to handle one message.
pub const POOL_MESSAGE_DURATION: &str = "ractor_otp_pool_message_duration_seconds";
/// Frames read from a peer.
pub const REMOTE_FRAMES_RECEIVED: &str = "ractor_otp_remote_frames_received_total";
/// Bytes read from a peer.
pub const REMOTE_BYTES_RECEIVED: &str = "ractor_otp_remote_bytes_received_total";
/// Bytes written to a peer.
pub const REMOTE_BYTES_SENT: &str = "ractor_otp_remote_bytes_sent_total";
/// Remote calls and lookups by outcome.
pub const REMOTE_REQUESTS: &str = "ractor_otp_remote_requests_total";
/// Remote call and lookup latency.
pub const REMOTE_REQUEST_DURATION: &str = "ractor_otp_remote_request_duration_seconds";
/// Casts and calls from a peer that this node refused.
pub const REMOTE_REFUSALS: &str = "ractor_otp_remote_refusals_total";
/// Casts to a peer that were not delivered.
pub const REMOTE_DEAD_LETTERS: &str = "ractor_otp_remote_dead_letters_total";
/// Phi of a peer.
pub const CLUSTER_PEER_PHI: &str = "ractor_otp_cluster_peer_phi";
/// Heartbeat round trip of a peer.
pub const CLUSTER_PEER_RTT: &str = "ractor_otp_cluster_peer_rtt_seconds";
/// Status of a peer: 2 up, 1 suspect, 0 down.
pub const CLUSTER_PEER_STATUS: &str = "ractor_otp_cluster_peer_status";
/// Members a node knows.
pub const CLUSTER_MEMBERS: &str = "ractor_otp_cluster_members";
/// Node events by kind.
pub const CLUSTER_EVENTS: &str = "ractor_otp_cluster_events_total";
/// Events an observer's slow client missed.
pub const OBSERVER_LAGGED_EVENTS: &str = "ractor_otp_observer_lagged_events_total";

/// Every name above with its type and help text, for
/// `describe_*` calls and for the docs test that keeps the table in step.
pub const ALL: &[(&str, Kind, &str)] = &[
    (
        SUPERVISOR_RESTARTS,
        Kind::Counter,
        "restart attempts, failed starts included",
    ),
    (SUPERVISOR_CHILD_EXITS, Kind::Counter, "children that ended"),
    (
        SUPERVISOR_INTENSITY_EXCEEDED,
        Kind::Counter,
        "supervisors that gave up after one restart too many",
    ),
    (
        SUPERVISOR_ESCALATIONS,
        Kind::Counter,
        "failures of child supervisors received by their parent",
    ),
    (
        SUPERVISOR_CHILDREN_RUNNING,
        Kind::Gauge,
        "children running now",
    ),
    (
        POOL_PROCESSED,
        Kind::Counter,
        "messages a pool worker handled",
    ),
    (
        POOL_IN_FLIGHT,
        Kind::Gauge,
        "messages routed to a pool worker and not finished",
    ),
    (
        POOL_WORKER_RESTARTS,
        Kind::Counter,
        "pool worker restarts in place",
    ),
    (
        POOL_DEAD_LETTERS,
        Kind::Counter,
        "messages a pool could not process",
    ),
    (
        POOL_MESSAGE_DURATION,
        Kind::Histogram,
        "time a pool worker took to handle one message",
    ),
    (
        REMOTE_FRAMES_RECEIVED,
        Kind::Counter,
        "frames read from a peer",
    ),
    (
        REMOTE_BYTES_RECEIVED,
        Kind::Counter,
        "frame bytes read from a peer",
    ),
    (REMOTE_BYTES_SENT, Kind::Counter, "bytes written to a peer"),
    (
        REMOTE_REQUESTS,
        Kind::Counter,
        "remote calls and lookups by outcome",
    ),
    (
        REMOTE_REQUEST_DURATION,
        Kind::Histogram,
        "time from sending a remote call or lookup to its answer",
    ),
    (
        REMOTE_REFUSALS,
        Kind::Counter,
        "casts and calls from a peer that this node refused",
    ),
    (
        REMOTE_DEAD_LETTERS,
        Kind::Counter,
        "casts to a peer that were not delivered",
    ),
    (
        CLUSTER_PEER_PHI,
        Kind::Gauge,
        "phi-accrual suspicion of a peer",
    ),
    (
        CLUSTER_PEER_RTT,
        Kind::Gauge,
        "last heartbeat round trip to a peer",
    ),
    (
        CLUSTER_PEER_STATUS,
        Kind::Gauge,
        "peer status: 2 up, 1 suspect, 0 down",
    ),
    (CLUSTER_MEMBERS, Kind::Gauge, "members this node knows"),
    (CLUSTER_EVENTS, Kind::Counter, "node events by kind"),
    (
        OBSERVER_LAGGED_EVENTS,
        Kind::Counter,
        "events an observer's slow client missed",
    ),
];

/// The type of a metric in [`ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down; the last value counts.
    Gauge,
    /// A distribution of observed values.
    Histogram,
}

/// Why `install_prometheus` (feature `prometheus`) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The exporter could not be built or installed: the address is taken,
    /// no tokio runtime is running, or a recorder is already installed.
    #[error("could not install the Prometheus exporter on {addr}: {reason}")]
    Install {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// What went wrong.
        reason: String,
    },
}

/// Installs `metrics-exporter-prometheus` as the process's recorder,
/// serving `GET /metrics` (any path, in fact) on `addr`, and describes every
/// metric of [`ALL`]. Call it once, inside a tokio runtime, before starting
/// supervisors, pools and nodes.
///
/// # Errors
///
/// [`MetricsError::Install`] if the address cannot be bound, there is no
/// tokio runtime, or a recorder is already installed.
#[cfg(feature = "prometheus")]
pub fn install_prometheus(addr: std::net::SocketAddr) -> Result<(), MetricsError> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| MetricsError::Install {
            addr,
            reason: e.to_string(),
        })?;
    describe_all();
    Ok(())
}

/// Whether pool workers time the messages they handle.
#[cfg(feature = "metrics")]
static TIMINGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns on the timing of every pool message
/// (`ractor_otp_pool_message_duration_seconds`), from the next message on.
/// Off by default: it reads the clock twice per message, worth it only when
/// a recorder keeps the result. [`describe_all`] and `install_prometheus`
/// turn it on.
#[cfg(feature = "metrics")]
pub fn enable_timings() {
    TIMINGS.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Gives every metric of [`ALL`] its help text in the installed recorder
/// (exporters show it, as Prometheus's `# HELP` lines), and turns on
/// [`enable_timings`]. `install_prometheus` calls it; call it after
/// installing another recorder.
#[cfg(feature = "metrics")]
pub fn describe_all() {
    enable_timings();
    for &(name, kind, help) in ALL {
        match kind {
            Kind::Counter => ::metrics::describe_counter!(name, help),
            Kind::Gauge => ::metrics::describe_gauge!(name, help),
            Kind::Histogram => ::metrics::describe_histogram!(name, help),
        }
    }
}

// ---------------------------------------------------------------------------
// Label values: short kinds, never free text.

/// The label value of an exit reason.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn exit_kind(reason: &ExitReason) -> &'static str {
    match reason {
        ExitReason::Normal => "normal",
        ExitReason::Shutdown(_) => "shutdown",
        ExitReason::Killed => "killed",
        ExitReason::Failed(_) => "failed",
        ExitReason::Stopped(_) => "stopped",
        ExitReason::StartFailed(_) => "start_failed",
    }
}

/// The label value of a pool dead letter's reason.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn dead_letter_kind(reason: &DeadLetterReason) -> &'static str {
    match reason {
        DeadLetterReason::WorkerFailed(_) => "worker_failed",
        DeadLetterReason::WorkerKilled => "worker_killed",
        DeadLetterReason::WorkerStopped => "worker_stopped",
        DeadLetterReason::MailboxClosed => "mailbox_closed",
        DeadLetterReason::PoolStopped => "pool_stopped",
        DeadLetterReason::NoWorkers => "no_workers",
    }
}

// ---------------------------------------------------------------------------
// Emission: one call per lifecycle point, recording the metric and, with the
// observer, publishing the event its page shows.

#[cfg(feature = "observer")]
use crate::observer::hub::{self, EventKind};

/// The exit kinds, as indexes into the per-child handle arrays.
#[cfg(feature = "metrics")]
const EXIT_KINDS: usize = 6;

#[cfg(feature = "metrics")]
fn exit_index(reason: &ExitReason) -> usize {
    match reason {
        ExitReason::Normal => 0,
        ExitReason::Shutdown(_) => 1,
        ExitReason::Killed => 2,
        ExitReason::Failed(_) => 3,
        ExitReason::Stopped(_) => 4,
        ExitReason::StartFailed(_) => 5,
    }
}

/// The handles of one child, registered the first time each is needed, so
/// that an exit or restart after the first costs a map lookup, not a key
/// built from strings.
#[cfg(feature = "metrics")]
#[derive(Default)]
struct ChildCounters {
    exits: [Option<::metrics::Counter>; EXIT_KINDS],
    restarts: [Option<::metrics::Counter>; EXIT_KINDS],
    escalations: Option<::metrics::Counter>,
}

/// One supervisor's metrics, owned by the supervisor actor: the
/// children-running gauge and each child's counters.
pub(crate) struct SupervisorMetrics {
    /// The supervisor's name (its path in the tree).
    #[cfg_attr(not(any(feature = "metrics", feature = "observer")), allow(dead_code))]
    label: String,
    #[cfg(feature = "metrics")]
    running: ::metrics::Gauge,
    /// Child id → its counters. Invariant: only children the supervisor
    /// has ([`forget`](Self::forget) runs when one is removed), so a
    /// dynamic supervisor's churn does not grow it.
    #[cfg(feature = "metrics")]
    children: std::collections::HashMap<String, ChildCounters>,
}

/// `child`'s counters in `children`, added the first time (the id is copied
/// once).
#[cfg(feature = "metrics")]
fn counters<'a>(
    children: &'a mut std::collections::HashMap<String, ChildCounters>,
    child: &str,
) -> Option<&'a mut ChildCounters> {
    if !children.contains_key(child) {
        children.insert(child.to_owned(), ChildCounters::default());
    }
    children.get_mut(child)
}

/// The counter `slot` holds, registered with `register` the first time.
#[cfg(feature = "metrics")]
fn registered(
    slot: &mut Option<::metrics::Counter>,
    register: impl FnOnce() -> ::metrics::Counter,
) -> &::metrics::Counter {
    slot.get_or_insert_with(register)
}

impl SupervisorMetrics {
    pub(crate) fn new(label: &str) -> Self {
        SupervisorMetrics {
            label: label.to_owned(),
            #[cfg(feature = "metrics")]
            running: ::metrics::gauge!(SUPERVISOR_CHILDREN_RUNNING, "supervisor" => label.to_owned()),
            #[cfg(feature = "metrics")]
            children: std::collections::HashMap::new(),
        }
    }

    /// Children running now.
    #[allow(unused_variables)]
    pub(crate) fn running(&self, running: usize) {
        #[cfg(feature = "metrics")]
        self.running.set(running as f64);
    }

    /// A restart of `child` after `reason` was counted (restart intensity).
    #[allow(unused_variables)]
    pub(crate) fn restarting(&mut self, child: &str, reason: &ExitReason) {
        #[cfg(feature = "metrics")]
        {
            let supervisor = &self.label;
            if let Some(counters) = counters(&mut self.children, child) {
                registered(&mut counters.restarts[exit_index(reason)], || {
                    ::metrics::counter!(SUPERVISOR_RESTARTS, "supervisor" => supervisor.clone(), "child" => child.to_owned(), "reason" => exit_kind(reason))
                })
                .increment(1);
            }
        }
    }

    /// A child ended (not for a group restart); `is_supervisor` when it is
    /// one of ours, whose abnormal exit is an escalation.
    #[allow(unused_variables)]
    pub(crate) fn exited(&mut self, child: &str, reason: &ExitReason, is_supervisor: bool) {
        let escalation = is_supervisor && reason.is_abnormal();
        #[cfg(feature = "metrics")]
        {
            let supervisor = &self.label;
            if let Some(counters) = counters(&mut self.children, child) {
                registered(&mut counters.exits[exit_index(reason)], || {
                    ::metrics::counter!(SUPERVISOR_CHILD_EXITS, "supervisor" => supervisor.clone(), "child" => child.to_owned(), "reason" => exit_kind(reason))
                })
                .increment(1);
                if escalation {
                    registered(&mut counters.escalations, || {
                        ::metrics::counter!(SUPERVISOR_ESCALATIONS, "supervisor" => supervisor.clone(), "child" => child.to_owned())
                    })
                    .increment(1);
                }
            }
        }
        #[cfg(feature = "observer")]
        hub::publish(|| {
            let kind = if escalation {
                EventKind::Escalation
            } else {
                EventKind::Exit
            };
            hub::Event::new(kind, format!("{}/{child}", self.label), reason.to_string())
        });
    }

    /// A child started again (`restarts` so far).
    #[allow(unused_variables)]
    pub(crate) fn restarted(&self, child: &str, restarts: u64) {
        #[cfg(feature = "observer")]
        hub::publish(|| {
            hub::Event::new(
                EventKind::Restart,
                format!("{}/{child}", self.label),
                format!("restart #{restarts}"),
            )
        });
    }

    /// The supervisor gave up: restart intensity exceeded, `child` the last
    /// to fail. Rare: registers its counter each time.
    #[allow(unused_variables)]
    pub(crate) fn intensity_exceeded(&self, child: &str, error: &dyn std::fmt::Display) {
        #[cfg(feature = "metrics")]
        ::metrics::counter!(SUPERVISOR_INTENSITY_EXCEEDED, "supervisor" => self.label.clone(), "child" => child.to_owned())
            .increment(1);
        #[cfg(feature = "observer")]
        hub::publish(|| {
            hub::Event::new(
                EventKind::IntensityExceeded,
                self.label.clone(),
                error.to_string(),
            )
        });
    }

    /// Child `child` was removed: its handles go (the series stay in the
    /// recorder).
    #[allow(unused_variables)]
    pub(crate) fn forget(&mut self, child: &str) {
        #[cfg(feature = "metrics")]
        self.children.remove(child);
    }
}

/// A pool dead letter.
#[allow(unused_variables)]
pub(crate) fn pool_dead_letter(pool: &str, worker: Option<usize>, reason: &DeadLetterReason) {
    #[cfg(feature = "metrics")]
    ::metrics::counter!(POOL_DEAD_LETTERS, "pool" => pool.to_owned(), "reason" => dead_letter_kind(reason))
        .increment(1);
    #[cfg(feature = "observer")]
    hub::publish(|| {
        let path = match worker {
            Some(w) => format!("{pool}/{}", crate::pool::builder::worker_id(w)),
            None => pool.to_string(),
        };
        hub::Event::new(EventKind::DeadLetter, path, reason.to_string())
    });
}

/// The handles of one pool worker incarnation, registered when it starts.
pub(crate) struct WorkerMetrics {
    #[cfg(feature = "metrics")]
    processed: ::metrics::Counter,
    #[cfg(feature = "metrics")]
    in_flight: ::metrics::Gauge,
    #[cfg(feature = "metrics")]
    restarts: ::metrics::Counter,
    #[cfg(feature = "metrics")]
    duration: ::metrics::Histogram,
    #[cfg(feature = "observer")]
    path: String,
}

impl WorkerMetrics {
    #[allow(unused_variables)]
    pub(crate) fn new(pool: &str, worker: usize) -> Self {
        #[cfg(feature = "metrics")]
        let labels = [
            ::metrics::Label::new("pool", pool.to_owned()),
            ::metrics::Label::new("worker", worker.to_string()),
        ];
        WorkerMetrics {
            #[cfg(feature = "metrics")]
            processed: ::metrics::counter!(POOL_PROCESSED, labels.iter()),
            #[cfg(feature = "metrics")]
            in_flight: ::metrics::gauge!(POOL_IN_FLIGHT, labels.iter()),
            #[cfg(feature = "metrics")]
            restarts: ::metrics::counter!(POOL_WORKER_RESTARTS, labels.iter()),
            #[cfg(feature = "metrics")]
            duration: ::metrics::histogram!(POOL_MESSAGE_DURATION, "pool" => pool.to_owned()),
            #[cfg(feature = "observer")]
            path: format!("{pool}/{}", crate::pool::builder::worker_id(worker)),
        }
    }

    /// The clock reading a message's handling starts at; `None` (no clock
    /// read) unless timings are on ([`enable_timings`]).
    pub(crate) fn start(&self) -> Option<std::time::Instant> {
        #[cfg(feature = "metrics")]
        if TIMINGS.load(std::sync::atomic::Ordering::Relaxed) {
            return Some(std::time::Instant::now());
        }
        None
    }

    /// One message handled, started at `started`; `in_flight` still
    /// counted at the worker.
    #[allow(unused_variables)]
    pub(crate) fn handled(&self, started: Option<std::time::Instant>, ok: bool, in_flight: u64) {
        #[cfg(feature = "metrics")]
        {
            if ok {
                self.processed.increment(1);
            }
            if let Some(started) = started {
                self.duration.record(started.elapsed().as_secs_f64());
            }
            self.in_flight.set(in_flight as f64);
        }
    }

    /// The worker restarted in place.
    pub(crate) fn restarted(&self) {
        #[cfg(feature = "metrics")]
        self.restarts.increment(1);
        #[cfg(feature = "observer")]
        hub::publish(|| {
            hub::Event::new(
                EventKind::Restart,
                self.path.clone(),
                "restarted in place".into(),
            )
        });
    }
}

/// The handles of one peer, registered when the node first meets it.
#[cfg(feature = "cluster")]
pub(crate) struct PeerMetrics {
    #[cfg(feature = "metrics")]
    frames_in: ::metrics::Counter,
    #[cfg(feature = "metrics")]
    bytes_in: ::metrics::Counter,
    #[cfg(feature = "metrics")]
    bytes_out: ::metrics::Counter,
    #[cfg(feature = "metrics")]
    phi: ::metrics::Gauge,
    #[cfg(feature = "metrics")]
    rtt: ::metrics::Gauge,
    #[cfg(feature = "metrics")]
    status: ::metrics::Gauge,
    #[cfg(feature = "metrics")]
    duration: ::metrics::Histogram,
    #[cfg(feature = "metrics")]
    peer: String,
}

#[cfg(feature = "cluster")]
impl PeerMetrics {
    #[allow(unused_variables)]
    pub(crate) fn new(peer: &str) -> Self {
        #[cfg(feature = "metrics")]
        let label = [::metrics::Label::new("peer", peer.to_owned())];
        PeerMetrics {
            #[cfg(feature = "metrics")]
            frames_in: ::metrics::counter!(REMOTE_FRAMES_RECEIVED, label.iter()),
            #[cfg(feature = "metrics")]
            bytes_in: ::metrics::counter!(REMOTE_BYTES_RECEIVED, label.iter()),
            #[cfg(feature = "metrics")]
            bytes_out: ::metrics::counter!(REMOTE_BYTES_SENT, label.iter()),
            #[cfg(feature = "metrics")]
            phi: ::metrics::gauge!(CLUSTER_PEER_PHI, label.iter()),
            #[cfg(feature = "metrics")]
            rtt: ::metrics::gauge!(CLUSTER_PEER_RTT, label.iter()),
            #[cfg(feature = "metrics")]
            status: ::metrics::gauge!(CLUSTER_PEER_STATUS, label.iter()),
            #[cfg(feature = "metrics")]
            duration: ::metrics::histogram!(REMOTE_REQUEST_DURATION, label.iter()),
            #[cfg(feature = "metrics")]
            peer: peer.to_owned(),
        }
    }

    /// One frame of `bytes` read.
    #[allow(unused_variables)]
    pub(crate) fn frame_in(&self, bytes: usize) {
        #[cfg(feature = "metrics")]
        {
            self.frames_in.increment(1);
            self.bytes_in.increment(bytes as u64);
        }
    }

    /// `bytes` written.
    #[allow(unused_variables)]
    pub(crate) fn bytes_out(&self, bytes: usize) {
        #[cfg(feature = "metrics")]
        self.bytes_out.increment(bytes as u64);
    }

    /// A heartbeat tick judged the peer: phi, and whether it is suspect.
    #[allow(unused_variables)]
    pub(crate) fn phi(&self, phi: f64, suspect: bool) {
        #[cfg(feature = "metrics")]
        {
            self.phi.set(phi);
            self.status.set(if suspect { 1.0 } else { 2.0 });
        }
    }

    /// The session ended.
    pub(crate) fn down(&self) {
        #[cfg(feature = "metrics")]
        self.status.set(0.0);
    }

    /// A heartbeat round trip.
    #[allow(unused_variables)]
    pub(crate) fn rtt(&self, rtt: std::time::Duration) {
        #[cfg(feature = "metrics")]
        self.rtt.set(rtt.as_secs_f64());
    }

    /// A call or lookup ended after `took`.
    #[allow(unused_variables)]
    pub(crate) fn request<T>(
        &self,
        took: std::time::Duration,
        outcome: &Result<T, crate::cluster::ClusterError>,
    ) {
        #[cfg(feature = "metrics")]
        {
            use crate::cluster::ClusterError as E;
            let outcome = match outcome {
                Ok(_) => "ok",
                Err(E::Timeout { .. }) => "timeout",
                Err(E::Refused { .. }) => "refused",
                Err(E::NodeDown { .. } | E::NotConnected { .. }) => "node_down",
                Err(E::Busy { .. }) => "busy",
                Err(_) => "error",
            };
            ::metrics::counter!(REMOTE_REQUESTS, "peer" => self.peer.clone(), "outcome" => outcome)
                .increment(1);
            self.duration.record(took.as_secs_f64());
        }
    }

    /// This node refused a cast or call from the peer.
    #[allow(unused_variables)]
    pub(crate) fn refused(&self, refusal: &crate::cluster::Refusal) {
        #[cfg(feature = "metrics")]
        {
            use crate::cluster::Refusal as R;
            let kind = match refusal {
                R::NotExported => "not_exported",
                R::TagMismatch { .. } => "tag_mismatch",
                R::ActorStopped => "actor_stopped",
                R::NotRunning => "not_running",
                R::Decode(_) => "decode",
                R::ReplyDropped => "reply_dropped",
                R::ReplyEncode(_) => "reply_encode",
                R::NotSaved(_) => "not_saved",
                R::SaveUncertain(_) => "save_uncertain",
                R::EntityUnavailable(_) => "entity_unavailable",
            };
            ::metrics::counter!(REMOTE_REFUSALS, "peer" => self.peer.clone(), "refusal" => kind)
                .increment(1);
        }
    }
}

/// A node event, counted by kind; membership size follows joins and leaves.
#[cfg(feature = "cluster")]
#[allow(unused_variables)]
pub(crate) fn node_event(node: &str, event: &crate::cluster::NodeEvent) {
    #[cfg(feature = "metrics")]
    {
        use crate::cluster::NodeEvent as E;
        let kind = match event {
            E::Up { .. } => "up",
            E::Down { .. } => "down",
            E::MemberJoined { .. } => "member_joined",
            E::MemberLeft { .. } => "member_left",
            E::NameConflict { .. } => "name_conflict",
            E::Rejected { .. } => "rejected",
            E::DeadLetter { .. } => "dead_letter",
            E::CheckpointLost { .. } => "checkpoint_lost",
        };
        ::metrics::counter!(CLUSTER_EVENTS, "node" => node.to_owned(), "event" => kind)
            .increment(1);
        match event {
            E::MemberJoined { .. } => {
                ::metrics::gauge!(CLUSTER_MEMBERS, "node" => node.to_owned()).increment(1.0)
            }
            E::MemberLeft { .. } => {
                ::metrics::gauge!(CLUSTER_MEMBERS, "node" => node.to_owned()).decrement(1.0)
            }
            _ => {}
        }
    }
}

/// A cast to `peer` that was not delivered.
#[cfg(feature = "cluster")]
#[allow(unused_variables)]
pub(crate) fn remote_dead_letter(peer: &str, reason: &crate::cluster::UndeliveredReason) {
    #[cfg(feature = "metrics")]
    {
        use crate::cluster::UndeliveredReason as U;
        let kind = match reason {
            U::Refused(_) => "refused",
            U::SessionClosed(_) => "session_closed",
            U::EntityUnavailable(_) => "entity_unavailable",
        };
        ::metrics::counter!(REMOTE_DEAD_LETTERS, "peer" => peer.to_owned(), "reason" => kind)
            .increment(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_in_the_docs_table_and_follows_the_conventions() {
        let docs = include_str!("metrics.rs");
        for &(name, kind, _) in ALL {
            assert!(
                docs.contains(&format!("| `{name}` |")),
                "{name} is missing from the table in the module docs"
            );
            assert!(name.starts_with("ractor_otp_"), "{name}: prefix");
            assert_eq!(
                name.ends_with("_total"),
                kind == Kind::Counter,
                "{name}: counters and only counters end in _total"
            );
        }
        let rows = docs
            .lines()
            .filter(|l| l.starts_with("//! | `ractor_otp_"))
            .count();
        assert_eq!(rows, ALL.len(), "one table row per name in ALL");
    }
}
