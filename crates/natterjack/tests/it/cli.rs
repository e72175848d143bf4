//! The operator CLI and configuration, driven through the real binary: `user add`, `user
//! admin`, `user passwd`, `migrate`, the configuration layers (file, then environment, then
//! flags), refusal of unknown keys and weak Argon2 parameters, and `--help` everywhere.

use crate::support::{Creds, PASSWORD, TestServer, cli};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// Another password that passes the policy, distinct from [`PASSWORD`].
const OTHER_PASSWORD: &str = "quartz-lantern-58-meadow";

/// Switches self-registration off, so only admins and the operator may create accounts.
const NO_SELF_REGISTRATION: (&str, &str) = ("NATTERJACK_AUTH__SELF_REGISTRATION", "false");

/// Runs `natterjack user add NAME` with `password` on standard input; panics on failure.
fn add_user(data_dir: &Path, name: &str, password: &str) -> Creds {
    let (ok, stdout, stderr) = cli(
        data_dir,
        &["user", "add", name],
        &format!("{password}\n"),
        &[],
    );
    assert!(
        ok,
        "user add {name} failed: stdout {stdout:?} stderr {stderr:?}"
    );
    Creds::new(name, password)
}

/// Runs the binary with no inherited `NATTERJACK_*` variables, in `cwd`, with `env` only.
/// Unlike [`crate::support::cli`], it does not set `NATTERJACK_DATA_DIR`, so the file and the flags
/// can be seen deciding.
fn bare_cli(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = std::process::Command::new(crate::support::binary());
    command
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NATTERJACK_") {
            command.env_remove(key);
        }
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().expect("run natterjack");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `natterjack serve` with `args` and `env`; returns `Ok(url)` once it prints its
/// listening line (and kills it), or `Err(stderr)` if it exits first.
async fn serve_outcome(
    data_dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<String, String> {
    let mut command = tokio::process::Command::new(crate::support::binary());
    command
        .arg("serve")
        .envs(crate::support::SIDE_LISTENERS_ON_FREE_PORTS)
        .args(args)
        .env("NATTERJACK_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("spawn natterjack serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut stderr = child.stderr.take().expect("stderr");
    let listening = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix("natterjack listening rest ") {
                return Some(url.to_owned());
            }
        }
        None
    })
    .await
    .expect("serve neither listened nor exited within 60 s");
    match listening {
        Some(url) => {
            let _ = child.kill().await;
            Ok(url)
        }
        None => {
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err).await;
            let status = child.wait().await.expect("wait for serve");
            assert!(
                !status.success(),
                "serve exited successfully without listening"
            );
            Err(err)
        }
    }
}

/// A fresh temporary directory and the (not yet existing) data directory inside it, laid
/// out as [`TestServer::start_in`] expects.
fn fresh_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    (dir, data)
}

/// Writes `text` to `dir/name` and returns the path as a string.
fn write_file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write file");
    path.to_str().expect("utf-8 path").to_owned()
}

/// `GET /spaces` as `who`, returning the status.
async fn list_spaces_status(server: &TestServer, who: &Creds) -> StatusCode {
    server
        .call(Some(who), Method::GET, "/spaces", None)
        .await
        .status()
}

/// `POST /users` as `who` (anonymous when `None`), returning the status.
async fn create_user_status(server: &TestServer, who: Option<&Creds>, name: &str) -> StatusCode {
    server
        .call(
            who,
            Method::POST,
            "/users",
            Some(json!({"username": name, "password": PASSWORD})),
        )
        .await
        .status()
}

// 1. `user add`

