//! The transport: HTTPS only, TLS 1.2+ only, HSTS, HTTP/1.1 and HTTP/2 by ALPN, private keys.

use crate::support::{TestServer, client_trusting};
use reqwest::{StatusCode, Version};
use std::os::unix::fs::PermissionsExt;

#[tokio::test]
async fn plaintext_http_gets_no_answer() {
    let server = TestServer::start().await;
    let plain = reqwest::Client::builder().build().expect("client");
    let result = plain
        .get(format!("http://{}/health", server.authority()))
        .send()
        .await;
    assert!(
        result.is_err(),
        "a plaintext request must not be served: {result:?}"
    );
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_dev_ca_is_refused_by_its_own_tls_stack() {
    let server = TestServer::start().await;
    crate::support::install_crypto();
    let stranger = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .build()
        .expect("client");
    assert!(stranger.get(server.url("/health")).send().await.is_err());
}

#[tokio::test]
async fn http2_is_negotiated_by_alpn_and_http1_still_works_both_with_hsts() {
    let server = TestServer::start().await;
    let ca = server.data_dir().join("ca.pem");
    let h2 = client_trusting(&ca, |b| b);
    let r = h2.get(server.url("/health")).send().await.expect("h2");
    assert_eq!(r.version(), Version::HTTP_2);
    assert_eq!(
        r.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let h1 = client_trusting(&ca, |b| b.http1_only());
    let r = h1.get(server.url("/health")).send().await.expect("h1");
    assert_eq!(r.version(), Version::HTTP_11);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

#[tokio::test]
async fn tls_1_1_and_older_are_refused() {
    let server = TestServer::start().await;
    for (flag, version) in [("-tls1_1", "TLS 1.1"), ("-tls1", "TLS 1.0")] {
        let out = tokio::process::Command::new("openssl")
            // SECLEVEL=0 makes the client really offer the old version, so a refusal
            // can only come from the server.
            .args([
                "s_client",
                "-connect",
                server.authority(),
                flag,
                "-cipher",
                "DEFAULT:@SECLEVEL=0",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("openssl s_client (package openssl) must be installed");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("no peer certificate available"),
            "{version} was accepted: {text}"
        );
        assert!(
            text.contains("alert"),
            "the server should answer {version} with an alert: {text}"
        );
    }
    let ok = tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            server.authority(),
            "-tls1_2",
            "-CAfile",
        ])
        .arg(server.data_dir().join("ca.pem"))
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("openssl");
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(
        text.contains("Verify return code: 0 (ok)"),
        "TLS 1.2 with the dev CA should verify: {text}"
    );
}

async fn assert_healthy(server: &TestServer) {
    let r = server
        .client()
        .get(server.url("/health"))
        .send()
        .await
        .expect("health");
    assert_eq!(r.status(), StatusCode::OK);
}

fn subject_and_issuer(pem_path: &std::path::Path) -> (String, String, bool) {
    let pem = std::fs::read(pem_path).expect("read pem");
    let (_, parsed) = x509_parser::pem::parse_x509_pem(&pem).expect("pem");
    let cert = parsed.parse_x509().expect("x509");
    (
        cert.subject().to_string(),
        cert.issuer().to_string(),
        cert.is_ca(),
    )
}

#[tokio::test]
async fn development_keys_are_private_and_the_ca_and_leaf_have_distinct_names() {
    let server = TestServer::start().await;
    let dir = server.data_dir();
    for key in ["ca-key.pem", "server-key.pem", "natterjack.db"] {
        let mode = std::fs::metadata(dir.join(key))
            .expect(key)
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key} has mode {mode:o}");
    }
    let dir_mode = std::fs::metadata(&dir)
        .expect("data dir")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    let (ca_subject, ca_issuer, ca_is_ca) = subject_and_issuer(&dir.join("ca.pem"));
    let (leaf_subject, leaf_issuer, leaf_is_ca) = subject_and_issuer(&dir.join("server.pem"));
    assert!(ca_is_ca && !leaf_is_ca);
    assert_eq!(ca_subject, ca_issuer, "the CA is self-signed");
    assert_eq!(leaf_issuer, ca_subject, "the leaf is issued by the CA");
    assert_ne!(
        leaf_subject, ca_subject,
        "the leaf must not look self-signed"
    );
}

#[tokio::test]
async fn certificates_are_reused_on_the_next_start() {
    let server = TestServer::start().await;
    let ca_before = std::fs::read(server.data_dir().join("ca.pem")).expect("ca");
    let leaf_before = std::fs::read(server.data_dir().join("server.pem")).expect("leaf");
    let dir = server.stop().await;
    let again = TestServer::start_in(dir, &[]).await;
    assert_eq!(
        std::fs::read(again.data_dir().join("ca.pem")).expect("ca"),
        ca_before
    );
    assert_eq!(
        std::fs::read(again.data_dir().join("server.pem")).expect("leaf"),
        leaf_before
    );
    assert_healthy(&again).await;
}

#[tokio::test]
async fn a_missing_server_certificate_is_reissued_from_the_existing_ca() {
    let server = TestServer::start().await;
    let ca_before = std::fs::read(server.data_dir().join("ca.pem")).expect("ca");
    let dir = server.stop().await;
    std::fs::remove_file(dir.path().join("data/server.pem")).expect("rm leaf");
    let again = TestServer::start_in(dir, &[]).await;
    assert_eq!(
        std::fs::read(again.data_dir().join("ca.pem")).expect("ca"),
        ca_before
    );
    // The old CA file still validates the new leaf.
    assert_healthy(&again).await;
}

/// The cipher suite a TLS 1.3 handshake settles on when the client lists `suites`, in that
/// order of preference.
fn negotiated(
    server: &TestServer,
    suites: Vec<rustls::SupportedCipherSuite>,
) -> rustls::CipherSuite {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in
        rustls_pki_types::CertificateDer::pem_file_iter(server.data_dir().join("ca.pem")).unwrap()
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: suites,
        ..rustls::crypto::aws_lc_rs::default_provider()
    };
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut tcp = std::net::TcpStream::connect(server.authority()).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    conn.negotiated_cipher_suite().unwrap().suite()
}

