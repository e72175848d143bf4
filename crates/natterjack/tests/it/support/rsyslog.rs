//! A real rsyslog collector for the audit-export tests: `rsyslogd` runs in the foreground as
//! a child process from the operator example `docs/rsyslog/natterjack.conf`, with its
//! placeholders filled in, listening on 127.0.0.1 with one plain TCP input, one TLS input and
//! one TLS input that requires a client certificate (octet-counted RFC 5424). It writes every message it receives as one JSON object per
//! line built from its own RFC 5424 parse; [`Rsyslog::received`] reads that file back.
//!
//! Everything rsyslogd touches lives in a private work directory under the test's
//! directory (configuration, pid file, port files, output, its own log): it loads no
//! `imuxsock`/`imklog`, and uses neither `/dev/log` nor `/var/log`.
//!
//! Without `rsyslogd` the tests say loudly that they were skipped, except in CI (the `CI`
//! environment variable is set), where they must run.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The operator example this helper runs.
const CONF_TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/rsyslog/natterjack.conf"
);

/// The SD-ID of Natterjack's structured data.
pub const SD_ID: &str = "natterjack@32473";

/// How long rsyslogd may take to listen, and to exit after SIGTERM (its main queue alone
/// may take 10 s to drain).
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The TLS inputs' certificate files (e.g. from `natterjack::dev_ca::ensure`).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The CA certificate (PEM).
    pub ca: PathBuf,
    /// The collector's certificate (PEM), for `localhost` / `127.0.0.1`.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// A running (or stopped) rsyslogd; killed when dropped.
pub struct Rsyslog {
    binary: PathBuf,
    child: Option<Child>,
    /// Private work directory (absolute).
    dir: PathBuf,
    conf: PathBuf,
    tls: TlsFiles,
    tcp_port: u16,
    tls_port: u16,
    mtls_port: u16,
}

/// The name the mutual-TLS input requires in the sender's certificate.
pub const PERMITTED_PEER: &str = "exporter";

