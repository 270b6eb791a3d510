//! The observer's collector: one task that moves lifecycle events from the
//! process-wide hub and the node's events into the observer's recent list
//! and live streams, and samples the peers once a second.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::api::Shared;
use super::hub::{Event, EventKind, Subscription};

/// How often peers are sampled for their history.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Runs until `stop` turns true (or its sender is dropped).
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut hub: Subscription,
    mut stop: watch::Receiver<bool>,
) {
    #[cfg(feature = "cluster")]
    let mut node_events = shared.node.as_ref().map(|n| n.subscribe());
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
            received = hub.rx.recv() => match received {
                Ok(event) => shared.record(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // Only if this task itself was starved; say so once.
                    shared.record(Arc::new(Event::new(
                        EventKind::Node,
                        "observer".into(),
                        format!("{missed} events were published faster than the observer could keep them"),
                    )));
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            event = next_node_event(
                #[cfg(feature = "cluster")]
                &mut node_events,
            ) => match event {
                Some(event) => shared.record(Arc::new(event)),
                None => {
                    #[cfg(feature = "cluster")]
                    {
                        node_events = None;
                    }
                }
            },
            _ = tick.tick() => sample_peers(&shared),
        }
    }
}

/// The next node event as an observer event; pending forever without a
/// node (and `None` once its subscription ends).
async fn next_node_event(
    #[cfg(feature = "cluster")] events: &mut Option<crate::cluster::NodeEvents>,
) -> Option<Event> {
    #[cfg(feature = "cluster")]
    if let Some(events) = events.as_mut() {
        return events.recv().await.map(|e| node_event(&e));
    }
    std::future::pending().await
}

#[cfg(feature = "cluster")]
fn node_event(event: &crate::cluster::NodeEvent) -> Event {
    use crate::cluster::NodeEvent as E;
    let (kind, path, detail) = match event {
        E::Up { peer } => (EventKind::Up, peer.clone(), "session up".to_string()),
        E::Down { peer, reason } => (EventKind::Down, peer.clone(), reason.to_string()),
        E::MemberJoined { member } => (EventKind::Node, member.clone(), "joined".into()),
        E::MemberLeft { member } => (EventKind::Node, member.clone(), "left".into()),
        E::NameConflict {
            name,
            winner,
            loser,
        } => (
            EventKind::Node,
            name.clone(),
            format!("name conflict: {winner} keeps it, {loser} gave it up"),
        ),
        E::CheckpointLost { ty, key, last_seq } => (
            EventKind::Node,
            format!("{ty}/{key}"),
            format!("checkpoint lost: the last saved was #{last_seq}"),
        ),
        E::Rejected {
            addr,
            reason,
            count,
        } => (
            EventKind::Node,
            addr.to_string(),
            format!("{count} connection(s) rejected: {reason}"),
        ),
        E::DeadLetter {
            peer,
            actor,
            tag,
            reason,
            count,
        } => (
            EventKind::DeadLetter,
            peer.clone(),
            format!("{count} cast(s) to {actor} ({tag}) not delivered: {reason}"),
        ),
    };
    Event::new(kind, path, detail)
}

fn sample_peers(shared: &Shared) {
    #[cfg(feature = "cluster")]
    if let Some(node) = &shared.node {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        for peer in node.peers() {
            shared.sample(
                &peer.name,
                super::api::PeerSample {
                    at_ms,
                    phi: peer.phi,
                    rtt_ms: peer.rtt.map(|d| d.as_secs_f64() * 1000.0),
                },
            );
        }
    }
    #[cfg(not(feature = "cluster"))]
    let _ = shared;
}
