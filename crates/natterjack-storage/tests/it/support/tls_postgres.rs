//! A PostgreSQL server of a test's own that accepts TCP connections over TLS only, with the
//! certificate the test gives it: the server end of the `database.ca_file` tests, which need
//! certificates from CAs of their own making. `initdb` in a temporary directory, `ssl = on`,
//! `pg_hba.conf` with `hostssl` alone (so a plaintext connection is refused by the server),
//! listening on a free loopback port; stopped when dropped, on a panic too.
//!
//! Without PostgreSQL's server binaries the tests say loudly that they were skipped, except
//! in CI, where they must run. As root (CI), the server runs as the `postgres` user, since
//! PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate authority of a test, and what it issues.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA's certificate, PEM.
    pub pem: String,
}

impl TestCa {
    /// A new CA named `name` (distinct from its leaves' names, so none looks self-signed).
    pub fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            issuer: rcgen::Issuer::new(params, key),
            pem,
        }
    }

    /// A server certificate for `host` and its key, PEM.
    pub fn server(&self, host: &str) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{host} (test server)"));
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A running server of the test's own.
pub struct TlsPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
}

/// The directory of `initdb`, `pg_ctl` and `postgres`: the newest under
/// `/usr/lib/postgresql/*/bin`, or `NATTERJACK_TEST_PG_BIN`.
fn server_binaries() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("NATTERJACK_TEST_PG_BIN") {
        return Some(PathBuf::from(bin));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// `postgres`'s uid and gid, for the files of a server started by root.
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "root runs the test server as the postgres user, and there is none"
        );
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TlsPostgres {
    /// Starts a server presenting `cert` (with `key`), or `None` after a loud `SKIPPED:` line
    /// when the server binaries are missing (a failure in CI).
    pub fn start(cert: &str, key: &str) -> Option<Self> {
        let Some(bin) = server_binaries() else {
            let test = std::thread::current().name().unwrap_or("a test").to_owned();
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL's server binaries (initdb, pg_ctl) are required in CI"
            );
            eprintln!("SKIPPED: {test}: no PostgreSQL server binaries under /usr/lib/postgresql");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let root = is_root();
        let owner = root.then(postgres_ids);
        let data = dir.path().join("data");
        let give = |path: &Path| {
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
            }
        };
        give(dir.path());
        let server = Self {
            port: free_port(),
            bin,
            dir,
        };
        server.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        for (name, pem) in [("server.crt", cert), ("server.key", key)] {
            let path = data.join(name);
            std::fs::write(&path, pem).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            give(&path);
        }
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
             fsync = off\nmax_connections = 40\n",
            server.port,
            server.dir.path().display()
        );
        let mut existing = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
        existing.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), existing).unwrap();
        // TCP with TLS only: a connection that did not negotiate TLS is refused by the server.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        let log = server.dir.path().join("server.log");
        server.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "start",
            ],
        );
        Some(server)
    }

    /// Runs one of the server's programs, as `postgres` when the test runs as root.
    fn run(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let out = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// A URL for `role` to database `db` through `host` (which must resolve to loopback),
    /// with `sslmode`.
    pub fn url(&self, host: &str, role: &str, db: &str, sslmode: &str) -> String {
        format!(
            "postgres://{role}@{host}:{}/{db}?sslmode={sslmode}",
            self.port
        )
    }

    /// Writes `pems` into one file in the server's directory and returns its path: a
    /// `database.ca_file`.
    pub fn ca_file(&self, name: &str, pems: &[&str]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pems.concat()).unwrap();
        path
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let path = self.bin.join("pg_ctl");
        let args = [
            "-D",
            data.to_str().unwrap_or(""),
            "-m",
            "immediate",
            "-w",
            "stop",
        ];
        let _ = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&path)
                .args(args)
                .output()
        } else {
            Command::new(&path).args(args).output()
        };
    }
}