impl Rsyslog {
    /// Starts rsyslogd from `docs/rsyslog/natterjack.conf` in `dir/rsyslog`, listening on
    /// 127.0.0.1 with TCP, TLS and mutual TLS on free ports; returns once every port accepts
    /// connections. Returns `None` after printing `SKIPPED: {test}: rsyslogd is not
    /// installed` when rsyslogd is missing and `CI` is unset; panics when it is missing in CI.
    pub async fn start(test: &str, dir: &Path, tls: &TlsFiles) -> Option<Rsyslog> {
        let Some(binary) = find_rsyslogd() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "rsyslogd is required in CI (apt-get install rsyslog rsyslog-gnutls)"
            );
            eprintln!("SKIPPED: {test}: rsyslogd is not installed");
            return None;
        };
        let work = dir.join("rsyslog");
        fs::create_dir_all(&work).expect("create the rsyslog work directory");
        // rsyslogd changes to / on start: every path it sees must be absolute.
        let work = work
            .canonicalize()
            .expect("canonical rsyslog work directory");
        let absolute = |p: &Path| {
            p.canonicalize()
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        let mut rsyslog = Rsyslog {
            binary,
            child: None,
            conf: work.join("rsyslog.conf"),
            dir: work,
            tls: TlsFiles {
                ca: absolute(&tls.ca),
                cert: absolute(&tls.cert),
                key: absolute(&tls.key),
            },
            tcp_port: 0,
            tls_port: 0,
            mtls_port: 0,
        };
        rsyslog.launch().await;
        Some(rsyslog)
    }

    /// `127.0.0.1:PORT` of the plain TCP input.
    pub fn tcp_address(&self) -> String {
        format!("127.0.0.1:{}", self.tcp_port)
    }

    /// `127.0.0.1:PORT` of the TLS input.
    pub fn tls_address(&self) -> String {
        format!("127.0.0.1:{}", self.tls_port)
    }

    /// `127.0.0.1:PORT` of the TLS input that requires a client certificate naming
    /// [`PERMITTED_PEER`] and chained to the TLS files' CA.
    pub fn mtls_address(&self) -> String {
        format!("127.0.0.1:{}", self.mtls_port)
    }

    /// The JSON-lines file rsyslog writes.
    pub fn out_file(&self) -> PathBuf {
        self.dir.join("received.jsonl")
    }

    /// rsyslogd's own messages and its stderr so far, for assertion messages.
    pub fn log(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!(
            "--- rsyslogd.log\n{}--- stderr\n{}",
            read("rsyslogd.log"),
            read("rsyslogd.stderr")
        )
    }

    /// Stops rsyslogd with SIGTERM (it drains its queue into the file) and waits until it
    /// has exited. Does nothing when it is not running.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => {
                let status = status.expect("wait for rsyslogd");
                assert!(
                    status.success(),
                    "rsyslogd exited with {status}\n{}",
                    self.log()
                );
            }
            Err(_) => {
                let _ = child.kill().await;
                panic!(
                    "rsyslogd did not exit within {STOP_TIMEOUT:?} of SIGTERM\n{}",
                    self.log()
                );
            }
        }
    }

    /// Starts rsyslogd again on the same ports (stopping it first if it runs) and waits
    /// until both accept connections. The output file is kept and appended to.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.launch().await;
    }

    /// Every message rsyslog has written so far, in file order (complete lines only).
    /// Panics when a line is not an RFC 5424 message with valid structured data: rsyslog's
    /// parse, or the SD-PARAM escaping, disagrees with what Natterjack must send.
    pub fn received(&self) -> Vec<Received> {
        let text = match fs::read_to_string(self.out_file()) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("read {}: {e}", self.out_file().display()),
        };
        // A line without its newline may still be being written.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .filter(|l| !l.is_empty())
            .map(|line| Received::parse(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    /// Polls [`received`](Self::received) until `done` holds; panics after `timeout` with
    /// what arrived and rsyslogd's log.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if done(&got) {
                return got;
            }
            if Instant::now() >= deadline {
                let ids: Vec<String> = got
                    .iter()
                    .map(|r| {
                        format!(
                            "{}:{}",
                            r.listener,
                            r.params.get("id").map_or("?", String::as_str)
                        )
                    })
                    .collect();
                panic!(
                    "rsyslog did not receive the expected records within {timeout:?}; got {} [{}]\n{}",
                    got.len(),
                    ids.join(" "),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Writes the configuration for the current ports (0 on the first start: rsyslog
    /// picks free ones and reports them through the port files), spawns rsyslogd and
    /// waits until both inputs accept connections. The readiness probe connects without a
    /// TLS handshake, so each start leaves one harmless GnuTLS "non-properly terminated"
    /// error in rsyslogd's log.
    async fn launch(&mut self) {
        assert!(self.child.is_none(), "rsyslogd is already running");
        let tcp_port_file = self.dir.join("tcp.port");
        let tls_port_file = self.dir.join("tls.port");
        let mtls_port_file = self.dir.join("mtls.port");
        for f in [&tcp_port_file, &tls_port_file, &mtls_port_file] {
            let _ = fs::remove_file(f);
        }
        let substitutions = [
            ("@WORKDIR@", path_value(&self.dir)),
            ("@OUT@", path_value(&self.out_file())),
            ("@TCP_PORT@", self.tcp_port.to_string()),
            ("@TLS_PORT@", self.tls_port.to_string()),
            ("@TCP_PORT_FILE@", path_value(&tcp_port_file)),
            ("@TLS_PORT_FILE@", path_value(&tls_port_file)),
            ("@MTLS_PORT@", self.mtls_port.to_string()),
            ("@MTLS_PORT_FILE@", path_value(&mtls_port_file)),
            ("@PEER@", PERMITTED_PEER.to_owned()),
            ("@CA@", path_value(&self.tls.ca)),
            ("@CERT@", path_value(&self.tls.cert)),
            ("@KEY@", path_value(&self.tls.key)),
        ];
        let conf = substitute(
            &fs::read_to_string(CONF_TEMPLATE).expect("read docs/rsyslog/natterjack.conf"),
            &substitutions,
        );
        fs::write(&self.conf, conf).expect("write rsyslog.conf");

        let append = |name: &str| -> File {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(name))
                .expect("open an rsyslogd output file")
        };
        let mut child = Command::new(&self.binary)
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(append("rsyslogd.stdout")))
            .stderr(Stdio::from(append("rsyslogd.stderr")))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.binary.display()));

        let deadline = Instant::now() + START_TIMEOUT;
        let mut ports = (None, None, None);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("rsyslogd exited at start with {status}\n{}", self.log());
            }
            if ports.0.is_none() {
                ports.0 = listening(&tcp_port_file, self.tcp_port).await;
            }
            if ports.1.is_none() {
                ports.1 = listening(&tls_port_file, self.tls_port).await;
            }
            if ports.2.is_none() {
                ports.2 = listening(&mtls_port_file, self.mtls_port).await;
            }
            if let (Some(tcp), Some(tls), Some(mtls)) = ports {
                self.tcp_port = tcp;
                self.tls_port = tls;
                self.mtls_port = mtls;
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.kill().await;
                panic!(
                    "rsyslogd is not listening on TCP, TLS and mutual TLS after {START_TIMEOUT:?} \
                     (is rsyslog-gnutls installed? is a port taken?)\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.child = Some(child);
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// The port of an input once it accepts connections: on the first start (`port` 0) the
/// free port rsyslog bound, read from its port file; on a restart `port` itself (rsyslog
/// writes the port file only when it binds port 0).
async fn listening(port_file: &Path, port: u16) -> Option<u16> {
    let port = if port == 0 {
        fs::read_to_string(port_file)
            .ok()?
            .trim()
            .parse()
            .ok()
            .filter(|p| *p != 0)?
    } else {
        port
    };
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    Some(port)
}

/// `rsyslogd` on the `PATH` or in the usual sbin directories (often missing from a
/// non-root `PATH`).
fn find_rsyslogd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join("rsyslogd"))
        .find(|p| p.is_file())
}

