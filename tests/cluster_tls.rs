//! TLS between nodes (feature `tls`): two TLS nodes talk; a certificate
//! from another root is refused in both directions; a TLS node and a plain
//! node refuse each other, each saying why; bad input over TLS is refused
//! like bad input over plain TCP, and the node goes on serving.
//!
//! Certificates are made at run time with `rcgen`: a cluster CA, node
//! certificates it signs, and a second CA that nobody trusts.
//!
//! Run with `cargo test --features tls --test cluster_tls`.
#![cfg(feature = "tls")]

mod cluster_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cluster_support::{expect_down, expect_up, export_probe, fast_config, Probe};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::cluster::{
    ClusterError, HandshakeError, Node, NodeConfig, NodeEvent, NodeEvents, PeerStatus, RemoteReply,
    TlsConfig, TlsError,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// Bound on every wait for a connection, an answer or an event.
const WAIT: Duration = Duration::from_secs(5);

/// A message far larger than a TLS record (16 KiB): answered with its
/// length and a checksum.
#[derive(Serialize, Deserialize, ractor_otp::RemoteMessage)]
struct Blob(Vec<u8>, RemoteReply<(usize, u64)>);

/// What the blob actor answers for `bytes`.
fn sum(bytes: &[u8]) -> (usize, u64) {
    (bytes.len(), bytes.iter().map(|&b| u64::from(b)).sum())
}

/// Answers every [`Blob`].
struct BlobActor;

impl Actor for BlobActor {
    type Msg = Blob;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Blob>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Blob>,
        msg: Blob,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let Blob(bytes, reply) = msg;
        reply.send(sum(&bytes));
        Ok(())
    }
}