#[tokio::test]
async fn a_user_added_on_the_command_line_logs_in_with_the_password_read_from_standard_input() {
    let (dir, data) = fresh_dir();
    let (ok, stdout, stderr) = cli(
        &data,
        &["user", "add", "alice"],
        &format!("{PASSWORD}\n"),
        &[],
    );
    assert!(ok, "user add failed: {stderr}");
    assert!(
        stdout.contains("alice"),
        "stdout names the new user: {stdout:?}"
    );
    assert!(
        !stdout.contains(PASSWORD) && !stderr.contains(PASSWORD),
        "the password is never echoed"
    );

    let server = TestServer::start_in(dir, &[]).await;
    assert_eq!(
        list_spaces_status(&server, &Creds::new("alice", PASSWORD)).await,
        StatusCode::OK
    );
    assert_eq!(
        list_spaces_status(&server, &Creds::new("alice", OTHER_PASSWORD)).await,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn user_add_rejects_a_password_given_as_an_argument() {
    let (_dir, data) = fresh_dir();
    let (ok, _, stderr) = cli(&data, &["user", "add", "alice", "hunter2hunter2"], "", &[]);
    assert!(!ok, "an extra positional argument must be refused");
    assert!(
        stderr.contains("hunter2hunter2") || stderr.contains("unexpected"),
        "clap explains: {stderr:?}"
    );
    assert!(
        !data.join("natterjack.db").exists(),
        "nothing ran: no database was created"
    );
    // No account was created by the refused command.
    add_user(&data, "alice", PASSWORD);
}

#[test]
fn user_add_refuses_a_weak_password_naming_the_password() {
    let (_dir, data) = fresh_dir();
    let (ok, _, stderr) = cli(&data, &["user", "add", "alice"], "password1\n", &[]);
    assert!(!ok, "a common password must be refused");
    assert!(
        stderr.contains("password"),
        "the error names the password: {stderr:?}"
    );
    assert!(
        !stderr.contains("password1"),
        "the refused password is not echoed: {stderr:?}"
    );
    // The refused attempt left no account behind.
    add_user(&data, "alice", PASSWORD);
}

#[test]
fn user_add_refuses_an_empty_standard_input() {
    let (_dir, data) = fresh_dir();
    let (ok, _, stderr) = cli(&data, &["user", "add", "alice"], "", &[]);
    assert!(!ok, "no password, no account");
    assert!(
        stderr.contains("password"),
        "the error mentions the missing password: {stderr:?}"
    );
}

#[test]
fn user_add_refuses_an_invalid_username() {
    let (_dir, data) = fresh_dir();
    let too_long = format!("a{}", "b".repeat(30));
    for bad in [
        "1alice",
        "a",
        "al ice",
        "alice!",
        "alice_b",
        "élise",
        too_long.as_str(),
    ] {
        let (ok, _, stderr) = cli(&data, &["user", "add", bad], &format!("{PASSWORD}\n"), &[]);
        assert!(!ok, "username {bad:?} must be refused");
        assert!(
            stderr.contains("username"),
            "the error names the username for {bad:?}: {stderr:?}"
        );
    }
}

#[test]
fn adding_the_same_user_twice_fails_the_second_time() {
    let (_dir, data) = fresh_dir();
    add_user(&data, "alice", PASSWORD);
    let (ok, _, stderr) = cli(
        &data,
        &["user", "add", "alice"],
        &format!("{OTHER_PASSWORD}\n"),
        &[],
    );
    assert!(!ok, "the second add must fail");
    assert!(
        stderr.contains("taken"),
        "the error says the name is taken: {stderr:?}"
    );
}

// 2. `user admin`

#[tokio::test]
async fn granting_and_revoking_admin_on_the_command_line_controls_account_creation_on_a_running_server()
 {
    let server = TestServer::start_with(&[NO_SELF_REGISTRATION]).await;
    let data = server.data_dir();

    assert_eq!(
        create_user_status(&server, None, "mallory").await,
        StatusCode::FORBIDDEN,
        "anonymous"
    );

    let alice = add_user(&data, "alice", PASSWORD);
    assert_eq!(
        create_user_status(&server, Some(&alice), "bob").await,
        StatusCode::FORBIDDEN,
        "non-admin"
    );

    let (ok, stdout, stderr) = cli(&data, &["user", "admin", "alice", "--grant"], "", &[]);
    assert!(ok, "grant failed: {stderr}");
    assert!(stdout.contains("alice"), "{stdout:?}");
    assert_eq!(
        create_user_status(&server, Some(&alice), "bob").await,
        StatusCode::CREATED,
        "admin"
    );
    assert_eq!(
        list_spaces_status(&server, &Creds::new("bob", PASSWORD)).await,
        StatusCode::OK
    );

    let (ok, _, stderr) = cli(&data, &["user", "admin", "alice", "--revoke"], "", &[]);
    assert!(ok, "revoke failed: {stderr}");
    assert_eq!(
        create_user_status(&server, Some(&alice), "carol").await,
        StatusCode::FORBIDDEN,
        "revoked at once, although alice's login is cached"
    );
    assert_eq!(
        create_user_status(&server, None, "carol").await,
        StatusCode::FORBIDDEN,
        "still anonymous"
    );
}

#[test]
fn user_admin_requires_exactly_one_of_grant_or_revoke() {
    let (_dir, data) = fresh_dir();
    add_user(&data, "alice", PASSWORD);
    let (ok, _, stderr) = cli(&data, &["user", "admin", "alice"], "", &[]);
    assert!(!ok, "neither flag must be refused");
    assert!(
        stderr.contains("--grant"),
        "clap names the missing flag: {stderr:?}"
    );
    let (ok, _, _) = cli(
        &data,
        &["user", "admin", "alice", "--grant", "--revoke"],
        "",
        &[],
    );
    assert!(!ok, "both flags must be refused");
}

#[test]
fn user_admin_and_passwd_on_an_unknown_user_fail() {
    let (_dir, data) = fresh_dir();
    let (ok, _, stderr) = cli(&data, &["user", "admin", "nobody", "--grant"], "", &[]);
    assert!(!ok, "admin on an unknown user must fail");
    assert!(stderr.contains("no such user"), "{stderr:?}");
    let (ok, _, stderr) = cli(
        &data,
        &["user", "passwd", "nobody"],
        &format!("{PASSWORD}\n"),
        &[],
    );
    assert!(!ok, "passwd on an unknown user must fail");
    assert!(stderr.contains("no such user"), "{stderr:?}");
}

// 3. `user passwd`

#[tokio::test]
async fn user_passwd_locks_out_the_cached_old_password_at_once_on_a_running_server() {
    let server = TestServer::start().await;
    let data = server.data_dir();
    let old = add_user(&data, "alice", PASSWORD);
    let new = Creds::new("alice", OTHER_PASSWORD);

    // Two successful requests: the second is served from the verification cache.
    assert_eq!(list_spaces_status(&server, &old).await, StatusCode::OK);
    assert_eq!(list_spaces_status(&server, &old).await, StatusCode::OK);

    // A weak new password is refused and changes nothing.
    let (ok, _, stderr) = cli(&data, &["user", "passwd", "alice"], "password1\n", &[]);
    assert!(!ok, "a weak new password must be refused");
    assert!(stderr.contains("password"), "{stderr:?}");
    assert_eq!(list_spaces_status(&server, &old).await, StatusCode::OK);

    let (ok, stdout, stderr) = cli(
        &data,
        &["user", "passwd", "alice"],
        &format!("{OTHER_PASSWORD}\n"),
        &[],
    );
    assert!(ok, "passwd failed: {stderr}");
    assert!(stdout.contains("alice"), "{stdout:?}");
    assert!(
        !stdout.contains(OTHER_PASSWORD) && !stderr.contains(OTHER_PASSWORD),
        "never echoed"
    );

    assert_eq!(
        list_spaces_status(&server, &old).await,
        StatusCode::UNAUTHORIZED,
        "old password, cached"
    );
    assert_eq!(
        list_spaces_status(&server, &new).await,
        StatusCode::OK,
        "new password"
    );
    assert_eq!(
        list_spaces_status(&server, &old).await,
        StatusCode::UNAUTHORIZED,
        "old password, again"
    );
}

// 4. `migrate`

#[test]
fn migrate_creates_the_database_and_a_second_run_reports_it_is_up_to_date() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, data) = fresh_dir();
    let (ok, stdout, stderr) = cli(&data, &["migrate"], "", &[]);
    assert!(ok, "first migrate failed: {stderr}");
    assert!(stdout.contains("applied migrations"), "{stdout:?}");
    let db = data.join("natterjack.db");
    assert!(db.is_file(), "the database file exists");
    let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data directory is private");
    assert_eq!(mode(&db), 0o600, "the database file is private");

    let (ok, stdout, stderr) = cli(&data, &["migrate"], "", &[]);
    assert!(ok, "second migrate failed: {stderr}");
    assert!(stdout.contains("up to date"), "{stdout:?}");
}