/// A path as a RainerScript string value (which would need `"` and `\` escaped).
fn path_value(path: &Path) -> String {
    let s = path.to_str().expect("UTF-8 path").to_owned();
    assert!(
        !s.contains(['"', '\\', '\n']),
        "unusable path for rsyslog.conf: {s}"
    );
    s
}

/// Replaces every placeholder; panics on a placeholder left over (`@NAME@`, upper case).
fn substitute(template: &str, substitutions: &[(&str, String)]) -> String {
    let mut conf = template.to_owned();
    for (placeholder, value) in substitutions {
        conf = conf.replace(placeholder, value);
    }
    for (i, _) in conf.match_indices('@') {
        let rest = &conf[i + 1..];
        let name_len = rest
            .find(|c: char| !(c.is_ascii_uppercase() || c == '_'))
            .unwrap_or(rest.len());
        assert!(
            !(name_len > 0 && rest[name_len..].starts_with('@')),
            "placeholder @{}@ in docs/rsyslog/natterjack.conf is not substituted",
            &rest[..name_len]
        );
    }
    conf
}

/// One message as rsyslog parsed it.
#[derive(Debug, Clone)]
#[expect(
    dead_code,
    reason = "the fields no test compares are kept for the Debug output of failure messages"
)]
pub struct Received {
    /// The input that received it: `"tcp"` or `"tls"`.
    pub listener: String,
    /// PRI (facility * 8 + severity).
    pub pri: u8,
    /// TIMESTAMP as RFC 3339, as rsyslog parsed it.
    pub timestamp: String,
    /// HOSTNAME.
    pub hostname: String,
    /// APP-NAME.
    pub app_name: String,
    /// PROCID (`-` when nil).
    pub procid: String,
    /// MSGID (`-` when nil).
    pub msgid: String,
    /// The STRUCTURED-DATA as received, escapes intact.
    pub structured_data: String,
    /// The params of the `natterjack@32473` SD element, unescaped (empty without it).
    pub params: BTreeMap<String, String>,
    /// MSG without its leading UTF-8 BOM.
    pub msg: String,
    /// Whether MSG began with the UTF-8 BOM.
    pub bom: bool,
}

impl Received {
    /// The audit record id (`params["id"]`).
    pub fn id(&self) -> i64 {
        self.params
            .get("id")
            .unwrap_or_else(|| panic!("no id param: {self:?}"))
            .parse()
            .unwrap_or_else(|e| panic!("id param is not a number ({e}): {self:?}"))
    }

