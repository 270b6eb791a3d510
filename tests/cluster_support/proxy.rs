//! A fault-injecting TCP proxy to put between two nodes.
//!
//! The dialing node connects to [`Proxy::addr`] instead of the peer; the
//! proxy dials the peer and copies bytes both ways. While the nodes talk,
//! the test changes what the network does, for the connections already
//! open and the ones still to come:
//!
//! | fault | call |
//! |---|---|
//! | silent partition (bytes vanish, nothing closes) | `set(Mode::Drop)` |
//! | one-way partition | `set_dir(Direction::FromTarget, Mode::Drop)` |
//! | latency | `set(Mode::Delay(d))` |
//! | stalled reader (back-pressure, nothing lost) | `set(Mode::Stall)` |
//! | slow link | `set(Mode::Throttle(bytes_per_second))` |
//! | heal | `set(Mode::Pass)` |
//! | cut the connections | `sever()` |
//! | peer unreachable (connect, then closed at once) | `refuse(true)` |
//! | bad bytes after the handshake | `inject(direction, bytes).await` |
//!
//! ```ignore
//! let proxy = Proxy::start(b.local_addr()).await;
//! a.connect(proxy.addr()).await?;
//! proxy.set(Mode::Drop); // heartbeats stop getting through
//! ```
//!
//! A closed connection is passed on once the bytes queued before it are
//! written, except while its direction drops bytes: in a silent partition
//! the close is lost too, and the other side only learns of it when the
//! direction passes again. Everything the proxy spawns ends when it is
//! dropped.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Which way bytes travel through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the dialing side to the target.
    ToTarget = 0,
    /// From the target back to the dialing side.
    FromTarget = 1,
}

/// What the proxy does with the bytes it reads in one direction. A mode
/// applies to each chunk when it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward at once.
    Pass,
    /// Forward each chunk this long after it was read (order is kept).
    Delay(Duration),
    /// Discard, keeping the connections open: a silent partition.
    Drop,
    /// Stop reading: bytes wait in the sockets' buffers and the sender's
    /// writes block (a stalled or frozen reader, with back-pressure).
    Stall,
    /// Read at most this many bytes per second (a slow link).
    Throttle(u64),
}

/// Bytes to write into a connection, and who to tell once they are.
type Injected = (Vec<u8>, oneshot::Sender<()>);

/// One live proxied connection, as the proxy's handle sees it.
struct Conn {
    id: u64,
    /// Cancelled to close both sockets at once.
    stop: CancellationToken,
    /// Raw bytes to write, per direction.
    inject: [mpsc::UnboundedSender<Injected>; 2],
}

/// State shared by the handle, the accept loop and the connections.
struct Shared {
    target: SocketAddr,
    /// Where connections to the reverse listener go (see
    /// [`Proxy::reverse_addr`]); closed at once until it is set.
    reverse_target: Mutex<Option<SocketAddr>>,
    modes: [watch::Sender<Mode>; 2],
    refuse: AtomicBool,
    conns: Mutex<Vec<Conn>>,
    next_id: AtomicU64,
    /// When each connection attempt was accepted (refused ones included).
    accepted: Mutex<Vec<Instant>>,
    /// The same, on the reverse listener.
    reverse_accepted: Mutex<Vec<Instant>>,
    passed: [AtomicU64; 2],
    dropped: [AtomicU64; 2],
}

/// A TCP proxy on `127.0.0.1:0` in front of one target address. Dropping
/// it closes every connection and ends all of its tasks.
pub struct Proxy {
    addr: SocketAddr,
    reverse_addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: tokio_util::sync::DropGuard,
}