// 5. Configuration

#[test]
fn an_unknown_key_in_the_configuration_file_is_an_error_naming_the_key() {
    let (dir, data) = fresh_dir();
    let file = write_file(
        dir.path(),
        "natterjack.toml",
        "[rest]\nlissten = \"127.0.0.1:0\"\n",
    );
    let (ok, _, stderr) = cli(&data, &["--config", &file, "migrate"], "", &[]);
    assert!(!ok, "an unknown key must be refused");
    assert!(
        stderr.contains("lissten"),
        "the error names the key: {stderr:?}"
    );
    assert!(
        !data.exists(),
        "nothing was created before the configuration was accepted"
    );
}

#[test]
fn audit_sinks_that_could_not_work_are_refused_before_anything_starts() {
    let cases = [
        (
            "[[audit.sinks]]\nname = \"siem\"\nkind = \"syslog-tls\"\naddress = \"siem:6514\"\n",
            "audit.sinks \"siem\": ca_file is required for kind syslog-tls",
        ),
        (
            "[[audit.sinks]]\nname = \"siem\"\nkind = \"syslog-tcp\"\naddress = \"siem\"\n",
            "address must be host:port",
        ),
        (
            "[[audit.sinks]]\nname = \"f\"\nkind = \"json-file\"\npath = \"a.jsonl\"\naddress = \"x:1\"\n",
            "address does not apply to kind json-file",
        ),
        (
            "[[audit.sinks]]\nname = \"a b\"\nkind = \"json-stdout\"\n",
            "name must be 1 to 32 letters",
        ),
        (
            "[[audit.sinks]]\nname = \"x\"\nkind = \"json-stdout\"\n[[audit.sinks]]\nname = \"x\"\nkind = \"json-stdout\"\n",
            "the name \"x\" is used twice",
        ),
        ("[[audit.sinks]]\nname = \"x\"\nkind = \"kafka\"\n", "kafka"),
        (
            "[audit]\nfail_closed = true\n",
            "audit.fail_closed needs at least one [[audit.sinks]]",
        ),
        (
            "[audit]\nexport_lease_retry_ms = 0\n",
            "audit.export_lease_retry_ms must be at least 1",
        ),
    ];
    for (toml, expected) in cases {
        let (dir, data) = fresh_dir();
        let file = write_file(dir.path(), "natterjack.toml", toml);
        let (ok, _, stderr) = cli(&data, &["--config", &file, "migrate"], "", &[]);
        assert!(!ok, "{toml} must be refused");
        assert!(stderr.contains(expected), "{toml}: {stderr:?}");
        assert!(!data.exists(), "nothing was created");
    }
}

