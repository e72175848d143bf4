//! A real OpenLDAP directory for the LDAP bind tests: Debian's `slapd` runs in the
//! foreground as a child process from a generated `slapd.conf` (back-mdb), listening on
//! 127.0.0.1 with plain LDAP (StartTLS offered) and LDAPS on free ports, serving TLS with the
//! given certificate. Its contents are loaded with `slapadd` before the first start; every
//! password is stored as an `{SSHA}` hash made by `slappasswd`.
//!
//! Everything slapd touches lives in a private work directory: configuration, database,
//! pid and args files, its stderr. slapd runs under a small `sh` guard whose stdin is a pipe
//! this process holds: when the pipe closes (the struct is dropped, or the test process dies
//! without running any destructor) the guard stops slapd, so no directory outlives its test.
//!
//! Without `slapd` the tests say loudly that they were skipped, except in CI (the `CI`
//! environment variable is set), where they must run.

use super::rsyslog::TlsFiles;
use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The base of the directory tree.
const BASE_DN: &str = "dc=natterjack,dc=test";
/// Where the users are.
const PEOPLE_BASE: &str = "ou=people,dc=natterjack,dc=test";
/// Where the groups are.
const GROUPS_BASE: &str = "ou=groups,dc=natterjack,dc=test";
/// The group whose members are Natterjack administrators (bob).
const ADMIN_GROUP_DN: &str = "cn=natterjack-admins,ou=groups,dc=natterjack,dc=test";
/// The service account the server searches with.
const SERVICE_DN: &str = "cn=search,dc=natterjack,dc=test";
const SERVICE_PASSWORD: &str = "search-service-pw";
/// The directory's root DN (`rootdn`): not limited by the ACLs, for tests that change the
/// directory under a running server.
const ADMIN_DN: &str = "cn=admin,dc=natterjack,dc=test";
const ADMIN_PASSWORD: &str = "admin-directory-pw";
/// The users in `ou=people` and their directory passwords.
const USERS: [(&str, &str); 3] = [
    ("alice", "alice-directory-pw"),
    ("bob", "bob-directory-pw"),
    ("carol", "carol-directory-pw"),
];

/// How long slapd may take to listen, and to exit after its guard's pipe closes.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How many times a first start retries with new ports when slapd cannot bind the ports it
/// was given (another process took one between finding it free and slapd binding it).
const START_ATTEMPTS: usize = 3;

/// The guard that runs a peer (`"$@"`) until its stdin pipe closes: the peer gets the pipe
/// as its stdin too (a peer that exits on end of input, like the OpenID provider, stops by
/// itself), and a reader sends the peer SIGTERM when the pipe closes. The guard exits with
/// the peer's status, first removing `$GUARD_CLEANUP` when that is set (a shared peer's
/// temporary directory, which nothing else would ever delete).
const GUARD: &str = r#"exec 3<&0
"$@" <&3 3<&- &
pid=$!
(read _ <&3; kill "$pid" 2>/dev/null) &
reader=$!
wait "$pid"
status=$?
kill "$reader" 2>/dev/null
if [ -n "${GUARD_CLEANUP:-}" ]; then rm -rf -- "$GUARD_CLEANUP"; fi
exit "$status""#;

/// A `sh` command running `program` under [`GUARD`], with a piped stdin for the caller to
/// hold: closing it (dropping the child's stdin, or this process ending) stops the peer.
/// That is how a peer dies with the test process even when no destructor runs.
pub(super) fn guarded(program: &Path) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(GUARD)
        .arg("peer-guard")
        .arg(program)
        .stdin(Stdio::piped());
    command
}