impl Proxy {
    /// Starts a proxy forwarding to `target`, passing bytes both ways.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy on loopback");
        let addr = listener.local_addr().expect("the proxy's address");
        let reverse = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy's reverse listener on loopback");
        let reverse_addr = reverse.local_addr().expect("the reverse address");
        let shared = Arc::new(Shared {
            target,
            reverse_target: Mutex::new(None),
            modes: [watch::channel(Mode::Pass).0, watch::channel(Mode::Pass).0],
            refuse: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            accepted: Mutex::new(Vec::new()),
            reverse_accepted: Mutex::new(Vec::new()),
            passed: Default::default(),
            dropped: Default::default(),
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, shared.clone(), stop.clone(), false));
        tokio::spawn(accept_loop(reverse, shared.clone(), stop.clone(), true));
        Proxy {
            addr,
            reverse_addr,
            shared,
            _stop: stop.drop_guard(),
        }
    }

    /// Where to dial to reach the target through the proxy.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address through which the *target* reaches the dialing node:
    /// give it to the dialing node as its advertised address
    /// (`NodeConfig::advertise`) and set where it leads with
    /// [`set_reverse_target`](Self::set_reverse_target), so that
    /// reconnections from the target's side cross the same faults. On
    /// those connections the directions are named as on the forward ones:
    /// `ToTarget` is still from the dialing node to the target.
    pub fn reverse_addr(&self) -> SocketAddr {
        self.reverse_addr
    }

    /// Where connections to [`reverse_addr`](Self::reverse_addr) lead.
    pub fn set_reverse_target(&self, addr: SocketAddr) {
        *lock(&self.shared.reverse_target) = Some(addr);
    }

    /// Sets the mode of both directions.
    pub fn set(&self, mode: Mode) {
        self.set_dir(Direction::ToTarget, mode);
        self.set_dir(Direction::FromTarget, mode);
    }

    /// Sets the mode of one direction.
    pub fn set_dir(&self, dir: Direction, mode: Mode) {
        self.shared.modes[dir as usize].send_replace(mode);
    }

    /// Writes `bytes` into every live connection in direction `dir`, between
    /// two chunks of the regular traffic and whatever the mode, and waits
    /// until they are written. Returns how many connections took them.
    pub async fn inject(&self, dir: Direction, bytes: &[u8]) -> usize {
        let acks: Vec<oneshot::Receiver<()>> = lock(&self.shared.conns)
            .iter()
            .filter_map(|c| {
                let (tx, rx) = oneshot::channel();
                c.inject[dir as usize].send((bytes.to_vec(), tx)).ok()?;
                Some(rx)
            })
            .collect();
        let mut written = 0;
        for ack in acks {
            written += usize::from(ack.await.is_ok());
        }
        written
    }

    /// Closes every live connection (both sockets, without flushing what is
    /// queued). Returns how many there were.
    pub fn sever(&self) -> usize {
        let conns = std::mem::take(&mut *lock(&self.shared.conns));
        for c in &conns {
            c.stop.cancel();
        }
        conns.len()
    }

    /// While `true`, new connections are accepted and closed at once,
    /// without dialing the target.
    pub fn refuse(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::SeqCst);
    }

    /// How many connections are open through the proxy.
    pub fn live(&self) -> usize {
        lock(&self.shared.conns).len()
    }

    /// When each connection attempt was accepted, refused ones included.
    pub fn attempts(&self) -> Vec<Instant> {
        lock(&self.shared.accepted).clone()
    }

    /// When each connection attempt to the reverse listener was accepted,
    /// refused ones included.
    pub fn reverse_attempts(&self) -> Vec<Instant> {
        lock(&self.shared.reverse_accepted).clone()
    }

    /// Bytes forwarded in direction `dir` (injected ones included).
    pub fn passed(&self, dir: Direction) -> u64 {
        self.shared.passed[dir as usize].load(Ordering::SeqCst)
    }

    /// Bytes discarded in direction `dir`.
    pub fn dropped(&self, dir: Direction) -> u64 {
        self.shared.dropped[dir as usize].load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    reverse: bool,
) {
    loop {
        let client = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => continue,
            },
        };
        if reverse {
            lock(&shared.reverse_accepted).push(Instant::now());
        } else {
            lock(&shared.accepted).push(Instant::now());
        }
        if shared.refuse.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        tokio::spawn(serve(client, shared.clone(), stop.child_token(), reverse));
    }
}

