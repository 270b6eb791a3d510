//! Two nodes talking over TLS, and a plain node that is turned away.
//!
//! ```text
//! cargo run --features tls --example cluster_tls
//! ```
//!
//! makes a throwaway cluster CA and a certificate for each node (with
//! `rcgen`), starts nodes `a` and `b` with `NodeConfig::tls`, calls an
//! actor on `a` from `b` over the encrypted, mutually authenticated
//! session, then shows a node without TLS being refused, with the reason
//! each side gives.
//!
//! With `--certs DIR` the certificates come from files instead, as they
//! would in production: `DIR/ca.pem` (the roots), `DIR/a.pem` and
//! `DIR/a.key`, `DIR/b.pem` and `DIR/b.key`. `--write-certs DIR` writes the
//! generated ones there first, so that the two runs can be compared:
//!
//! ```text
//! cargo run --features tls --example cluster_tls -- --write-certs /tmp/certs
//! cargo run --features tls --example cluster_tls -- --certs /tmp/certs
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use ractor_otp::cluster::{ClusterError, Node, NodeConfig, RemoteReply, TlsConfig};
use serde::{Deserialize, Serialize};

/// A demo value: pick your own long random secret outside demos.
const COOKIE: &str = "ractor-otp-tls-demo-cookie";

const USAGE: &str = "usage: cluster_tls [--certs DIR | --write-certs DIR]
  --certs DIR        read ca.pem, a.pem, a.key, b.pem, b.key from DIR
  --write-certs DIR  generate them, write them to DIR, and use them";

/// Asks the greeter to greet someone.
#[derive(Serialize, Deserialize, ractor_otp::RemoteMessage)]
struct Greet {
    who: String,
    reply: RemoteReply<String>,
}

struct Greeter;

impl Actor for Greeter {
    type Msg = Greet;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Greet>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Greet>,
        msg: Greet,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        msg.reply.send(format!("hello {}, over TLS", msg.who));
        Ok(())
    }
}

/// The PEM files of a two-node cluster.
const FILES: [&str; 5] = ["ca.pem", "a.pem", "a.key", "b.pem", "b.key"];

/// Generates a CA and certificates for nodes `a` and `b`, as PEM texts in
/// the order of [`FILES`].
fn generate() -> Result<Vec<String>, rcgen::Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "demo cluster CA");
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    let mut pems = vec![ca.pem()];
    for node in ["a", "b"] {
        // The name is informative: nodes check the chain, and the cookie
        // authenticates the node's name.
        let mut params = CertificateParams::new(vec![node.to_string()])?;
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        pems.push(params.signed_by(&key, &ca)?.pem());
        pems.push(key.serialize_pem());
    }
    Ok(pems)
}

fn read(dir: &Path) -> std::io::Result<Vec<String>> {
    FILES
        .iter()
        .map(|f| std::fs::read_to_string(dir.join(f)))
        .collect()
}

fn write(dir: &Path, pems: &[String]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (f, pem) in FILES.iter().zip(pems) {
        std::fs::write(dir.join(f), pem)?;
    }
    Ok(())
}

enum Source {
    Generate,
    Read(PathBuf),
    Write(PathBuf),
}

fn parse_args() -> Result<Source, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(Source::Generate),
        [flag, dir] if flag == "--certs" => Ok(Source::Read(dir.into())),
        [flag, dir] if flag == "--write-certs" => Ok(Source::Write(dir.into())),
        _ => Err(USAGE.to_string()),
    }
}

async fn run(pems: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [ca, a_cert, a_key, b_cert, b_key] = pems else {
        return Err("expected five PEM texts".into());
    };
    let a_tls = TlsConfig::from_pem(a_cert, a_key, ca)?;
    let b_tls = TlsConfig::from_pem(b_cert, b_key, ca)?;

    let a = Node::start(NodeConfig::new("a").cookie(COOKIE).tls(a_tls)).await?;
    let (greeter, _) = Actor::spawn(None, Greeter, ()).await?;
    a.export("greeter", greeter)?;
    println!("node a listens on {} with TLS", a.local_addr());

    let b = Node::start(NodeConfig::new("b").cookie(COOKIE).tls(b_tls)).await?;
    b.connect(a.local_addr()).await?;
    println!("node b connected to a: certificates verified both ways, then the cookie");
    let greeter = b.lookup::<Greet>("a", "greeter").await?;
    let answer = greeter
        .call(
            |reply| Greet {
                who: "b".into(),
                reply,
            },
            Duration::from_secs(5),
        )
        .await?;
    println!("a answered: {answer}");

    // A node without TLS cannot join, and is told why.
    let plain = Node::start(NodeConfig::new("plain").cookie(COOKIE)).await?;
    match plain.connect(a.local_addr()).await {
        Err(ClusterError::Handshake { reason, .. }) => {
            println!("a plain node is refused: {reason}");
        }
        Err(other) => return Err(other.into()),
        Ok(_) => return Err("a plain node joined a TLS cluster".into()),
    }
    plain.shutdown().await;
    b.shutdown().await;
    a.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let source = match parse_args() {
        Ok(source) => source,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    let pems = match &source {
        Source::Read(dir) => read(dir).map_err(|e| format!("reading {}: {e}", dir.display())),
        Source::Generate | Source::Write(_) => {
            generate().map_err(|e| format!("generating certificates: {e}"))
        }
    };
    let pems = match pems {
        Ok(pems) => pems,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Source::Write(dir) = &source {
        if let Err(e) = write(dir, &pems) {
            eprintln!("writing {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {} to {}", FILES.join(", "), dir.display());
    }
    match run(&pems).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
