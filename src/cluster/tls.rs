//! TLS for the cluster transport (feature `tls`): encryption and mutual
//! certificate authentication under the cookie handshake.
//!
//! Without TLS the cookie authenticates peers but does not encrypt: anyone
//! on the network path reads the frames and can inject some. With
//! `NodeConfig::tls` every connection is TLS 1.3
//! (rustls, ring crypto) before the first frame, and then the cookie
//! handshake runs inside it as usual:
//!
//! | step | what is checked |
//! |---|---|
//! | TCP connect | the first byte the acceptor reads must open a TLS record (`0x16`); a plain node's frames open with a 4-byte length prefix (`0x00` for a handshake frame), so either side can tell a peer of the other kind and refuse it with a clear reason |
//! | TLS, acceptor | the dialer must present a certificate chaining to one of this node's trusted roots, valid now, for client authentication (rustls `WebPkiClientVerifier`) |
//! | TLS, dialer | the acceptor's certificate must chain to one of this node's trusted roots, valid now, for server authentication; its names are **not** compared with the address (see below) |
//! | cookie | the HMAC challenge–response of [`super::handshake`], which also tells each side the other's node name |
//!
//! **Names.** Node names are not DNS names, and nodes dial each other by IP
//! address, so a certificate is not required to name the host or the node:
//! the trusted roots decide who may join at all, and the cookie handshake
//! inside the encrypted channel authenticates the node's name, as without
//! TLS. Give the cluster roots of its own (a private CA that signs only the
//! cluster's node certificates), never a public web PKI's roots: anyone
//! holding a certificate from the roots and the cookie is a member.
//!
//! Both nodes need `tls`: a TLS node refuses a plain peer and a plain node
//! refuses a TLS peer, each with a [`HandshakeError::Tls`] saying so. Sessions
//! are not resumed: every connection verifies both certificates afresh.
//!
//! ```
//! # #[cfg(feature = "tls")]
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ractor_otp::cluster::{Node, NodeConfig, TlsConfig};
//! # use rcgen::{CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose as Usage, KeyPair};
//! # let mut ca = CertificateParams::new(Vec::<String>::new())?;
//! # ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
//! # let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
//! # let issue = |name: &str| -> Result<(String, String), rcgen::Error> {
//! #     let mut params = CertificateParams::new(vec![name.to_string()])?;
//! #     params.extended_key_usages = vec![Usage::ServerAuth, Usage::ClientAuth];
//! #     let key = KeyPair::generate()?;
//! #     Ok((params.signed_by(&key, &ca)?.pem(), key.serialize_pem()))
//! # };
//! # let ((a_cert, a_key), (b_cert, b_key), ca_pem) = (issue("a")?, issue("b")?, ca.pem());
//! // Each node: its certificate (then any intermediates), its private key,
//! // and the roots that sign the cluster's nodes, as PEM (read from files
//! // in practice; `TlsConfig::from_der` takes DER).
//! let a_tls = TlsConfig::from_pem(a_cert, a_key, &ca_pem)?;
//! let b_tls = TlsConfig::from_pem(b_cert, b_key, &ca_pem)?;
//!
//! let a = Node::start(NodeConfig::new("a").cookie("secret").tls(a_tls)).await?;
//! let b = Node::start(NodeConfig::new("b").cookie("secret").tls(b_tls)).await?;
//! let peer = b.connect(a.local_addr()).await?; // TLS, then the cookie
//! assert_eq!(peer.name, "a");
//!
//! // A node without TLS is refused, and told why.
//! let plain = Node::start(NodeConfig::new("plain").cookie("secret")).await?;
//! let err = plain.connect(a.local_addr()).await.unwrap_err();
//! assert!(err.to_string().contains("enable NodeConfig::tls on both nodes"), "{err}");
//! # for n in [a, b, plain] { n.shutdown().await; }
//! # Ok(()) }
//! # #[cfg(not(feature = "tls"))] fn main() {}
//! ```

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::config::NodeConfig;
use super::handshake::{Conn, HandshakeError};
use super::wire::{self, Frame};
#[cfg(feature = "tls")]
use tokio_rustls::rustls;