/// Dials the target for one accepted client and pumps both ways until
/// either side closes, the connection is severed or the proxy dropped.
async fn serve(client: TcpStream, shared: Arc<Shared>, stop: CancellationToken, reverse: bool) {
    let target = if reverse {
        match *lock(&shared.reverse_target) {
            Some(t) => t,
            None => return,
        }
    } else {
        shared.target
    };
    // On a reverse connection the client is the target's side.
    let (up, down) = if reverse {
        (Direction::FromTarget, Direction::ToTarget)
    } else {
        (Direction::ToTarget, Direction::FromTarget)
    };
    let server = tokio::select! {
        _ = stop.cancelled() => return,
        dialed = TcpStream::connect(target) => match dialed {
            Ok(s) => s,
            Err(_) => return,
        },
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
    let (to_tx, to_rx) = mpsc::unbounded_channel();
    let (from_tx, from_rx) = mpsc::unbounded_channel();
    lock(&shared.conns).push(Conn {
        id,
        stop: stop.clone(),
        inject: if reverse {
            [from_tx, to_tx]
        } else {
            [to_tx, from_tx]
        },
    });
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    tokio::join!(
        pump(up, client_r, server_w, to_rx, &shared, &stop),
        pump(down, server_r, client_w, from_rx, &shared, &stop),
    );
    lock(&shared.conns).retain(|c| c.id != id);
}

/// A chunk waiting to be written: when, what, and who to tell.
type Queued = (Instant, Vec<u8>, Option<oneshot::Sender<()>>);

/// Copies one direction, applying its mode to each chunk read. Ends (and
/// ends the other direction with it) when the source closes and the queue
/// is flushed, a write fails, or `stop` is cancelled.
async fn pump(
    dir: Direction,
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut inject: mpsc::UnboundedReceiver<Injected>,
    shared: &Shared,
    stop: &CancellationToken,
) {
    let d = dir as usize;
    let mut mode = shared.modes[d].subscribe();
    let mut queue: VecDeque<Queued> = VecDeque::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut eof = false;
    // When a throttled direction may read again.
    let mut read_at = Instant::now();
    loop {
        // A close read while dropping is held back until the partition heals.
        if eof && queue.is_empty() && *mode.borrow_and_update() != Mode::Drop {
            break;
        }
        let due = queue.front().map(|q| q.0);
        let current = *mode.borrow_and_update();
        let reading = !eof && current != Mode::Stall && read_at <= Instant::now();
        // A throttled read takes at most a twentieth of a second's bytes.
        let take = match current {
            Mode::Throttle(rate) => (rate as usize / 20).clamp(1, buf.len()),
            _ => buf.len(),
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            changed = mode.changed() => if changed.is_err() {
                return;
            },
            _ = tokio::time::sleep_until(read_at), if !eof && read_at > Instant::now() => {}
            read = from.read(&mut buf[..take]), if reading => match read {
                Ok(0) | Err(_) => eof = true,
                Ok(n) => match *mode.borrow() {
                    Mode::Drop => {
                        shared.dropped[d].fetch_add(n as u64, Ordering::SeqCst);
                    }
                    Mode::Pass | Mode::Stall => queue.push_back((Instant::now(), buf[..n].to_vec(), None)),
                    Mode::Throttle(rate) => {
                        read_at = Instant::now() + Duration::from_secs_f64(n as f64 / rate.max(1) as f64);
                        queue.push_back((Instant::now(), buf[..n].to_vec(), None));
                    }
                    Mode::Delay(by) => queue.push_back((Instant::now() + by, buf[..n].to_vec(), None)),
                },
            },
            Some((bytes, ack)) = inject.recv() => queue.push_back((Instant::now(), bytes, Some(ack))),
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                let Some((_, bytes, ack)) = queue.pop_front() else { continue };
                let written = tokio::select! {
                    _ = stop.cancelled() => return,
                    w = to.write_all(&bytes) => w,
                };
                if written.is_err() {
                    break;
                }
                shared.passed[d].fetch_add(bytes.len() as u64, Ordering::SeqCst);
                if let Some(ack) = ack {
                    let _ = ack.send(());
                }
            }
        }
    }
    let _ = to.shutdown().await;
    stop.cancel();
}