/// A certificate authority that signs node certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A node certificate and its key, as PEM.
struct NodeCert {
    cert_pem: String,
    key_pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("self-signed CA"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A certificate for `node`, for both client and server use; it names
    /// 127.0.0.1 too, so that a stock rustls client (the raw tests) accepts
    /// it.
    fn issue(&self, node: &str) -> NodeCert {
        self.issue_for(
            node,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    /// A certificate for `node` with these extended key usages.
    fn issue_for(&self, node: &str, usages: Vec<ExtendedKeyUsagePurpose>) -> NodeCert {
        let mut params = CertificateParams::new(vec![node.to_string(), "127.0.0.1".to_string()])
            .expect("node params");
        params.extended_key_usages = usages;
        let key = KeyPair::generate().expect("node key");
        let cert = params.signed_by(&key, &self.issuer).expect("node cert");
        NodeCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A TLS config for `node`, signed by this CA, trusting `roots`.
    fn tls(&self, node: &str, roots: &[&Ca]) -> TlsConfig {
        let cert = self.issue(node);
        let roots: String = roots.iter().map(|ca| ca.pem()).collect();
        TlsConfig::from_pem(cert.cert_pem, cert.key_pem, roots).expect("a valid TLS config")
    }
}

async fn start(config: NodeConfig) -> Node {
    Node::start(config).await.expect("start a node on loopback")
}

/// A TLS node signed by and trusting `ca`.
async fn tls_node(name: &str, ca: &Ca) -> Node {
    start(fast_config(name).tls(ca.tls(name, &[ca]))).await
}

/// The next `Rejected` event's reason; panics after [`WAIT`].
async fn next_rejected(events: &mut NodeEvents) -> String {
    let wait = async {
        loop {
            match events.recv().await {
                Some(NodeEvent::Rejected { reason, .. }) => return reason,
                Some(_) => {}
                None => panic!("the node stopped"),
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .expect("a Rejected event within the wait")
}

/// Connects `from` to `to` and returns the handshake error.
async fn refused(from: &Node, to: &Node) -> HandshakeError {
    let err = tokio::time::timeout(WAIT, from.connect(to.local_addr()))
        .await
        .expect("the connection ends within the wait")
        .expect_err("the connection is refused");
    match err {
        ClusterError::Handshake { addr, reason } => {
            assert_eq!(addr, to.local_addr());
            reason
        }
        other => panic!("expected a handshake error, got {other:?}"),
    }
}

/// `node` still accepts a good TLS peer and answers a call over it.
async fn still_serves(node: &Node, ca: &Ca) {
    let _probe = export_probe(node, "still-serves").await;
    let good = tls_node("good", ca).await;
    tokio::time::timeout(WAIT, good.connect(node.local_addr()))
        .await
        .expect("connect within the wait")
        .expect("a good TLS peer still gets in");
    let remote = good
        .lookup::<Probe>(node.name(), "still-serves")
        .await
        .expect("lookup over TLS");
    let n = remote
        .call(|r| Probe::Echo(7, r), WAIT)
        .await
        .expect("a call over TLS");
    assert_eq!(n, 7);
    good.shutdown().await;
}

fn assert_tls(reason: &HandshakeError, says: &str) {
    match reason {
        HandshakeError::Tls(text) => assert!(text.contains(says), "{text:?} says {says:?}"),
        other => panic!("expected a TLS reason saying {says:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tls_nodes_connect_cast_and_call() {
    let ca = Ca::new("cluster CA");
    let a = tls_node("a", &ca).await;
    let _probe = export_probe(&a, "probe").await;
    let b = tls_node("b", &ca).await;
    let mut a_events = a.subscribe();
    let peer = b.connect(a.local_addr()).await.expect("TLS connect");
    assert_eq!(peer.name, "a");
    assert_eq!(peer.status, PeerStatus::Up);
    let up = tokio::time::timeout(WAIT, a_events.recv())
        .await
        .expect("an event within the wait");
    assert_eq!(up, Some(NodeEvent::Up { peer: "b".into() }));

    let remote = b.lookup::<Probe>("a", "probe").await.expect("lookup");
    for n in 0..1_000 {
        remote.cast(Probe::Record(n)).expect("cast");
    }
    let seen = remote
        .call(Probe::Recorded, WAIT)
        .await
        .expect("call over TLS");
    assert_eq!(
        seen,
        (0..1_000).collect::<Vec<_>>(),
        "casts arrive once each, in order"
    );
    let echo = remote
        .call(|r| Probe::Echo(42, r), WAIT)
        .await
        .expect("echo");
    assert_eq!(echo, 42);

    // One frame of 1 MiB spans many TLS records.
    let (blob, _) = Actor::spawn(None, BlobActor, ()).await.expect("blob actor");
    a.export("blob", blob.clone()).expect("export");
    let remote = b.lookup::<Blob>("a", "blob").await.expect("lookup");
    let bytes: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let expected = sum(&bytes);
    let got = remote
        .call(|r| Blob(bytes, r), WAIT)
        .await
        .expect("a 1 MiB call over TLS");
    assert_eq!(got, expected);
    blob.stop(None);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_session_comes_back_after_the_peer_restarts() {
    let ca = Ca::new("cluster CA");
    let a = tls_node("a", &ca).await;
    let addr = a.local_addr();
    let b = tls_node("b", &ca).await;
    let mut events = b.subscribe();
    b.connect(addr).await.expect("TLS connect");
    expect_up(&mut events, "a", WAIT).await;
    a.shutdown().await;
    expect_down(&mut events, "a", WAIT).await;
    // `a` again, same address, a fresh certificate from the same CA: `b`
    // reconnects on its own, through TLS.
    let a = start(fast_config("a").listen(addr).tls(ca.tls("a", &[&ca]))).await;
    let _probe = export_probe(&a, "probe").await;
    expect_up(&mut events, "a", WAIT).await;
    let remote = b.lookup::<Probe>("a", "probe").await.expect("lookup");
    assert_eq!(remote.call(|r| Probe::Echo(5, r), WAIT).await, Ok(5));
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_root_is_refused_by_the_acceptor() {
    let ca = Ca::new("cluster CA");
    let other = Ca::new("another CA");
    let a = tls_node("a", &ca).await;
    let mut events = a.subscribe();
    // Mallory trusts the cluster's CA (so a's certificate passes), but her
    // own certificate comes from another root.
    let mallory = start(fast_config("mallory").tls(other.tls("mallory", &[&ca]))).await;
    let reason = refused(&mallory, &a).await;
    assert_tls(&reason, "the peer refused our certificate");
    let seen = next_rejected(&mut events).await;
    assert!(
        seen.contains("not signed by a root this node trusts"),
        "the acceptor says why: {seen}"
    );
    mallory.shutdown().await;
    still_serves(&a, &ca).await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_root_is_refused_by_the_dialer() {
    let ca = Ca::new("cluster CA");
    let other = Ca::new("another CA");
    // Mallory listens with a certificate from another root, and would
    // accept the cluster's nodes.
    let mallory = start(fast_config("mallory").tls(other.tls("mallory", &[&ca]))).await;
    let mut events = mallory.subscribe();
    let a = tls_node("a", &ca).await;
    let reason = refused(&a, &mallory).await;
    assert_tls(&reason, "not signed by a root this node trusts");
    let seen = next_rejected(&mut events).await;
    assert!(
        seen.contains("the peer refused our certificate"),
        "mallory hears the refusal: {seen}"
    );
    assert!(a.peers().iter().all(|p| p.status != PeerStatus::Up));
    mallory.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_only_for_servers_cannot_dial() {
    let ca = Ca::new("cluster CA");
    let a = tls_node("a", &ca).await;
    let mut events = a.subscribe();
    let cert = ca.issue_for("server-only", vec![ExtendedKeyUsagePurpose::ServerAuth]);
    let tls = TlsConfig::from_pem(cert.cert_pem, cert.key_pem, ca.pem()).expect("TLS config");
    let server_only = start(fast_config("server-only").tls(tls)).await;
    let reason = refused(&server_only, &a).await;
    assert_tls(&reason, "the peer refused our certificate");
    let seen = next_rejected(&mut events).await;
    assert!(
        seen.contains("must allow both serverAuth and clientAuth"),
        "the acceptor says why: {seen}"
    );
    server_only.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_node_is_refused_by_a_tls_node_and_both_say_why() {
    let ca = Ca::new("cluster CA");
    let a = tls_node("a", &ca).await;
    let mut events = a.subscribe();
    let plain = start(fast_config("plain")).await;
    match refused(&plain, &a).await {
        HandshakeError::Rejected(text) => assert!(
            text.contains("requires TLS; enable NodeConfig::tls on both nodes"),
            "the plain node is told: {text}"
        ),
        other => panic!("expected the TLS node's refusal, got {other:?}"),
    }
    let seen = next_rejected(&mut events).await;
    assert!(
        seen.contains("the peer did not start TLS; enable NodeConfig::tls on both nodes"),
        "{seen}"
    );
    plain.shutdown().await;
    still_serves(&a, &ca).await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_node_is_refused_by_a_plain_node_and_both_say_why() {
    let ca = Ca::new("cluster CA");
    let plain = start(fast_config("plain")).await;
    let _probe = export_probe(&plain, "probe").await;
    let mut events = plain.subscribe();
    let a = tls_node("a", &ca).await;
    let reason = refused(&a, &plain).await;
    assert_tls(&reason, "the peer answered without TLS");
    let seen = next_rejected(&mut events).await;
    assert!(seen.contains("the peer speaks TLS"), "{seen}");
    // The plain node still serves plain peers.
    let other = start(fast_config("other")).await;
    other
        .connect(plain.local_addr())
        .await
        .expect("a plain peer");
    let remote = other
        .lookup::<Probe>("plain", "probe")
        .await
        .expect("lookup");
    assert_eq!(remote.call(|r| Probe::Echo(3, r), WAIT).await, Ok(3));
    a.shutdown().await;
    other.shutdown().await;
    plain.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cookie_inside_tls_fails_the_handshake_on_both_sides() {
    let ca = Ca::new("cluster CA");
    let a = tls_node("a", &ca).await;
    let mut events = a.subscribe();
    // A valid certificate, the wrong cookie.
    let intruder = start(
        fast_config("intruder")
            .cookie("not the cookie")
            .tls(ca.tls("intruder", &[&ca])),
    )
    .await;
    let reason = refused(&intruder, &a).await;
    assert!(
        matches!(
            reason,
            HandshakeError::BadProof | HandshakeError::Rejected(_)
        ),
        "{reason:?}"
    );
    let seen = next_rejected(&mut events).await;
    assert!(seen.contains("authentication failed"), "{seen}");
    intruder.shutdown().await;
    still_serves(&a, &ca).await;
    a.shutdown().await;
}

/// Sends `bytes` on a raw TCP connection to `addr`, then reads until the
/// node closes it (bounded); returns what came back.
async fn raw_tcp(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut raw = TcpStream::connect(addr).await.expect("raw connect");
    raw.write_all(bytes).await.expect("raw write");
    let mut back = Vec::new();
    let _ = tokio::time::timeout(WAIT, raw.read_to_end(&mut back))
        .await
        .expect("the node closes the connection within the wait");
    back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_the_tcp_connect_is_refused_and_the_node_still_serves() {
    let ca = Ca::new("cluster CA");
    let a = tls_node("a", &ca).await;
    let mut events = a.subscribe();
    // HTTP to the port: not TLS at all.
    raw_tcp(a.local_addr(), b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let seen = next_rejected(&mut events).await;
    assert!(seen.contains("did not start TLS"), "{seen}");
    // A TLS handshake record type, then junk.
    let mut junk = vec![0x16, 0x03, 0x01, 0x00, 0x20];
    junk.extend((0u8..32).map(|i| i.wrapping_mul(97)));
    raw_tcp(a.local_addr(), &junk).await;
    let seen = next_rejected(&mut events).await;
    assert!(seen.contains("TLS"), "{seen}");
    // Nothing, then close.
    raw_tcp(a.local_addr(), b"").await;
    still_serves(&a, &ca).await;
    a.shutdown().await;
}

/// A stock rustls client holding a certificate from `ca` (or none),
/// trusting `ca`.
fn raw_tls_client(ca: &Ca, with_cert: bool) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.issuer.der().to_vec()))
        .expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = if with_cert {
        let cert = ca.issue("raw");
        let chain = vec![CertificateDer::from(
            rustls::pki_types::pem::PemObject::from_pem_slice(cert.cert_pem.as_bytes())
                .map(|c: CertificateDer<'static>| c.to_vec())
                .expect("cert"),
        )];
        let key: PrivateKeyDer<'static> =
            rustls::pki_types::pem::PemObject::from_pem_slice(cert.key_pem.as_bytes())
                .expect("key");
        builder
            .with_client_auth_cert(chain, key)
            .expect("client cert")
    } else {
        builder.with_no_client_auth()
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A frame: its 4-byte big-endian length, then `body`.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_inside_tls_is_refused_and_the_node_still_serves() {
    let ca = Ca::new("cluster CA");
    let a = tls_node("a", &ca).await;
    let mut events = a.subscribe();
    let connector = raw_tls_client(&ca, true);
    let ip = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let cases: [Vec<u8>; 3] = [
        // HTTP: "GET " is a length far above the handshake frame limit.
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        // A plausible length, then bytes that are no frame.
        frame(&[1, 238, 0, 0, 0, 0, 9, 9, 9]),
        // An empty frame.
        frame(&[]),
    ];
    for bytes in cases {
        let tcp = TcpStream::connect(a.local_addr())
            .await
            .expect("raw connect");
        let mut tls = tokio::time::timeout(WAIT, connector.connect(ip.clone(), tcp))
            .await
            .expect("TLS within the wait")
            .expect("the raw client's certificate is accepted");
        tls.write_all(&bytes).await.expect("write inside TLS");
        let mut back = Vec::new();
        let _ = tokio::time::timeout(WAIT, tls.read_to_end(&mut back))
            .await
            .expect("the node closes the connection within the wait");
        let seen = next_rejected(&mut events).await;
        assert!(!seen.contains("TLS"), "a frame error, not TLS's: {seen}");
    }
    // A TLS client with no certificate is refused by TLS itself.
    let tcp = TcpStream::connect(a.local_addr())
        .await
        .expect("raw connect");
    let anonymous = raw_tls_client(&ca, false);
    if let Ok(Ok(mut tls)) = tokio::time::timeout(WAIT, anonymous.connect(ip.clone(), tcp)).await {
        // TLS 1.3: the client learns of the refusal on its first read.
        let mut back = Vec::new();
        let read = tokio::time::timeout(WAIT, tls.read_to_end(&mut back))
            .await
            .expect("the node closes the connection within the wait");
        assert!(read.is_err(), "an anonymous client gets no data: {back:?}");
    }
    let seen = next_rejected(&mut events).await;
    assert!(seen.contains("presented no certificate"), "{seen}");
    still_serves(&a, &ca).await;
    a.shutdown().await;
}

#[test]
fn a_tls_config_says_what_is_wrong_with_its_inputs() {
    let ca = Ca::new("cluster CA");
    let cert = ca.issue("n");
    assert!(matches!(
        TlsConfig::from_pem(&cert.cert_pem, "", ca.pem()),
        Err(TlsError::Pem {
            what: "private key",
            ..
        })
    ));
    assert_eq!(
        TlsConfig::from_pem("", &cert.key_pem, ca.pem()).unwrap_err(),
        TlsError::NoCertificate
    );
    assert_eq!(
        TlsConfig::from_pem(&cert.cert_pem, &cert.key_pem, "").unwrap_err(),
        TlsError::NoRoots
    );
    let other = ca.issue("m");
    let err = TlsConfig::from_pem(&cert.cert_pem, &other.key_pem, ca.pem()).unwrap_err();
    assert!(matches!(err, TlsError::Unusable(_)), "{err:?}");
    assert!(TlsConfig::from_pem(&cert.cert_pem, &cert.key_pem, ca.pem()).is_ok());
    // DER works as well as PEM.
    let der = |pem: &str| {
        rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
            .map(|c: CertificateDer<'static>| c.to_vec())
            .expect("DER")
    };
    let key: PrivateKeyDer<'static> =
        rustls::pki_types::pem::PemObject::from_pem_slice(cert.key_pem.as_bytes()).expect("key");
    assert!(TlsConfig::from_der(
        [der(&cert.cert_pem)],
        key.secret_der().to_vec(),
        [ca.issuer.der().to_vec()]
    )
    .is_ok());
    assert!(format!(
        "{:?}",
        fast_config("n")
            .tls(TlsConfig::from_pem(cert.cert_pem, cert.key_pem, ca.pem()).expect("tls"))
    )
    .contains("tls: true"));
}