#[cfg(feature = "tls")]
pub use certs::{TlsConfig, TlsError};

/// The content type of a TLS handshake record: the first byte of a
/// ClientHello. A plain handshake frame starts with a length prefix below
/// 4 KiB, so its first byte is 0.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// At most this much of a refused peer's first flight is read and dropped
/// before closing, so that the close is an orderly one after our reason,
/// not a reset that could overtake it.
const DRAIN_ON_REFUSAL: u64 = 16 * 1024;

/// How long a refused peer is given to read our reason and close.
const LINGER_ON_REFUSAL: std::time::Duration = std::time::Duration::from_secs(1);

/// What a plain dialer hears from a TLS node.
#[cfg(feature = "tls")]
const PLAIN_TO_TLS_REPLY: &str = "this node requires TLS; enable NodeConfig::tls on both nodes";

/// What a TLS node reports when a plain peer dials it.
#[cfg(feature = "tls")]
const PLAIN_TO_TLS: &str = "the peer did not start TLS; enable NodeConfig::tls on both nodes";

/// What a plain node reports when a TLS peer dials it.
const TLS_TO_PLAIN: &str =
    "the peer speaks TLS; enable NodeConfig::tls on both nodes, or on neither";

/// What a plain node tells a TLS dialer (which cannot read it: it sees
/// bytes that are not TLS, see [`explain`]).
const TLS_TO_PLAIN_REPLY: &str = "this node does not use TLS; enable NodeConfig::tls on both nodes";

/// Wraps a connection this node dialed: in TLS if the node is configured
/// for it, verifying the acceptor's certificate.
#[cfg_attr(not(feature = "tls"), allow(unused_variables))]
pub(crate) async fn dial(
    config: &NodeConfig,
    stream: TcpStream,
    addr: std::net::SocketAddr,
) -> Result<Conn, HandshakeError> {
    #[cfg(feature = "tls")]
    if let Some(tls) = &config.tls {
        return tls.connect(stream, addr).await;
    }
    Ok(Conn::new(stream))
}

/// Wraps a connection this node accepted: refuses a peer that speaks TLS
/// when this node does not, or the other way round, then runs the TLS
/// handshake if this node is configured for it.
#[cfg_attr(not(feature = "tls"), allow(unused_variables))]
pub(crate) async fn accept(config: &NodeConfig, stream: TcpStream) -> Result<Conn, HandshakeError> {
    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(0) => return Err(HandshakeError::Closed),
        Ok(_) => {}
        Err(e) => return Err(HandshakeError::Io(e.to_string())),
    }
    let speaks_tls = first[0] == TLS_HANDSHAKE_RECORD;
    #[cfg(feature = "tls")]
    if let Some(tls) = &config.tls {
        if !speaks_tls {
            refuse(stream, PLAIN_TO_TLS_REPLY).await;
            return Err(HandshakeError::Tls(PLAIN_TO_TLS.into()));
        }
        return tls.accept(stream).await;
    }
    if speaks_tls {
        refuse(stream, TLS_TO_PLAIN_REPLY).await;
        return Err(HandshakeError::Tls(TLS_TO_PLAIN.into()));
    }
    Ok(Conn::new(stream))
}

/// Tells a peer of the other kind why it is refused (a plain `Rejected`
/// frame: a plain peer reads it as such, a TLS peer sees bytes that are not
/// TLS), then closes as [`linger`] does.
async fn refuse(mut stream: TcpStream, reason: &str) {
    let frame = Frame::Rejected {
        reason: reason.to_string(),
    };
    if let Ok(bytes) = wire::encode_plain(&frame, wire::MIN_MAX_FRAME_SIZE) {
        let _ = tokio::time::timeout(LINGER_ON_REFUSAL, stream.write_all(&bytes)).await;
    }
    linger(stream).await;
}

