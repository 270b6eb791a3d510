//! `RemoteReply::send` never fails the replier: it says what became of the
//! answer ([`Replied`]) — sent, caller gone, or not encodable — and the
//! exported actor keeps serving whatever happened to earlier callers.
#![cfg(feature = "cluster")]

mod cluster_support;

use std::time::Duration;

use cluster_support::{expect_down, expect_up, fast_config, start_node};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::cluster::{
    ClusterError, Node, Refusal, RemoteRef, RemoteReply, Replied, WireError,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Serialize, Deserialize, ractor_otp::RemoteMessage)]
enum Desk {
    /// Keeps the port, to answer later with `AnswerAll`.
    Hold(RemoteReply<String>),
    /// Answers every held port with the text.
    AnswerAll(String),
    /// Answers at once with `n` bytes.
    Big(usize, RemoteReply<Vec<u8>>),
}

/// What the desk tells the test: a port is held, or an answer's outcome.
#[derive(Debug, PartialEq)]
enum Report {
    Held,
    Answered(Replied),
}

/// Holds reply ports and answers them on demand, reporting each outcome.
/// Unsupervised: if an answer could stop it, the tests would see it.
struct DeskActor;

impl Actor for DeskActor {
    type Msg = Desk;
    type State = (mpsc::UnboundedSender<Report>, Vec<RemoteReply<String>>);
    type Arguments = mpsc::UnboundedSender<Report>;

    async fn pre_start(
        &self,
        _: ActorRef<Desk>,
        reports: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok((reports, Vec::new()))
    }

    async fn handle(
        &self,
        _: ActorRef<Desk>,
        msg: Desk,
        (reports, held): &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            Desk::Hold(reply) => {
                held.push(reply);
                let _ = reports.send(Report::Held);
            }
            Desk::AnswerAll(text) => {
                for reply in held.drain(..) {
                    let _ = reports.send(Report::Answered(reply.send(text.clone())));
                }
            }
            Desk::Big(n, reply) => {
                let _ = reports.send(Report::Answered(reply.send(vec![7; n])));
            }
        }
        Ok(())
    }
}

/// Exports a desk on `node`; returns it and its reports.
async fn export_desk(node: &Node) -> (ActorRef<Desk>, mpsc::UnboundedReceiver<Report>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (desk, _) = Actor::spawn(None, DeskActor, tx)
        .await
        .expect("spawn the desk");
    node.export("desk", desk.clone()).expect("export the desk");
    (desk, rx)
}

async fn next(reports: &mut mpsc::UnboundedReceiver<Report>) -> Report {
    timeout(WAIT, reports.recv())
        .await
        .expect("the desk reports within the bound")
        .expect("the desk is alive")
}

/// Calls `Hold` on the desk in a task: the call waits until the desk
/// answers (or the session ends).
fn hold(desk: &RemoteRef<Desk>) -> JoinHandle<Result<String, ClusterError>> {
    let desk = desk.clone();
    tokio::spawn(async move { desk.call(Desk::Hold, WAIT).await })
}

/// The answer to a call made with [`hold`].
async fn answer_to(call: JoinHandle<Result<String, ClusterError>>) -> Result<String, ClusterError> {
    timeout(WAIT, call)
        .await
        .expect("a call is bounded by its timeout")
        .expect("the calling task does not panic")
}

/// `b` connects to `a` and looks up its desk.
async fn desk_of(a: &Node, b: &Node) -> RemoteRef<Desk> {
    let mut events = b.subscribe();
    timeout(WAIT, b.connect(a.local_addr()))
        .await
        .expect("connect is bounded")
        .expect("b connects to a");
    expect_up(&mut events, a.name(), WAIT).await;
    b.lookup::<Desk>(a.name(), "desk")
        .await
        .expect("a exports the desk")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_to_a_waiting_caller_is_sent() {
    let a = start_node("a").await;
    let (_desk, mut reports) = export_desk(&a).await;
    let b = start_node("b").await;
    let desk = desk_of(&a, &b).await;

    let call = hold(&desk);
    assert_eq!(next(&mut reports).await, Report::Held);
    desk.cast(Desk::AnswerAll("here".into()))
        .expect("b is connected");
    assert_eq!(next(&mut reports).await, Report::Answered(Replied::Sent));
    let answer = answer_to(call).await;
    assert_eq!(answer, Ok("here".to_string()));
    assert!(Replied::Sent.is_sent());
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answering_a_caller_whose_session_ended_is_caller_gone_and_the_actor_serves_on() {
    let a = start_node("a").await;
    let (desk_ref, mut reports) = export_desk(&a).await;
    let mut a_events = a.subscribe();
    let b = start_node("b").await;
    let from_b = desk_of(&a, &b).await;
    expect_up(&mut a_events, "b", WAIT).await;

    // b's call is held by the desk; then b goes away.
    let call = hold(&from_b);
    assert_eq!(next(&mut reports).await, Report::Held);
    b.shutdown().await;
    let failed = answer_to(call).await;
    assert!(
        matches!(failed, Err(ClusterError::NodeDown { .. })),
        "the caller's own call fails with NodeDown: {failed:?}"
    );
    expect_down(&mut a_events, "b", WAIT).await;

    // The desk answers anyway: the outcome says the caller is gone, and
    // the desk is not stopped by it.
    desk_ref
        .cast(Desk::AnswerAll("too late".into()))
        .expect("the desk is alive");
    let outcome = next(&mut reports).await;
    assert_eq!(outcome, Report::Answered(Replied::CallerGone));
    if let Report::Answered(replied) = &outcome {
        assert!(!replied.is_sent());
        assert_eq!(replied.to_string(), "not sent: the caller has gone away");
    }

    // A new caller is served by the same actor.
    let c = start_node("c").await;
    let from_c = desk_of(&a, &c).await;
    let call = hold(&from_c);
    assert_eq!(next(&mut reports).await, Report::Held);
    from_c
        .cast(Desk::AnswerAll("still here".into()))
        .expect("c is connected");
    assert_eq!(next(&mut reports).await, Report::Answered(Replied::Sent));
    let answer = answer_to(call).await;
    assert_eq!(answer, Ok("still here".to_string()));
    c.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_above_the_callers_frame_limit_is_unencodable_and_refused() {
    let a = start_node("a").await;
    let (_desk, mut reports) = export_desk(&a).await;
    let b = Node::start(fast_config("b").max_frame_size(4096))
        .await
        .expect("start b");
    let desk = desk_of(&a, &b).await;

    let got = desk.call(|r| Desk::Big(10_000, r), WAIT).await;
    assert!(
        matches!(
            &got,
            Err(ClusterError::Refused {
                refusal: Refusal::ReplyEncode(_),
                ..
            })
        ),
        "the caller hears why instead of timing out: {got:?}"
    );
    match next(&mut reports).await {
        Report::Answered(Replied::Unencodable(WireError::TooLarge { max, .. })) => {
            assert_eq!(max, 4096, "the caller's limit")
        }
        other => {
            panic!("an answer above the caller's limit is Unencodable(TooLarge), got {other:?}")
        }
    }
    // The desk answers the next, smaller call.
    assert_eq!(
        desk.call(|r| Desk::Big(100, r), WAIT).await,
        Ok(vec![7; 100])
    );
    b.shutdown().await;
    a.shutdown().await;
}
