//! The gRPC API, black-box: the real binary, a real tonic client over mutual TLS, client
//! certificates issued by `natterjack certs issue-client`.

use crate::support::grpc_client::{issue, issue_for_nobody, request_id_of};
use crate::support::{TestServer, cli};
use natterjack_api::grpc::proto::admin_client::AdminClient;
use natterjack_api::grpc::proto::spaces_client::SpacesClient;
use natterjack_api::grpc::proto::{
    CreateSpaceRequest, GetMessageRequest, GetSpaceRequest, ListMessagesRequest, ListSpacesRequest,
    PostMessageRequest, QueryAuditRequest, WatchMessagesRequest,
};
use std::path::PathBuf;
use std::time::Duration;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

async fn channel(server: &TestServer, identity: Option<&(PathBuf, PathBuf)>) -> Channel {
    channel_with_window(server, identity, None).await
}

/// A channel whose HTTP/2 receive windows are `window` bytes (the client's default is
/// megabytes, which would let a non-reading client swallow a lot before flow control).
async fn channel_with_window(
    server: &TestServer,
    identity: Option<&(PathBuf, PathBuf)>,
    window: Option<u32>,
) -> Channel {
    crate::support::install_crypto();
    let ca = std::fs::read(server.data_dir().join("ca.pem")).unwrap();
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(cert).unwrap(),
            std::fs::read(key).unwrap(),
        ));
    }
    Channel::from_shared(server.grpc.clone().expect("grpc listener"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .initial_stream_window_size(window)
        .initial_connection_window_size(window)
        .connect_lazy()
}

async fn spaces(server: &TestServer, who: &(PathBuf, PathBuf)) -> SpacesClient<Channel> {
    SpacesClient::new(channel(server, Some(who)).await)
}

async fn admin(server: &TestServer) -> AdminClient<Channel> {
    AdminClient::new(server.admin_channel().await)
}

async fn create_space(client: &mut SpacesClient<Channel>, name: &str) -> i64 {
    client
        .create_space(CreateSpaceRequest {
            name: name.into(),
            owner: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .id
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let server = TestServer::start().await;
    server.user("alice").await;
    let mut client = SpacesClient::new(channel(&server, None).await);
    let refused = client.list_spaces(ListSpacesRequest {}).await;
    assert!(
        refused.is_err(),
        "a call without a client certificate succeeded"
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let server = TestServer::start().await;
    server.user("alice").await;
    let elsewhere = tempfile::tempdir().unwrap();
    let foreign = issue_for_nobody(&elsewhere.path().join("data"), "alice");
    let mut client = spaces(&server, &foreign).await;
    assert!(client.list_spaces(ListSpacesRequest {}).await.is_err());
    // The same name from the right CA works, so the refusal was the CA's.
    let own = issue(&server.data_dir(), "alice");
    let mut client = spaces(&server, &own).await;
    assert!(client.list_spaces(ListSpacesRequest {}).await.is_ok());
}

#[tokio::test]
async fn alice_acts_with_her_permissions_and_bob_cannot_read_her_space() {
    let server = TestServer::start().await;
    server.user("alice").await;
    server.user("bob").await;
    let alice = issue(&server.data_dir(), "alice");
    let bob = issue(&server.data_dir(), "bob");
    let mut as_alice = spaces(&server, &alice).await;
    let space = create_space(&mut as_alice, "garden").await;
    let posted = as_alice
        .post_message(PostMessageRequest {
            space_id: space,
            message: "hello over grpc".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(posted.author, "alice");
    let page = as_alice
        .list_messages(ListMessagesRequest {
            space_id: space,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.messages[0].message, "hello over grpc");

    let mut as_bob = spaces(&server, &bob).await;
    for refused in [
        as_bob
            .get_space(GetSpaceRequest { space_id: space })
            .await
            .map(drop),
        as_bob
            .list_messages(ListMessagesRequest {
                space_id: space,
                ..Default::default()
            })
            .await
            .map(drop),
        as_bob
            .post_message(PostMessageRequest {
                space_id: space,
                message: "intruder".into(),
            })
            .await
            .map(drop),
        // A bad field in a space bob cannot read tells him nothing either.
        as_bob
            .get_message(GetMessageRequest {
                space_id: space,
                message_id: 0,
            })
            .await
            .map(drop),
    ] {
        let status = refused.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert!(status.metadata().get("x-request-id").is_some());
    }
}

#[tokio::test]
async fn invalid_input_is_refused_naming_the_field() {
    let server = TestServer::start().await;
    server.user("alice").await;
    let alice = issue(&server.data_dir(), "alice");
    let mut client = spaces(&server, &alice).await;
    let space = create_space(&mut client, "garden").await;
    let status = client
        .post_message(PostMessageRequest {
            space_id: space,
            message: "bell \u{7} control".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("message:"),
        "{}",
        status.message()
    );
    let status = client
        .get_space(GetSpaceRequest { space_id: -3 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("space_id:"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_certificate_naming_no_existing_user_is_unauthenticated() {
    let server = TestServer::start().await;
    let ghost = issue_for_nobody(&server.data_dir(), "ghost");
    let status = spaces(&server, &ghost)
        .await
        .list_spaces(ListSpacesRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_flood_gets_resource_exhausted_with_retry_metadata() {
    let server = TestServer::start_with(&[
        ("NATTERJACK_RATE_LIMIT__ENABLED", "true"),
        ("NATTERJACK_RATE_LIMIT__PER_PRINCIPAL__BURST", "5"),
        ("NATTERJACK_RATE_LIMIT__PER_PRINCIPAL__PER_SECOND", "0.01"),
    ])
    .await;
    server.user("alice").await;
    let alice = issue(&server.data_dir(), "alice");
    let mut client = spaces(&server, &alice).await;
    let mut refused = None;
    for _ in 0..20 {
        if let Err(status) = client.list_spaces(ListSpacesRequest {}).await {
            refused = Some(status);
            break;
        }
    }
    let status = refused.expect("the flood was never refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let retry: u64 = status
        .metadata()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1);
    assert_eq!(
        status.metadata().get("ratelimit-policy").unwrap(),
        "per-principal"
    );
}

#[tokio::test]
async fn a_watcher_receives_new_messages_of_its_space_only() {
    let server = TestServer::start().await;
    server.user("alice").await;
    let alice = issue(&server.data_dir(), "alice");
    let mut client = spaces(&server, &alice).await;
    let watched = create_space(&mut client, "watched").await;
    let other = create_space(&mut client, "other").await;
    let mut stream = client
        .watch_messages(WatchMessagesRequest { space_id: watched })
        .await
        .unwrap()
        .into_inner();
    for (space, text) in [
        (other, "elsewhere"),
        (watched, "first"),
        (watched, "second"),
    ] {
        client
            .post_message(PostMessageRequest {
                space_id: space,
                message: text.into(),
            })
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let m = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("no message within 10 s")
            .unwrap()
            .expect("stream ended");
        seen.push(m.message);
    }
    assert_eq!(seen, ["first", "second"]);
}

#[tokio::test]
async fn a_watcher_that_never_reads_is_cut_off() {
    let server = TestServer::start_with(&[
        ("NATTERJACK_GRPC__WATCH_BUFFER", "4"),
        ("NATTERJACK_GRPC__WATCH_MESSAGES_PER_SEC", "100000"),
    ])
    .await;
    let alice_rest = server.user("alice").await;
    let alice = issue(&server.data_dir(), "alice");
    let mut client = spaces(&server, &alice).await;
    let space = create_space(&mut client, "busy").await;
    let mut watcher =
        SpacesClient::new(channel_with_window(&server, Some(&alice), Some(65_535)).await);
    let mut stream = watcher
        .watch_messages(WatchMessagesRequest { space_id: space })
        .await
        .unwrap()
        .into_inner();
    // Post far more than the stream window and the buffer hold, without reading.
    let body = "x".repeat(2000);
    let posts = 200;
    for _ in 0..posts {
        server.message(&alice_rest, space, &body).await;
    }
    let mut received = 0;
    let verdict = loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the stream neither delivered nor ended")
        {
            Ok(Some(_)) => received += 1,
            Ok(None) => panic!("the stream ended without a verdict after {received}"),
            Err(status) => break status,
        }
    };
    assert_eq!(verdict.code(), Code::ResourceExhausted, "{verdict:?}");
    assert!(received < posts, "a slow consumer received everything");
}

#[tokio::test]
async fn a_watch_stream_ends_at_its_maximum_duration() {
    let server = TestServer::start_with(&[("NATTERJACK_GRPC__WATCH_MAX_DURATION_SECS", "2")]).await;
    server.user("alice").await;
    let alice = issue(&server.data_dir(), "alice");
    let mut client = spaces(&server, &alice).await;
    let space = create_space(&mut client, "quiet").await;
    let started = std::time::Instant::now();
    let mut stream = client
        .watch_messages(WatchMessagesRequest { space_id: space })
        .await
        .unwrap()
        .into_inner();
    let end = tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("the stream outlived its maximum duration");
    assert_eq!(end.unwrap_err().code(), Code::DeadlineExceeded);
    assert!(started.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn watch_streams_per_user_are_capped() {
    let server = TestServer::start_with(&[("NATTERJACK_GRPC__WATCH_MAX_PER_PRINCIPAL", "2")]).await;
    server.user("alice").await;
    let alice = issue(&server.data_dir(), "alice");
    let mut client = spaces(&server, &alice).await;
    let space = create_space(&mut client, "popular").await;
    let mut open = Vec::new();
    for _ in 0..2 {
        open.push(
            client
                .watch_messages(WatchMessagesRequest { space_id: space })
                .await
                .unwrap(),
        );
    }
    let status = client
        .watch_messages(WatchMessagesRequest { space_id: space })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
}

#[tokio::test]
async fn every_grpc_call_leaves_audit_records_readable_on_the_admin_socket() {
    let server = TestServer::start().await;
    server.user("alice").await;
    server.user("bob").await;
    let alice = issue(&server.data_dir(), "alice");
    let bob = issue(&server.data_dir(), "bob");
    let space = create_space(&mut spaces(&server, &alice).await, "audited").await;
    let denied = spaces(&server, &bob)
        .await
        .get_space(GetSpaceRequest { space_id: space })
        .await
        .unwrap_err();
    let denied_id = request_id_of(&denied);
    // Completion records are queued; give the writer a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let records = admin(&server)
        .await
        .query_audit(QueryAuditRequest {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records;
    let grpc: Vec<_> = records.iter().filter(|r| r.transport == "grpc").collect();
    let create: Vec<_> = grpc
        .iter()
        .filter(|r| r.operation == "/natterjack.v1.Spaces/CreateSpace")
        .collect();
    assert_eq!(create.len(), 2, "an intent and a completion: {create:?}");
    assert!(
        create
            .iter()
            .any(|r| r.phase == "intent" && r.decision == "pending")
    );
    assert!(create.iter().any(|r| r.phase == "complete"
        && r.status == 0
        && r.principal == "alice"
        && r.auth_method == "mtls"));
    let refusal = grpc
        .iter()
        .find(|r| r.request_id == denied_id)
        .expect("the refused call is recorded under the id the client saw");
    assert_eq!(refusal.operation, "/natterjack.v1.Spaces/GetSpace");
    assert_eq!(refusal.status, Code::PermissionDenied as i32);
    assert_eq!(refusal.decision, "deny");
    assert_eq!(refusal.principal, "bob");
    assert_eq!(refusal.target, format!("space_id={space}"));
}

#[tokio::test]
async fn the_public_listener_exposes_only_spaces_and_health() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::{ServerReflectionRequest, server_reflection_response};

    let server = TestServer::start().await;
    server.user("alice").await;
    let alice = issue(&server.data_dir(), "alice");
    let public = channel(&server, Some(&alice)).await;
    SpacesClient::new(public.clone())
        .list_spaces(ListSpacesRequest {})
        .await
        .unwrap();

    let health = HealthClient::new(public.clone())
        .check(HealthCheckRequest {
            service: "natterjack.v1.Spaces".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");

    let status = AdminClient::new(public.clone())
        .query_audit(QueryAuditRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unimplemented,
        "Admin on the public listener"
    );

    let list = || ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let status = ServerReflectionClient::new(public)
        .server_reflection_info(tokio_stream::iter([list()]))
        .await
        .map(drop)
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::Unimplemented,
        "reflection on the public listener"
    );

    // The admin socket has reflection (naming Admin); the internal listener has metrics.
    let mut answers = ServerReflectionClient::new(server.admin_channel().await)
        .server_reflection_info(tokio_stream::iter([list()]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(server_reflection_response::MessageResponse::ListServicesResponse(services)) =
        answer.message_response
    else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<_> = services.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"natterjack.v1.Admin"), "{names:?}");
    let metrics = reqwest::get(format!("{}/metrics", server.internal.clone().unwrap()))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains("natterjack_requests_total{transport=\"grpc\""),
        "{text}"
    );
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused_before_it_reaches_the_service() {
    let server = TestServer::start().await;
    server.user("alice").await;
    let alice = issue(&server.data_dir(), "alice");
    let mut client = spaces(&server, &alice).await;
    let space = create_space(&mut client, "garden").await;
    let status = client
        .post_message(PostMessageRequest {
            space_id: space,
            message: "a".repeat(70 * 1024),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    let page = client
        .list_messages(ListMessagesRequest {
            space_id: space,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(page.messages.is_empty());
}

#[test]
fn issue_client_writes_a_private_key_only_its_owner_reads_and_certs_shows_the_client_ca() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (ok, out, err) = cli(&data, &["certs", "issue-client", "alice"], "", &[]);
    assert!(
        !ok && err.contains("no user alice"),
        "issued for a missing user: {out}{err}"
    );
    let (ok, out, err) = cli(
        &data,
        &["user", "add", "alice"],
        crate::support::PASSWORD,
        &[],
    );
    assert!(ok, "{out}{err}");
    let (cert, key) = issue(&data, "alice");
    assert!(cert.is_file());
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (ok, out, err) = cli(&data, &["certs", "issue-client", "alice"], "", &[]);
    assert!(
        !ok && err.contains("exists"),
        "a key was overwritten: {out}{err}"
    );
    let (ok, out, err) = cli(&data, &["certs", "issue-client", "no way"], "", &[]);
    assert!(!ok && err.contains("username"), "{out}{err}");
    let (ok, out, err) = cli(&data, &["certs"], "", &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "gRPC client CA (client certificates must chain to it): {}",
            data.join("ca.pem").display()
        )),
        "{out}"
    );
    let pem = std::fs::read(&cert).unwrap();
    let (_, der) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let named = natterjack_api::grpc::identity::principal_name(&der.contents).unwrap();
    assert_eq!(named, "alice");
}

#[tokio::test]
async fn the_peer_limit_refuses_a_flood_before_its_certificate_is_even_looked_up() {
    let server = TestServer::start_with(&[
        ("NATTERJACK_RATE_LIMIT__ENABLED", "true"),
        ("NATTERJACK_RATE_LIMIT__PER_IP__BURST", "3"),
        ("NATTERJACK_RATE_LIMIT__PER_IP__PER_SECOND", "0.01"),
    ])
    .await;
    // A certificate from the right CA for a user who does not exist: UNAUTHENTICATED while
    // the address has quota, RESOURCE_EXHAUSTED once it has none.
    let ghost = issue_for_nobody(&server.data_dir(), "ghost");
    let mut client = spaces(&server, &ghost).await;
    let mut codes = Vec::new();
    for _ in 0..6 {
        codes.push(
            client
                .list_spaces(ListSpacesRequest {})
                .await
                .unwrap_err()
                .code(),
        );
    }
    assert_eq!(codes[0], Code::Unauthenticated, "{codes:?}");
    assert_eq!(codes[5], Code::ResourceExhausted, "{codes:?}");
}

#[tokio::test]
async fn admin_is_served_on_an_owner_only_socket_and_the_metrics_listener_refuses_the_rest() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start().await;
    server.user("alice").await;
    let socket = server.admin_socket.clone().unwrap();
    assert_eq!(socket, server.data_dir().join("admin.sock"));
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the admin socket is mode {mode:o}");
    // Over the socket, the operator's calls work.
    admin(&server)
        .await
        .query_audit(QueryAuditRequest::default())
        .await
        .unwrap();
    // On the loopback TCP listener, Admin is not served by default: any local process could
    // reach it there.
    let internal = server.internal.clone().unwrap();
    let over_tcp = Channel::from_shared(internal.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let refused = AdminClient::new(over_tcp)
        .set_admin(natterjack_api::grpc::proto::SetAdminRequest {
            username: "alice".into(),
            admin: true,
        })
        .await
        .unwrap_err();
    assert_ne!(refused.code(), Code::Ok);
    let http = reqwest::Client::new();
    // A cross-origin "simple" request: HTTP/1.1, text/plain, a gRPC frame as the body.
    let mut frame = vec![0u8, 0, 0, 0, 9];
    frame.extend_from_slice(b"\x0a\x05alice\x10\x01");
    let r = http
        .post(format!("{internal}/natterjack.v1.Admin/SetAdmin"))
        .header("content-type", "text/plain")
        .body(frame)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A rebound host name.
    let r = http
        .get(format!("{internal}/metrics"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = http
        .get(format!("{internal}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // alice is still not an admin.
    let audit = server
        .call(
            Some(&crate::support::Creds::new(
                "alice",
                crate::support::PASSWORD,
            )),
            reqwest::Method::GET,
            "/audit",
            None,
        )
        .await;
    assert_eq!(audit.status(), 403);
}

#[tokio::test]
async fn the_metrics_listener_answers_a_missing_or_doubled_host_with_an_audited_400() {
    let server = TestServer::start().await;
    let authority = server.internal.clone().unwrap().replace("http://", "");
    for head in [
        "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n".to_owned(),
        format!(
            "GET /metrics HTTP/1.1\r\nHost: {authority}\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        ),
        "GET /metrics HTTP/1.1\r\nHost: bad host\r\nConnection: close\r\n\r\n".to_owned(),
    ] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut reply = String::new();
        tcp.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 400"), "{head:?}: {reply}");
        assert!(reply.contains("application/problem+json"), "{reply}");
        assert!(reply.contains("x-frame-options: DENY"), "{reply}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let refused = server
            .audit_records()
            .await
            .into_iter()
            .filter(|r| {
                r.record.transport.as_str() == "internal"
                    && r.record.status.map(|s| s.code()) == Some(400)
                    && r.record.reason.as_deref()
                        == Some("missing, repeated or invalid Host header")
            })
            .count();
        if refused == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{refused} audited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn with_admin_over_tcp_on_purpose_the_loopback_listener_serves_admin_too() {
    let server = TestServer::start_with(&[("NATTERJACK_INTERNAL__ADMIN_OVER_TCP", "true")]).await;
    let over_tcp = Channel::from_shared(server.internal.clone().unwrap())
        .unwrap()
        .connect()
        .await
        .unwrap();
    AdminClient::new(over_tcp)
        .query_audit(QueryAuditRequest::default())
        .await
        .unwrap();
}

#[test]
fn a_client_ca_file_without_a_certificate_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bogus = dir.path().join("client-ca.pem");
    std::fs::write(&bogus, "not a certificate\n").unwrap();
    let bogus = bogus.display().to_string();
    let (ok, _, stderr) = cli(
        &data,
        &["serve", "--listen", "127.0.0.1:0"],
        "",
        &[("NATTERJACK_GRPC__CLIENT_CA", bogus.as_str())],
    );
    assert!(!ok);
    assert!(stderr.contains("grpc.client_ca"), "{stderr}");
}

#[tokio::test]
async fn with_fail_closed_and_the_collector_down_posts_get_unavailable_while_reads_go_on() {
    // A collector address nothing listens on: every delivery attempt is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[audit]\nfail_closed = true\nmax_backlog = 6\n\n[[audit.sinks]]\nname = \"down\"\nkind = \"syslog-tcp\"\naddress = \"{address}\"\n"
    );
    let server = TestServer::start_configured(dir, &toml, &[]).await;
    server.user("alice").await;
    let alice = issue(&server.data_dir(), "alice");
    let mut client = spaces(&server, &alice).await;
    let space = create_space(&mut client, "held back").await;
    let mut refused = None;
    for i in 0..20 {
        let posted = client
            .post_message(PostMessageRequest {
                space_id: space,
                message: format!("m{i}"),
            })
            .await;
        if let Err(status) = posted {
            refused = Some(status);
            break;
        }
    }
    let status = refused.expect("posts were never paused");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("audit trail"), "{status:?}");
    client
        .list_messages(ListMessagesRequest {
            space_id: space,
            ..Default::default()
        })
        .await
        .expect("reads are still served");
}

#[tokio::test]
async fn repeated_unauthenticated_calls_raise_one_alert_naming_the_certificate_user() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[audit.alerts]\nunauthenticated = 3\n";
    let server = TestServer::start_configured(dir, toml, &[]).await;
    let ghost = issue_for_nobody(&server.data_dir(), "ghost");
    let mut client = spaces(&server, &ghost).await;
    for _ in 0..5 {
        let status = client.list_spaces(ListSpacesRequest {}).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let records = server.audit_records().await;
    let mut alerts: Vec<String> = records
        .iter()
        .filter(|r| r.record.phase == natterjack_core::audit::Phase::Alert)
        .map(|r| format!("{} {}", r.record.operation, r.record.target))
        .collect();
    alerts.sort();
    assert_eq!(
        alerts,
        [
            "alert unauthenticated client_ip=127.0.0.1",
            "alert unauthenticated principal=ghost"
        ]
    );
}