#[test]
fn an_unknown_top_level_key_in_the_configuration_file_is_an_error_naming_the_key() {
    let (dir, data) = fresh_dir();
    let file = write_file(dir.path(), "natterjack.toml", "data_dirr = \"elsewhere\"\n");
    let (ok, _, stderr) = cli(&data, &["--config", &file, "migrate"], "", &[]);
    assert!(!ok, "an unknown key must be refused");
    assert!(
        stderr.contains("data_dirr"),
        "the error names the key: {stderr:?}"
    );
}

#[test]
fn an_unknown_environment_variable_key_is_an_error_naming_the_key() {
    let (_dir, data) = fresh_dir();
    let (ok, _, stderr) = cli(&data, &["migrate"], "", &[("NATTERJACK_REST__BOGUS", "1")]);
    assert!(!ok, "an unknown environment key must be refused");
    assert!(
        stderr.to_lowercase().contains("bogus"),
        "the error names the key: {stderr:?}"
    );
    assert!(!data.exists(), "nothing was created");
}

#[test]
fn a_missing_configuration_file_is_a_clear_error() {
    let (dir, data) = fresh_dir();
    let missing = dir.path().join("absent.toml");
    let missing = missing.to_str().expect("utf-8 path");
    let (ok, _, stderr) = cli(&data, &["--config", missing, "migrate"], "", &[]);
    assert!(!ok, "a missing configuration file must be refused");
    assert!(
        stderr.contains("absent.toml"),
        "the error names the file: {stderr:?}"
    );
    assert!(stderr.contains("no configuration file"), "{stderr:?}");
}