    /// Parses one line of the output file.
    fn parse(line: &str) -> Result<Self, String> {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
        let text = |key: &str| -> Result<String, String> {
            v.get(key)
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("no string field {key:?}"))
        };
        let version = text("protocol_version")?;
        if version != "1" {
            return Err(format!(
                "rsyslog did not parse the message as RFC 5424 (protocol-version {version:?})"
            ));
        }
        let pri = v
            .get("pri")
            .and_then(serde_json::Value::as_u64)
            .and_then(|p| u8::try_from(p).ok())
            .filter(|p| *p <= 191)
            .ok_or("no valid pri")?;
        let structured_data = text("structured_data")?;
        let mut params = BTreeMap::new();
        for (id, element) in parse_structured_data(&structured_data)? {
            if id == SD_ID {
                if !params.is_empty() {
                    return Err(format!("more than one {SD_ID} element"));
                }
                for (name, value) in element {
                    if params.insert(name.clone(), value).is_some() {
                        return Err(format!("param {name:?} appears twice"));
                    }
                }
            }
        }
        let raw_msg = text("msg")?;
        let (bom, msg) = match raw_msg.strip_prefix('\u{FEFF}') {
            Some(rest) => (true, rest.to_owned()),
            None => (false, raw_msg),
        };
        Ok(Self {
            listener: text("listener")?,
            pri,
            timestamp: text("timereported")?,
            hostname: text("hostname")?,
            app_name: text("app_name")?,
            procid: text("procid")?,
            msgid: text("msgid")?,
            structured_data,
            params,
            msg,
            bom,
        })
    }
}

/// One SD-ELEMENT: its SD-ID and its params in order.
type SdElement = (String, Vec<(String, String)>);

/// Parses STRUCTURED-DATA strictly by RFC 5424 §6.3: `-`, or SD-ELEMENTs
/// `[SD-ID *(SP PARAM-NAME="PARAM-VALUE")]` where `"`, `\` and `]` in a value must be
/// escaped with a backslash (a backslash before any other character stays as it is).
fn parse_structured_data(sd: &str) -> Result<Vec<SdElement>, String> {
    if sd == "-" {
        return Ok(Vec::new());
    }
    let mut elements = Vec::new();
    let mut chars = sd.chars().peekable();
    let sd_name = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| -> Result<String, String> {
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if !c.is_ascii_graphic() || matches!(c, '=' | ' ' | ']' | '"') {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() || name.len() > 32 {
            return Err(format!("bad SD-NAME {name:?} in {sd}"));
        }
        Ok(name)
    };
    while chars.peek().is_some() {
        if chars.next() != Some('[') {
            return Err(format!("SD-ELEMENT must start with '[': {sd}"));
        }
        let id = sd_name(&mut chars)?;
        let mut params = Vec::new();
        loop {
            match chars.next() {
                Some(']') => break,
                Some(' ') => {}
                other => return Err(format!("expected ' ' or ']', found {other:?}: {sd}")),
            }
            let name = sd_name(&mut chars)?;
            if chars.next() != Some('=') || chars.next() != Some('"') {
                return Err(format!("expected =\" after {name}: {sd}"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated value of {name}: {sd}")),
                    Some('"') => break,
                    Some(']') => return Err(format!("unescaped ']' in the value of {name}: {sd}")),
                    Some('\\') => match chars.next() {
                        Some(c @ ('"' | '\\' | ']')) => value.push(c),
                        Some(c) => {
                            value.push('\\');
                            value.push(c);
                        }
                        None => return Err(format!("unterminated value of {name}: {sd}")),
                    },
                    Some(c) => value.push(c),
                }
            }
            params.push((name, value));
        }
        elements.push((id, params));
    }
    Ok(elements)
}

/// For [`Rsyslog::wait_for`]: every id from 1 to `table_head` arrived on `listener`.
pub fn all_ids_arrived(table_head: i64, listener: &'static str) -> impl Fn(&[Received]) -> bool {
    move |received| {
        let mut seen = std::collections::HashSet::new();
        for r in received.iter().filter(|r| r.listener == listener) {
            seen.insert(r.id());
        }
        (1..=table_head).all(|id| seen.contains(&id))
    }
}