/// Closes a guarded child's stdin (which stops the peer) and waits for the guard to exit;
/// SIGKILLs the guard after `timeout`. Returns whether it exited by itself.
pub(super) fn close_and_wait(child: &mut Child, timeout: Duration) -> bool {
    drop(child.stdin.take());
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(_)) | Err(_) = child.try_wait() {
            return true;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A loopback port that was free a moment ago (bound to port 0, then released).
pub(super) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free loopback port")
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
fn accepts(port: u16) -> bool {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok()
}

/// A program on the `PATH` or in the usual sbin directories (often missing from a non-root
/// `PATH`).
pub(super) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// What one readiness check of a starting slapd found.
enum Startup {
    /// Both ports accept connections.
    Ready,
    /// Not yet.
    Waiting,
    /// slapd exited; the message says how.
    Exited(String),
}

/// A running (or stopped) slapd with its own data; stopped when dropped.
pub struct Slapd {
    slapd: PathBuf,
    child: Option<Child>,
    /// Private work directory (absolute).
    dir: PathBuf,
    tls: TlsFiles,
    ldap_port: u16,
    ldaps_port: u16,
    /// Set for the shared directory: its temporary directory, removed by the guard.
    cleanup: Option<PathBuf>,
}

impl Slapd {
    /// Starts slapd in `dir/slapd` with the test directory's contents, serving TLS with
    /// `tls`, on free ports for `ldap://` (StartTLS) and `ldaps://`; returns once both
    /// accept connections. Returns `None` after printing `SKIPPED: {test}: slapd is not
    /// installed` when slapd is missing and `CI` is unset; panics when it is missing in CI.
    pub async fn start(test: &str, dir: &Path, tls: &TlsFiles) -> Option<Slapd> {
        let mut slapd = Self::prepare(test, dir, tls, None)?;
        slapd.launch(test);
        Some(slapd)
    }

    /// Starts the prepared slapd on free ports, trying other ports when it cannot bind;
    /// returns once both ports accept connections. Blocking (slapd is ready in about
    /// 200 ms), so that the shared directory can start outside any runtime.
    fn launch(&mut self, test: &str) {
        for attempt in 1..=START_ATTEMPTS {
            self.ldap_port = free_port();
            self.ldaps_port = free_port();
            self.spawn();
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                match self.check(deadline) {
                    Startup::Ready => return,
                    Startup::Waiting => std::thread::sleep(Duration::from_millis(20)),
                    Startup::Exited(why) if attempt < START_ATTEMPTS => {
                        eprintln!("{test}: slapd did not start ({why}); trying other ports");
                        break;
                    }
                    Startup::Exited(why) => panic!("slapd did not start: {why}\n{}", self.log()),
                }
            }
        }
    }

    /// The directory shared by the tests that only read it: started on first use, once per
    /// test binary, in a temporary directory with its own development CA (removed when the
    /// test process ends). `None` (after a SKIPPED message naming "shared directory") when
    /// slapd is missing outside CI. Blocking: it may be called from any runtime, or none, and
    /// its child belongs to no runtime, so it outlives the test that started it.
    pub fn shared() -> Option<&'static Slapd> {
        static SHARED: OnceLock<Option<Slapd>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let temp = tempfile::Builder::new()
                    .prefix("natterjack-slapd-")
                    .tempdir()
                    .expect("temporary directory for the shared slapd")
                    .keep();
                let tls = dev_pki(&temp.join("pki"));
                let mut slapd = Self::prepare("shared directory", &temp, &tls, Some(temp.clone()))?;
                slapd.launch("shared directory");
                Some(slapd)
            })
            .as_ref()
    }

    /// `ldap://127.0.0.1:PORT` (plain LDAP; StartTLS is offered, not required).
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    /// `ldaps://127.0.0.1:PORT` (TLS from the first byte).
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    /// The CA certificate that issued the directory's server certificate: what a client
    /// must trust (`LDAPTLS_CACERT`, or the server's LDAP CA setting).
    pub fn ca_file(&self) -> &Path {
        &self.tls.ca
    }

    /// `dc=natterjack,dc=test`: the suffix of the directory.
    pub fn base_dn(&self) -> &'static str {
        BASE_DN
    }

    /// `ou=people,dc=natterjack,dc=test`: where user searches start.
    pub fn people_base(&self) -> &'static str {
        PEOPLE_BASE
    }

    /// `ou=groups,dc=natterjack,dc=test`: where group searches start.
    pub fn groups_base(&self) -> &'static str {
        GROUPS_BASE
    }

    /// The DN of a user in `ou=people` (`uid={name},ou=people,...`), for direct binds.
    pub fn user_dn(&self, name: &str) -> String {
        format!("uid={name},{PEOPLE_BASE}")
    }

    /// `cn=natterjack-admins,ou=groups,...`: the `groupOfNames` whose only member is bob.
    pub fn admin_group_dn(&self) -> &'static str {
        ADMIN_GROUP_DN
    }

    /// `cn=search,dc=natterjack,dc=test`: the service account that may search people and
    /// groups (reads everything but passwords).
    pub fn service_dn(&self) -> &'static str {
        SERVICE_DN
    }

    /// A 0600 file holding the service account's password (no trailing newline), as the
    /// server's configuration would point at it.
    pub fn service_password_file(&self) -> PathBuf {
        self.dir.join("service-password")
    }

    /// The directory password of `alice`, `bob` or `carol`; panics for anyone else.
    pub fn user_password(&self, name: &str) -> &'static str {
        USERS
            .iter()
            .find(|(user, _)| *user == name)
            .map(|(_, password)| *password)
            .unwrap_or_else(|| panic!("no user {name:?} in the test directory"))
    }

    /// The root DN, which no ACL limits: for tests that change the directory under a running
    /// server (see [`modify`](Self::modify)).
    pub fn admin_dn(&self) -> &'static str {
        ADMIN_DN
    }

    /// The root DN's password.
    pub fn admin_password(&self) -> &'static str {
        ADMIN_PASSWORD
    }

    /// Applies an LDIF change set as the root DN with `ldapmodify` over LDAPS, so a test can
    /// change a password, a group, or remove a user while the server runs. Panics when the
    /// change fails. Do not use it on [`shared`](Self::shared): other tests read that one.
    pub fn modify(&self, ldif: &str) {
        let ldapmodify = find_program("ldapmodify").expect("ldapmodify (ldap-utils) is required");
        let mut child = Command::new(ldapmodify)
            .args([
                "-H",
                &self.ldaps_url(),
                "-x",
                "-D",
                ADMIN_DN,
                "-w",
                ADMIN_PASSWORD,
            ])
            .env("LDAPTLS_CACERT", &self.tls.ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ldapmodify");
        child
            .stdin
            .take()
            .expect("ldapmodify stdin")
            .write_all(ldif.as_bytes())
            .expect("write to ldapmodify");
        let out = child.wait_with_output().expect("ldapmodify output");
        assert!(
            out.status.success(),
            "ldapmodify failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// slapd's stderr so far (it logs only errors, at `-d 0`), for assertion messages.
    pub fn log(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!("--- slapd stderr\n{}", read("slapd.stderr"))
    }

    /// Stops slapd (SIGTERM through its guard) and waits until it has exited: a directory
    /// that goes away mid-test. Does nothing when it is not running.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        drop(child.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Ok(Some(_)) | Err(_) = child.try_wait() {
                return;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!("slapd did not stop within {STOP_TIMEOUT:?}\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Starts slapd again (stopping it first if it runs) on the same ports with the same
    /// data, and waits until both ports accept connections.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.check(deadline) {
                Startup::Ready => return,
                Startup::Waiting => tokio::time::sleep(Duration::from_millis(20)).await,
                Startup::Exited(why) => panic!("slapd did not restart: {why}\n{}", self.log()),
            }
        }
    }

    /// Finds the tools, writes the configuration, the password file and the contents, and
    /// loads them with `slapadd`; nothing runs yet.
    fn prepare(test: &str, dir: &Path, tls: &TlsFiles, cleanup: Option<PathBuf>) -> Option<Slapd> {
        let tools = ["slapd", "slapadd", "slappasswd"].map(find_program);
        let [Some(slapd), Some(slapadd), Some(slappasswd)] = tools else {
            assert!(
                std::env::var_os("CI").is_none(),
                "slapd is required in CI (apt-get install slapd ldap-utils)"
            );
            eprintln!("SKIPPED: {test}: slapd is not installed");
            return None;
        };
        let work = dir.join("slapd");
        fs::create_dir_all(work.join("data")).expect("create the slapd work directory");
        let work = work.canonicalize().expect("canonical slapd work directory");
        let absolute = |p: &Path| {
            p.canonicalize()
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let tls = TlsFiles {
            ca: absolute(&tls.ca),
            cert: absolute(&tls.cert),
            key: absolute(&tls.key),
        };
        let hash = |password: &str| -> String {
            let out = Command::new(&slappasswd)
                .args(["-h", "{SSHA}", "-s", password])
                .output()
                .expect("run slappasswd");
            assert!(out.status.success(), "slappasswd failed: {out:?}");
            String::from_utf8(out.stdout)
                .expect("slappasswd output")
                .trim()
                .to_owned()
        };

        let conf = work.join("slapd.conf");
        fs::write(&conf, config(&work, &tls, &hash(ADMIN_PASSWORD))).expect("write slapd.conf");
        let ldif = work.join("contents.ldif");
        fs::write(&ldif, contents(&hash)).expect("write contents.ldif");
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(work.join("service-password"))
            .and_then(|mut f| f.write_all(SERVICE_PASSWORD.as_bytes()))
            .expect("write the service password file");
        let out = Command::new(&slapadd)
            .arg("-q")
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(&ldif)
            .output()
            .expect("run slapadd");
        assert!(
            out.status.success(),
            "slapadd failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Slapd {
            slapd,
            child: None,
            dir: work,
            tls,
            ldap_port: 0,
            ldaps_port: 0,
            cleanup,
        })
    }

    /// Spawns slapd under its guard on the current ports.
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "slapd is already running");
        let stderr = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("slapd.stderr"))
            .expect("open slapd.stderr");
        let urls = format!(
            "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
            self.ldap_port, self.ldaps_port
        );
        let mut command = guarded(&self.slapd);
        command
            // `-d 0`: stay in the foreground (the guard's child), log nothing but errors.
            .args(["-d", "0", "-h", &urls, "-f"])
            .arg(self.dir.join("slapd.conf"))
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr));
        if let Some(cleanup) = &self.cleanup {
            command.env("GUARD_CLEANUP", cleanup);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.slapd.display()));
        self.child = Some(child);
    }

    /// One readiness check of the slapd [`spawn`](Self::spawn) started; panics after
    /// `deadline`.
    fn check(&mut self, deadline: Instant) -> Startup {
        let child = self.child.as_mut().expect("slapd was spawned");
        if let Ok(Some(status)) = child.try_wait() {
            self.child = None;
            return Startup::Exited(format!("exited with {status}"));
        }
        if accepts(self.ldap_port) && accepts(self.ldaps_port) {
            return Startup::Ready;
        }
        if Instant::now() >= deadline {
            if let Some(mut child) = self.child.take() {
                close_and_wait(&mut child, STOP_TIMEOUT);
            }
            panic!(
                "slapd is not listening on {} and {} after {START_TIMEOUT:?}\n{}",
                self.ldap_url(),
                self.ldaps_url(),
                self.log()
            );
        }
        Startup::Waiting
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            close_and_wait(&mut child, STOP_TIMEOUT);
        }
    }
}

