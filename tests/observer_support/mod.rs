//! Shared support for the observer tests: a small demo tree (with a nested
//! supervisor and a pool), a worker that crashes on demand, and a tiny
//! HTTP/1.1 client for the JSON API (no client library needed).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::prelude::*;
#[cfg(feature = "observer")]
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every wait in these tests gives up after this long.
pub const LIMIT: Duration = Duration::from_secs(10);

/// A worker that fails with the text it is sent, and counts the rest.
#[derive(Clone)]
pub struct Crashy;

impl Actor for Crashy {
    type Msg = String;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<String>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<String>,
        msg: String,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        match msg.strip_prefix("crash:") {
            Some(reason) => Err(reason.to_string().into()),
            None => Ok(()),
        }
    }
}

/// A pool worker that does nothing with its number.
#[derive(Clone)]
pub struct Sink;

impl Actor for Sink {
    type Msg = u64;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<u64>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// `app` (one for one): `cache`, `storage` (rest for one: `db`, `writer`),
/// and the pool `hashers` (3 workers).
pub async fn demo_tree() -> (SupervisorRef, PoolRef<u64>) {
    let storage = SupervisorSpec::new(Strategy::RestForOne)
        .intensity(1000, Duration::from_secs(1))
        .child(ChildSpec::new("db", Crashy, || ()))
        .child(ChildSpec::new("writer", Crashy, || ()));
    let (pool_spec, pool) =
        ChildSpec::pool("hashers", Pool::builder(Sink, |_| ()).size(3)).expect("valid pool");
    let spec = SupervisorSpec::new(Strategy::OneForOne)
        .intensity(1000, Duration::from_secs(1))
        .child(ChildSpec::new("cache", Crashy, || ()))
        .child(ChildSpec::supervisor("storage", storage))
        .child(pool_spec);
    let (sup, _exit) = Supervisor::spawn(Some(unique("app")), spec)
        .await
        .expect("the demo tree starts");
    (sup, pool)
}

/// `base` with a number no other test in this process uses (registered
/// names are process-wide).
pub fn unique(base: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{base}{}", N.fetch_add(1, Ordering::Relaxed))
}

/// One HTTP/1.1 request; the status and the body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut conn = tokio::time::timeout(LIMIT, TcpStream::connect(addr))
        .await
        .expect("connect within the limit")
        .expect("connect to the observer");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    conn.write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut raw = Vec::new();
    tokio::time::timeout(LIMIT, conn.read_to_end(&mut raw))
        .await
        .expect("the answer within the limit")
        .expect("read the answer");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        status,
        if chunked {
            dechunk(body)
        } else {
            body.to_string()
        },
    )
}

/// The body of a `Transfer-Encoding: chunked` answer, put back together.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// `GET path` as JSON, expecting `200`.
#[cfg(feature = "observer")]
pub async fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = http(addr, "GET", path, &[]).await;
    assert_eq!(status, 200, "GET {path} answers 200, got {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
}

/// Polls `GET path` until `check` holds, within [`LIMIT`].
#[cfg(feature = "observer")]
pub async fn wait_json(
    addr: SocketAddr,
    path: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let value = get_json(addr, path).await;
        if check(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not seen within {LIMIT:?}; last answer {value}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