/// Closes a refused connection after what we wrote (a reason, a TLS
/// alert), reading and dropping what the peer still sends until it closes,
/// within bounds: closing with unread bytes would send a reset, which can
/// destroy our reason before the peer reads it.
async fn linger(mut stream: TcpStream) {
    let _ = tokio::time::timeout(LINGER_ON_REFUSAL, async {
        let _ = stream.shutdown().await;
        let mut sink = tokio::io::sink();
        let _ = tokio::io::copy(&mut (&mut stream).take(DRAIN_ON_REFUSAL), &mut sink).await;
    })
    .await;
}

/// Explains a failed read or write on a TLS stream, or `None` for errors
/// that are not TLS's.
pub(crate) fn explain(e: &std::io::Error) -> Option<String> {
    #[cfg(feature = "tls")]
    {
        let tls = e.get_ref()?.downcast_ref::<rustls::Error>()?;
        Some(certs::describe(tls))
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = e;
        None
    }
}

#[cfg(feature = "tls")]
mod certs {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::WebPkiSupportedAlgorithms;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
    use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
    use rustls::{AlertDescription, ClientConfig, RootCertStore, ServerConfig, SignatureScheme};
    use tokio::net::TcpStream;
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::{linger, rustls, Conn, HandshakeError};
    use crate::cluster::handshake::ReadError;

    /// A node's TLS identity and trust: its certificate chain and private
    /// key, and the roots its peers' certificates must chain to. Give it to
    /// [`NodeConfig::tls`](crate::cluster::NodeConfig::tls); see the
    /// [`tls` module](crate::cluster::tls) for what is checked.
    ///
    /// A node both dials and accepts, so its certificate serves as a TLS
    /// client and server certificate: if it has an extended key usage
    /// extension, that must allow both `serverAuth` and `clientAuth`.
    /// Only TLS 1.3 is spoken.
    ///
    /// Built once (parsing and checking everything); cheap to clone.
    #[derive(Clone)]
    pub struct TlsConfig {
        client: Arc<ClientConfig>,
        server: Arc<ServerConfig>,
    }