/// The development CA and a server certificate for `127.0.0.1`/`localhost` in `dir`, made
/// by the server's own `natterjack::dev_ca` (what the tests' clients trust).
pub fn dev_pki(dir: &Path) -> TlsFiles {
    natterjack::data_dir::ensure_data_dir(dir).expect("PKI directory");
    let pki = natterjack::dev_ca::ensure(dir).expect("development PKI");
    TlsFiles {
        ca: pki.ca_cert,
        cert: pki.server_cert,
        key: pki.server_key,
    }
}

/// `slapd.conf`: back-mdb under `work/data`, TLS from `tls`, the root DN with
/// `admin_hash`, and the ACLs: anyone may bind (auth on `userPassword`, which nobody may
/// read), users read their own entry, the service account reads everything else, anonymous
/// reads nothing.
fn config(work: &Path, tls: &TlsFiles, admin_hash: &str) -> String {
    let path = |p: &Path| {
        let s = p.to_str().expect("UTF-8 path").to_owned();
        assert!(
            !s.contains(['"', '\\', '\n', ' ']),
            "unusable path for slapd.conf: {s}"
        );
        s
    };
    format!(
        r#"# Generated by crates/natterjack/tests/it/support/slapd.rs
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema

modulepath /usr/lib/ldap
moduleload back_mdb

pidfile {work}/slapd.pid
argsfile {work}/slapd.args

TLSCACertificateFile {ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}

database mdb
maxsize 16777216
suffix "{BASE_DN}"
rootdn "{ADMIN_DN}"
rootpw {admin_hash}
directory {work}/data
index objectClass eq
index uid,cn,member eq

access to attrs=userPassword
  by anonymous auth
  by * none
access to *
  by dn.exact="{SERVICE_DN}" read
  by self read
  by * none
"#,
        work = path(work),
        ca = path(&tls.ca),
        cert = path(&tls.cert),
        key = path(&tls.key),
    )
}

