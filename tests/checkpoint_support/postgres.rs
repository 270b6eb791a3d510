//! A real PostgreSQL server for tests and benches, never a mock.
//!
//! [`PgServer::start`] runs `initdb` and `pg_ctl` from the Debian package
//! (`/usr/lib/postgresql/<version>/bin`; `.ci/run` installs `postgresql`
//! when it is missing) in a fresh temporary data directory, with trust
//! authentication, listening on a free port of 127.0.0.1 only. PostgreSQL
//! refuses to run as root, so as root both run as the `postgres` user the
//! package creates (through `runuser`), and the directory is handed to it.
//! Dropping the server stops it (`pg_ctl stop -m immediate`) and removes
//! the directory. Every step has a time limit.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long `initdb` may take.
const INITDB_LIMIT: Duration = Duration::from_secs(120);
/// How long the server may take to start or stop (`pg_ctl -t`).
const PG_CTL_SECONDS: u64 = 60;
/// Ports tried before giving up (another process may take a free port
/// between our look and the server's bind).
const PORT_ATTEMPTS: usize = 3;

/// A running PostgreSQL server in a temporary data directory.
pub struct PgServer {
    /// The directory of `initdb` and `pg_ctl`.
    bin: PathBuf,
    /// The temporary directory: `data/`, the server log, the socket.
    dir: PathBuf,
    /// The loopback port it listens on (0 until it started).
    port: u16,
    /// Whether the tools run as the `postgres` user (we are root).
    as_postgres: bool,
}

impl PgServer {
    /// Initialises a data directory and starts a server on a free loopback
    /// port; an error says which step failed and with what output.
    pub fn start() -> Result<PgServer, String> {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let bin = bin_dir()?;
        let as_postgres = is_root()?;
        let dir = std::env::temp_dir().join(format!(
            "ractor-otp-pg-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut server = PgServer {
            bin,
            dir,
            port: 0,
            as_postgres,
        };
        if as_postgres {
            run(
                Command::new("chown")
                    .arg("postgres:postgres")
                    .arg(&server.dir),
                Duration::from_secs(10),
            )?;
        }
        let data = server.data();
        run(
            server
                .tool("initdb")
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(&data),
            INITDB_LIMIT,
        )?;
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port()?;
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {}",
                server.port,
                server.dir.display()
            );
            let started = run(
                server
                    .tool("pg_ctl")
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(server.dir.join("server.log"))
                    .args([
                        "-w",
                        "-t",
                        &PG_CTL_SECONDS.to_string(),
                        "-o",
                        &options,
                        "start",
                    ]),
                Duration::from_secs(PG_CTL_SECONDS + 10),
            );
            match started {
                Ok(()) => return Ok(server),
                Err(e) => {
                    let log =
                        std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
                    last = format!("{e}\nserver log:\n{log}");
                }
            }
        }
        Err(format!(
            "PostgreSQL did not start in {PORT_ATTEMPTS} attempts: {last}"
        ))
    }

    /// The connection string of the server's `postgres` database.
    pub fn conn_str(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres connect_timeout=10",
            self.port
        )
    }

    /// The data directory.
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A PostgreSQL tool, run as the `postgres` user when we are root.
    fn tool(&self, name: &str) -> Command {
        let path = self.bin.join(name);
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.port != 0 {
            let data = self.data();
            let _ = run(
                self.tool("pg_ctl").arg("-D").arg(&data).args([
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    &PG_CTL_SECONDS.to_string(),
                    "stop",
                ]),
                Duration::from_secs(PG_CTL_SECONDS + 10),
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest installed `/usr/lib/postgresql/<version>/bin` with `initdb`.
fn bin_dir() -> Result<PathBuf, String> {
    let root = Path::new("/usr/lib/postgresql");
    let entries = std::fs::read_dir(root).map_err(|e| {
        format!(
            "no PostgreSQL under {}: {e}; install the `postgresql` package (.ci/run does)",
            root.display()
        )
    })?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
        .ok_or_else(|| {
            format!(
                "no initdb under {}/*/bin; install the `postgresql` package",
                root.display()
            )
        })
}

/// Whether this process runs as root (`id -u`).
fn is_root() -> Result<bool, String> {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("cannot run `id -u`: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A port of 127.0.0.1 free a moment ago.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// Runs `cmd` to completion within `limit` (killed past it); an error
/// carries its output.
fn run(cmd: &mut Command, limit: Duration) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let out_path = std::env::temp_dir().join(format!(
        "ractor-otp-pg-out-{}-{}",
        std::process::id(),
        OUT.fetch_add(1, Ordering::Relaxed)
    ));
    let out =
        std::fs::File::create(&out_path).map_err(|e| format!("cannot capture output: {e}"))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot capture output: {e}"))?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("{shown} did not finish within {limit:?}"));
            }
            Err(e) => break Err(format!("cannot wait for {shown}: {e}")),
        }
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{shown} failed ({s}):\n{output}")),
        Err(e) => Err(format!("{e}\n{output}")),
    }
}

/// Numbers the output files of [`run`].
static OUT: AtomicUsize = AtomicUsize::new(0);