    impl std::fmt::Debug for TlsConfig {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TlsConfig").finish_non_exhaustive()
        }
    }

    /// Why a [`TlsConfig`] could not be built. Each says what to give
    /// instead.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum TlsError {
        /// A PEM text could not be read.
        #[error("the {what} PEM text cannot be read: {reason}")]
        Pem {
            /// Which input: `certificate chain`, `private key` or `roots`.
            what: &'static str,
            /// What is wrong with it.
            reason: String,
        },
        /// The certificate chain is empty.
        #[error("the certificate chain is empty; give this node's certificate first, then its intermediates")]
        NoCertificate,
        /// No trusted root was given.
        #[error("no trusted roots; give the certificate of the CA that signs the cluster's node certificates")]
        NoRoots,
        /// The private key is not PKCS#8, PKCS#1 or SEC1 DER.
        #[error("the private key is not PKCS#8, PKCS#1 (RSA) or SEC1 (EC) DER: {0}")]
        BadKey(String),
        /// A trusted root is not a usable CA certificate.
        #[error("trusted root #{index} is not a usable certificate: {reason}")]
        BadRoot {
            /// Its position in the roots given, from 0.
            index: usize,
            /// What is wrong with it.
            reason: String,
        },
        /// rustls refused the certificate, key or roots (a key that does not
        /// match the certificate, an unsupported algorithm, ...).
        #[error("the certificate, key or roots cannot be used: {0}")]
        Unusable(String),
    }

    impl TlsConfig {
        /// Builds the configuration from PEM text: `cert_chain_pem` holds
        /// this node's certificate first, then any intermediates;
        /// `key_pem` its private key (PKCS#8, PKCS#1 or SEC1); `roots_pem`
        /// the certificates of the CAs that sign the cluster's nodes.
        ///
        /// # Errors
        ///
        /// A [`TlsError`] if a text is not PEM, holds no certificate or key,
        /// or rustls cannot use what it holds (say, a key that does not
        /// match the certificate).
        pub fn from_pem(
            cert_chain_pem: impl AsRef<[u8]>,
            key_pem: impl AsRef<[u8]>,
            roots_pem: impl AsRef<[u8]>,
        ) -> Result<Self, TlsError> {
            let pem = |what: &'static str| {
                move |e: rustls::pki_types::pem::Error| TlsError::Pem {
                    what,
                    reason: e.to_string(),
                }
            };
            let chain = CertificateDer::pem_slice_iter(cert_chain_pem.as_ref())
                .collect::<Result<Vec<_>, _>>()
                .map_err(pem("certificate chain"))?;
            let key =
                PrivateKeyDer::from_pem_slice(key_pem.as_ref()).map_err(pem("private key"))?;
            let roots = CertificateDer::pem_slice_iter(roots_pem.as_ref())
                .collect::<Result<Vec<_>, _>>()
                .map_err(pem("roots"))?;
            Self::build(chain, key, roots)
        }

        /// Builds the configuration from DER: `cert_chain` holds this
        /// node's certificate first, then any intermediates; `key` its
        /// private key (PKCS#8, PKCS#1 or SEC1, told apart by their
        /// structure); `roots` the certificates of the CAs that sign the
        /// cluster's nodes.
        ///
        /// # Errors
        ///
        /// A [`TlsError`] if the chain or the roots are empty, the key is
        /// none of the formats, or rustls cannot use them.
        pub fn from_der(
            cert_chain: impl IntoIterator<Item = Vec<u8>>,
            key: Vec<u8>,
            roots: impl IntoIterator<Item = Vec<u8>>,
        ) -> Result<Self, TlsError> {
            let chain = cert_chain.into_iter().map(CertificateDer::from).collect();
            let key = PrivateKeyDer::try_from(key).map_err(|e| TlsError::BadKey(e.to_string()))?;
            let roots = roots.into_iter().map(CertificateDer::from).collect();
            Self::build(chain, key, roots)
        }

        fn build(
            chain: Vec<CertificateDer<'static>>,
            key: PrivateKeyDer<'static>,
            roots: Vec<CertificateDer<'static>>,
        ) -> Result<Self, TlsError> {
            if chain.is_empty() {
                return Err(TlsError::NoCertificate);
            }
            if roots.is_empty() {
                return Err(TlsError::NoRoots);
            }
            let mut store = RootCertStore::empty();
            for (index, root) in roots.into_iter().enumerate() {
                store.add(root).map_err(|e| TlsError::BadRoot {
                    index,
                    reason: e.to_string(),
                })?;
            }
            let roots = Arc::new(store);
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let unusable = |e: rustls::Error| TlsError::Unusable(e.to_string());
            let versions = [&rustls::version::TLS13];

            let clients =
                WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                    .build()
                    .map_err(|e| TlsError::Unusable(e.to_string()))?;
            let mut server = ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&versions)
                .map_err(unusable)?
                .with_client_cert_verifier(clients)
                .with_single_cert(chain.clone(), key.clone_key())
                .map_err(unusable)?;
            // Every connection verifies both certificates afresh.
            server.send_tls13_tickets = 0;
            server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});

            let servers = Arc::new(ChainVerifier {
                roots,
                algorithms: provider.signature_verification_algorithms,
            });
            let mut client = ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&versions)
                .map_err(unusable)?
                .dangerous()
                .with_custom_certificate_verifier(servers)
                .with_client_auth_cert(chain, key)
                .map_err(unusable)?;
            client.resumption = rustls::client::Resumption::disabled();
            Ok(TlsConfig {
                client: Arc::new(client),
                server: Arc::new(server),
            })
        }

        /// Runs the dialer's TLS handshake over a connected socket.
        pub(crate) async fn connect(
            &self,
            stream: TcpStream,
            addr: std::net::SocketAddr,
        ) -> Result<Conn, HandshakeError> {
            // An IP address: rustls sends no SNI, and `ChainVerifier`
            // ignores names.
            let name = ServerName::IpAddress(addr.ip().into());
            let tls = TlsConnector::from(self.client.clone())
                .connect(name, stream)
                .await
                .map_err(|e| failed(&e))?;
            let (r, w) = tokio::io::split(tls);
            Ok(Conn::from_halves(Box::new(r), Box::new(w)))
        }

        /// Runs the acceptor's TLS handshake over an accepted socket.
        pub(crate) async fn accept(&self, stream: TcpStream) -> Result<Conn, HandshakeError> {
            let accepted = TlsAcceptor::from(self.server.clone())
                .accept(stream)
                .into_fallible()
                .await;
            let tls = match accepted {
                Ok(tls) => tls,
                Err((e, stream)) => {
                    // The alert is written: let the dialer read it.
                    linger(stream).await;
                    return Err(failed(&e));
                }
            };
            let (r, w) = tokio::io::split(tls);
            Ok(Conn::from_halves(Box::new(r), Box::new(w)))
        }
    }

    /// Verifies the acceptor's certificate chain against the trusted roots
    /// (as rustls's `WebPkiServerVerifier` does, with server-auth usage and
    /// validity dates), without comparing its names with the address we
    /// dialed: node names are not DNS names and nodes dial by IP; the
    /// cookie handshake authenticates the node's name.
    #[derive(Debug)]
    struct ChainVerifier {
        roots: Arc<RootCertStore>,
        algorithms: WebPkiSupportedAlgorithms,
    }

    impl ServerCertVerifier for ChainVerifier {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            _name: &ServerName<'_>,
            _ocsp_response: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            let cert = ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                &self.roots,
                intermediates,
                now,
                self.algorithms.all,
            )?;
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    }

    /// What a failed TLS handshake means (a peer closing mid-way is
    /// `Closed`, as in the cookie handshake).
    fn failed(e: &std::io::Error) -> HandshakeError {
        match ReadError::from_io(e) {
            ReadError::Io(_) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                HandshakeError::Closed
            }
            other => other.into(),
        }
    }

    /// Says what a TLS failure means for a cluster, and what to do.
    pub(super) fn describe(e: &rustls::Error) -> String {
        use rustls::{CertificateError, Error, InvalidMessage};
        match e {
            // The peer answered with bytes that are not TLS records: a
            // plain node's `Rejected` frame.
            Error::InvalidMessage(
                InvalidMessage::InvalidContentType | InvalidMessage::UnknownProtocolVersion,
            ) => "the peer answered without TLS; enable NodeConfig::tls on both nodes, or on neither".into(),
            Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            ) => format!("the peer's certificate is not signed by a root this node trusts ({e}); sign every node's certificate with a root in every node's TlsConfig"),
            Error::InvalidCertificate(
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. },
            ) => format!("the peer's certificate is refused ({e}); a node's certificate must allow both serverAuth and clientAuth"),
            Error::InvalidCertificate(_) => format!("the peer's certificate is refused ({e}); give it a valid certificate signed by a root this node trusts"),
            Error::NoCertificatesPresented => "the peer presented no certificate; every node needs NodeConfig::tls with its own certificate".into(),
            Error::AlertReceived(
                AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::CertificateRequired
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::AccessDenied,
            ) => format!("the peer refused our certificate ({e}); sign it with a root the peer trusts"),
            _ => e.to_string(),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_plain_answer_is_named_as_such() {
            let text = describe(&rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType,
            ));
            assert!(text.contains("answered without TLS"), "{text}");
        }
    }
}