/// The directory's contents as LDIF, passwords hashed by `hash`.
fn contents(hash: &dyn Fn(&str) -> String) -> String {
    let mut ldif = format!(
        "dn: {BASE_DN}\n\
         objectClass: dcObject\n\
         objectClass: organization\n\
         dc: natterjack\n\
         o: Natterjack test directory\n\
         \n\
         dn: {PEOPLE_BASE}\n\
         objectClass: organizationalUnit\n\
         ou: people\n\
         \n\
         dn: {GROUPS_BASE}\n\
         objectClass: organizationalUnit\n\
         ou: groups\n\
         \n\
         dn: {SERVICE_DN}\n\
         objectClass: applicationProcess\n\
         objectClass: simpleSecurityObject\n\
         cn: search\n\
         userPassword: {}\n\
         \n",
        hash(SERVICE_PASSWORD)
    );
    for (name, password) in USERS {
        let mut display = name.to_owned();
        display[..1].make_ascii_uppercase();
        ldif.push_str(&format!(
            "dn: uid={name},{PEOPLE_BASE}\n\
             objectClass: inetOrgPerson\n\
             uid: {name}\n\
             cn: {display}\n\
             sn: {display}\n\
             displayName: {display}\n\
             mail: {name}@natterjack.test\n\
             userPassword: {}\n\
             \n",
            hash(password)
        ));
    }
    ldif.push_str(&format!(
        "dn: {ADMIN_GROUP_DN}\n\
         objectClass: groupOfNames\n\
         cn: natterjack-admins\n\
         member: uid=bob,{PEOPLE_BASE}\n"
    ));
    ldif
}