#[tokio::test]
async fn the_server_chooses_the_cipher_suite_whatever_order_the_client_prefers() {
    use rustls::crypto::aws_lc_rs::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    let server = TestServer::start().await;
    let server_first = rustls::crypto::aws_lc_rs::default_provider().cipher_suites[0].suite();
    for client_order in [
        vec![
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS13_AES_128_GCM_SHA256,
            TLS13_AES_256_GCM_SHA384,
        ],
        vec![
            TLS13_AES_128_GCM_SHA256,
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS13_AES_256_GCM_SHA384,
        ],
    ] {
        let preferred = client_order[0].suite();
        assert_ne!(preferred, server_first);
        // A blocking handshake: the server is another process.
        let got = negotiated(&server, client_order);
        assert_eq!(
            got, server_first,
            "the client's first choice {preferred:?} won"
        );
    }
}

/// The validity period of the certificate in `pem_path`: (not before, not after), Unix time.
fn validity(pem_path: &std::path::Path) -> (i64, i64) {
    let pem = std::fs::read(pem_path).expect("read pem");
    let (_, parsed) = x509_parser::pem::parse_x509_pem(&pem).expect("pem");
    let cert = parsed.parse_x509().expect("x509");
    let v = cert.validity();
    (v.not_before.timestamp(), v.not_after.timestamp())
}

#[tokio::test]
async fn development_server_certificates_live_90_days_and_are_renewed_on_start_near_expiry() {
    const DAY: i64 = 86_400;
    let server = TestServer::start().await;
    let leaf = server.data_dir().join("server.pem");
    let (from, until) = validity(&leaf);
    assert!(
        (90 * DAY..=91 * DAY).contains(&(until - from)),
        "the server certificate lives {} days",
        (until - from) / DAY
    );
    let dir = server.stop().await;
    // The same CA issues a leaf that expires in 10 days, as if it had been issued long ago.
    let data = dir.path().join("data");
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(data.join("ca-key.pem")).unwrap())
            .unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &std::fs::read_to_string(data.join("ca.pem")).unwrap(),
        ca_key,
    )
    .unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "an old development server certificate",
    );
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(80);
    params.not_after = now + time::Duration::days(10);
    let key = rcgen::KeyPair::generate().unwrap();
    let old = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(data.join("server.pem"), old.pem()).unwrap();
    std::fs::write(data.join("server-key.pem"), key.serialize_pem()).unwrap();
    let (_, old_until) = validity(&data.join("server.pem"));
    let again = TestServer::start_in(dir, &[]).await;
    let (_, renewed_until) = validity(&again.data_dir().join("server.pem"));
    assert!(
        renewed_until - old_until > 70 * DAY,
        "the certificate expiring in 10 days was not renewed"
    );
    // Clients trusting the same CA connect to the renewed certificate.
    assert_healthy(&again).await;
}

#[tokio::test]
async fn a_private_key_readable_by_others_stops_the_server_from_starting() {
    let server = TestServer::start().await;
    let dir = server.stop().await;
    let key = dir.path().join("data/server-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (ok, _, stderr) = crate::support::cli(
        &dir.path().join("data"),
        &["serve", "--listen", "127.0.0.1:0"],
        "",
        &[],
    );
    assert!(!ok);
    assert!(
        stderr.contains("server-key.pem") && stderr.contains("chmod 600"),
        "{stderr}"
    );
}
