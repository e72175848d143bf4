//! An independent client: Python grpcio (PyPI) calls the gRPC API over mutual TLS, and a
//! call without a client certificate is refused. `.ci/run` installs grpcio; elsewhere the
//! test says loudly that it was skipped when grpcio is missing.

use crate::support::{TestServer, cli};

fn grpcio_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import grpc, grpc_tools"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn python_grpcio_calls_over_mutual_tls_and_is_refused_without_a_certificate() {
    if !grpcio_available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "grpcio must be installed in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: python grpcio test: `pip install grpcio grpcio-tools` to run it");
        return;
    }
    let server = TestServer::start().await;
    server.user("alice").await;
    let data = server.data_dir();
    let (ok, out, err) = cli(&data, &["certs", "issue-client", "alice"], "", &[]);
    assert!(ok, "{out}{err}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let grpc = server.grpc.clone().unwrap();
    let target = grpc.trim_start_matches("https://").to_owned();
    let output = tokio::process::Command::new("python3")
        .arg(root.join("tests/it/grpc_python/client.py"))
        .args(["--target", &target])
        .arg("--ca")
        .arg(data.join("ca.pem"))
        .arg("--cert")
        .arg(data.join("clients/alice.pem"))
        .arg("--key")
        .arg(data.join("clients/alice-key.pem"))
        .arg("--proto-root")
        .arg(root.join("../../proto"))
        .args(["--space-name", "from python"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["created"]["owner"], "alice", "{result}");
    assert_eq!(result["created"]["name"], "from python", "{result}");
    assert_eq!(
        result["listed"],
        serde_json::json!(["from python"]),
        "{result}"
    );
    assert_eq!(result["without_certificate"], "UNAVAILABLE", "{result}");
}