#[test]
fn argon2_parameters_below_the_owasp_minimum_are_refused() {
    let (dir, data) = fresh_dir();
    for env in [
        ("NATTERJACK_AUTH__ARGON2__MEMORY_KIB", "1024"),
        ("NATTERJACK_AUTH__ARGON2__ITERATIONS", "1"),
        ("NATTERJACK_AUTH__ARGON2__PARALLELISM", "0"),
    ] {
        let (ok, _, stderr) = cli(&data, &["migrate"], "", &[env]);
        assert!(!ok, "{env:?} must be refused");
        assert!(stderr.contains("OWASP"), "{env:?}: {stderr:?}");
    }
    let file = write_file(
        dir.path(),
        "weak.toml",
        "[auth.argon2]\nmemory_kib = 1024\n",
    );
    let (ok, _, stderr) = cli(&data, &["--config", &file, "migrate"], "", &[]);
    assert!(!ok, "weak parameters in the file must be refused");
    assert!(stderr.contains("OWASP"), "{stderr:?}");
    assert!(!data.exists(), "nothing was created");
}

#[test]
fn trusted_proxies_come_from_a_comma_separated_environment_variable_and_bad_ones_are_refused() {
    let (_dir, data) = fresh_dir();
    let key = "NATTERJACK_RATE_LIMIT__TRUSTED_PROXIES";
    let (ok, _, stderr) = cli(&data, &["migrate"], "", &[(key, "127.0.0.1/32,10.0.0.0/8")]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = cli(
        &data,
        &["migrate"],
        "",
        &[(key, "10.0.0.0/8,not-a-network")],
    );
    assert!(!ok);
    assert!(stderr.contains("rate_limit.trusted_proxies"), "{stderr}");
}

#[test]
fn zero_timeouts_and_zero_sized_limits_are_refused_naming_the_key() {
    let (_dir, data) = fresh_dir();
    for (env, key) in [
        (
            "NATTERJACK_REST__REQUEST_TIMEOUT_SECS",
            "rest.request_timeout_secs",
        ),
        (
            "NATTERJACK_REST__HANDSHAKE_TIMEOUT_SECS",
            "rest.handshake_timeout_secs",
        ),
        ("NATTERJACK_REST__MAX_CONNECTIONS", "rest.max_connections"),
        (
            "NATTERJACK_AUTH__MAX_CONCURRENT_HASHES",
            "auth.max_concurrent_hashes",
        ),
        ("NATTERJACK_TLS__RELOAD_CHECK_SECS", "tls.reload_check_secs"),
        ("NATTERJACK_SHUTDOWN__TIMEOUT_SECS", "shutdown.timeout_secs"),
        (
            "NATTERJACK_RATE_LIMIT__REDIS_TIMEOUT_MS",
            "rate_limit.redis_timeout_ms",
        ),
        (
            "NATTERJACK_RATE_LIMIT__REDIS_RETRY_MS",
            "rate_limit.redis_timeout_ms and redis_retry_ms",
        ),
    ] {
        let (ok, _, stderr) = cli(&data, &["migrate"], "", &[(env, "0")]);
        assert!(!ok, "{env}=0 must be refused");
        assert!(stderr.contains(key), "{env}: {stderr:?}");
    }
    assert!(!data.exists(), "nothing was created");
}

#[test]
fn a_database_url_with_query_options_is_refused_rather_than_used_as_a_file_name() {
    let (_dir, data) = fresh_dir();
    let (ok, _, stderr) = cli(
        &data,
        &["migrate"],
        "",
        &[("NATTERJACK_DATABASE__URL", "sqlite:x.db?mode=ro")],
    );
    assert!(!ok);
    assert!(stderr.contains("database.url"), "{stderr:?}");
}

#[tokio::test]
async fn an_operator_supplied_private_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start().await;
    let dir = server.stop().await;
    let data = dir.path().join("data");
    let key = data.join("operator-key.pem");
    std::fs::copy(data.join("server-key.pem"), &key).expect("copy key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let cert = data.join("server.pem").display().to_string();
    let key_path = key.display().to_string();
    let client_ca = data.join("ca.pem").display().to_string();
    let env = [
        ("NATTERJACK_TLS__CERT", cert.as_str()),
        ("NATTERJACK_TLS__KEY", key_path.as_str()),
        ("NATTERJACK_GRPC__CLIENT_CA", client_ca.as_str()),
    ];
    let (ok, _, stderr) = cli(&data, &["serve", "--listen", "127.0.0.1:0"], "", &env);
    assert!(!ok);
    assert!(
        stderr.contains("operator-key.pem") && stderr.contains("chmod 600"),
        "{stderr:?}"
    );
}

#[test]
fn the_data_directory_comes_from_the_file_then_the_environment_then_the_flag() {
    let root = tempfile::tempdir().expect("temp dir");
    let dirs = |step: &str| {
        let base = root.path().join(step);
        std::fs::create_dir_all(&base).expect("mkdir");
        let paths = ["from-file", "from-env", "from-flag"].map(|d| base.join(d));
        let file = write_file(
            &base,
            "natterjack.toml",
            &format!("data_dir = {:?}\n", paths[0].to_str().expect("utf-8")),
        );
        (base, file, paths)
    };
    let has_db = |paths: &[PathBuf; 3]| paths.clone().map(|p| p.join("natterjack.db").is_file());

    // No file, no environment, no flag: ./data in the working directory.
    let (base, _, paths) = dirs("default");
    let (ok, _, stderr) = bare_cli(&base, &["migrate"], &[]);
    assert!(ok, "{stderr}");
    assert!(
        base.join("data/natterjack.db").is_file(),
        "the default is ./data"
    );
    assert_eq!(has_db(&paths), [false, false, false]);

    // The file alone.
    let (base, file, paths) = dirs("file");
    let (ok, _, stderr) = bare_cli(&base, &["--config", &file, "migrate"], &[]);
    assert!(ok, "{stderr}");
    assert_eq!(has_db(&paths), [true, false, false], "the file decides");
    assert!(!base.join("data").exists());

    // The environment overrides the file.
    let (base, file, paths) = dirs("env");
    let env_dir = paths[1].to_str().expect("utf-8");
    let (ok, _, stderr) = bare_cli(
        &base,
        &["--config", &file, "migrate"],
        &[("NATTERJACK_DATA_DIR", env_dir)],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        has_db(&paths),
        [false, true, false],
        "the environment overrides the file"
    );

    // The flag overrides both.
    let (base, file, paths) = dirs("flag");
    let env_dir = paths[1].to_str().expect("utf-8");
    let flag_dir = paths[2].to_str().expect("utf-8");
    let (ok, _, stderr) = bare_cli(
        &base,
        &["--config", &file, "--data-dir", flag_dir, "migrate"],
        &[("NATTERJACK_DATA_DIR", env_dir)],
    );
    assert!(ok, "{stderr}");
    assert_eq!(
        has_db(&paths),
        [false, false, true],
        "the flag overrides the environment and the file"
    );

    // The global flag is accepted after the subcommand too.
    let (base, file, paths) = dirs("flag-after");
    let env_dir = paths[1].to_str().expect("utf-8");
    let flag_dir = paths[2].to_str().expect("utf-8");
    let (ok, _, stderr) = bare_cli(
        &base,
        &["migrate", "--config", &file, "--data-dir", flag_dir],
        &[("NATTERJACK_DATA_DIR", env_dir)],
    );
    assert!(ok, "{stderr}");
    assert_eq!(has_db(&paths), [false, false, true]);
}

#[tokio::test]
async fn the_listen_address_comes_from_the_file_then_the_environment_then_the_flag() {
    // A port that is certainly taken while this test runs.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = holder.local_addr().expect("addr").to_string();
    let (dir, data) = fresh_dir();
    let file = write_file(
        dir.path(),
        "natterjack.toml",
        &format!("[rest]\nlisten = \"{busy}\"\n"),
    );

    // The file alone: serve tries the busy address and says so.
    let err = serve_outcome(&data, &["--config", &file], &[])
        .await
        .expect_err("the busy port cannot be bound");
    assert!(
        err.contains(&busy),
        "the error names the file's address {busy}: {err:?}"
    );

    // The environment overrides the file.
    let url = serve_outcome(
        &data,
        &["--config", &file],
        &[("NATTERJACK_REST__LISTEN", "127.0.0.1:0")],
    )
    .await
    .expect("the environment's address is used");
    assert!(
        url.starts_with("https://127.0.0.1:") && !url.ends_with(&busy),
        "{url}"
    );

    // The flag overrides the environment.
    let err = serve_outcome(&data, &[], &[("NATTERJACK_REST__LISTEN", busy.as_str())])
        .await
        .expect_err("the environment's busy address is used without a flag");
    assert!(err.contains(&busy), "{err:?}");
    let url = serve_outcome(
        &data,
        &["--listen", "127.0.0.1:0"],
        &[("NATTERJACK_REST__LISTEN", busy.as_str())],
    )
    .await
    .expect("the flag's address is used");
    assert!(!url.ends_with(&busy), "{url}");
    drop(holder);
}

#[tokio::test]
async fn database_url_file_puts_the_database_at_the_path_it_names() {
    let (dir, data) = fresh_dir();
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    let db = elsewhere.join("custom.db");
    let url_file = write_file(dir.path(), "db-url", &format!("sqlite:{}\n", db.display()));
    let env = [("NATTERJACK_DATABASE__URL_FILE", url_file.as_str())];

    let (ok, _, stderr) = cli(&data, &["migrate"], "", &env);
    assert!(ok, "{stderr}");
    assert!(db.is_file(), "the database is where the url file says");
    assert!(
        !data.join("natterjack.db").exists(),
        "not in the data directory"
    );

    // The CLI and the server both use it: a user added through the url file logs in.
    let (ok, _, stderr) = cli(
        &data,
        &["user", "add", "alice"],
        &format!("{PASSWORD}\n"),
        &env,
    );
    assert!(ok, "{stderr}");
    let server = TestServer::start_in(dir, &env).await;
    assert_eq!(
        list_spaces_status(&server, &Creds::new("alice", PASSWORD)).await,
        StatusCode::OK
    );
    assert!(
        !server.data_dir().join("natterjack.db").exists(),
        "the server did not create a second database"
    );
}

#[test]
fn database_url_and_url_file_together_are_refused() {
    let (dir, data) = fresh_dir();
    let url_file = write_file(dir.path(), "db-url", "sqlite:/nonexistent/x.db\n");
    let (ok, _, stderr) = cli(
        &data,
        &["migrate"],
        "",
        &[
            ("NATTERJACK_DATABASE__URL", "sqlite:/nonexistent/y.db"),
            ("NATTERJACK_DATABASE__URL_FILE", &url_file),
        ],
    );
    assert!(!ok, "an ambiguous database setting must be refused");
    assert!(stderr.contains("url_file"), "{stderr:?}");
}

#[test]
fn a_missing_database_url_file_is_a_clear_error() {
    let (dir, data) = fresh_dir();
    let missing = dir.path().join("no-such-url-file");
    let missing = missing.to_str().expect("utf-8 path");
    let (ok, _, stderr) = cli(
        &data,
        &["migrate"],
        "",
        &[("NATTERJACK_DATABASE__URL_FILE", missing)],
    );
    assert!(!ok, "an unreadable url file must be refused");
    assert!(stderr.contains("no-such-url-file"), "{stderr:?}");
}

// 6. `--help`

#[test]
fn help_works_for_every_command_and_subcommand() {
    let (_dir, data) = fresh_dir();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--help"],
            &["serve", "migrate", "user", "--config", "--data-dir"],
        ),
        (&["help"], &["serve", "migrate", "user"]),
        (
            &["serve", "--help"],
            &["--listen", "--config", "--data-dir"],
        ),
        (&["migrate", "--help"], &["schema"]),
        (&["user", "--help"], &["add", "passwd", "admin"]),
        (&["user", "add", "--help"], &["<NAME>", "username"]),
        (&["user", "passwd", "--help"], &["<NAME>", "password"]),
        (
            &["user", "admin", "--help"],
            &["<NAME>", "--grant", "--revoke"],
        ),
    ];
    for (args, words) in cases {
        let (ok, stdout, stderr) = cli(&data, args, "", &[]);
        assert!(ok, "{args:?} failed: {stderr:?}");
        assert!(stdout.contains("Usage:"), "{args:?}: {stdout:?}");
        for word in *words {
            assert!(
                stdout.contains(word),
                "{args:?} mentions {word:?}: {stdout:?}"
            );
        }
    }
    let (ok, stdout, _) = cli(&data, &["--version"], "", &[]);
    assert!(ok && stdout.starts_with("natterjack "), "{stdout:?}");
    assert!(!data.exists(), "help creates nothing");
}

#[test]
fn no_subcommand_or_an_unknown_one_is_refused_with_usage() {
    let (_dir, data) = fresh_dir();
    for args in [
        &[][..],
        &["frobnicate"][..],
        &["user"][..],
        &["user", "delete", "alice"][..],
    ] {
        let (ok, _, stderr) = cli(&data, args, "", &[]);
        assert!(!ok, "{args:?} must fail");
        assert!(stderr.contains("Usage:"), "{args:?}: {stderr:?}");
    }
    assert!(!data.exists(), "nothing was created");
}
