//! The README's curl walk-through, run as written against a fresh server, so the README
//! cannot drift from the API.

use crate::support::TestServer;

/// The first ```sh block after the walk-through heading.
fn walkthrough() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README");
    let section = readme
        .split("## A walk-through with curl")
        .nth(1)
        .expect("walk-through section");
    let block = section.split("```sh\n").nth(1).expect("sh block");
    block.split("```").next().expect("block end").to_owned()
}

#[tokio::test]
async fn the_readme_walkthrough_runs_as_written_and_ends_with_a_refused_stranger() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("curl is needed for this test (.ci/run installs it)");
    }
    // With the default rate limits on, as a newcomer would run it.
    let server = TestServer::start_with(&[("NATTERJACK_RATE_LIMIT__ENABLED", "true")]).await;
    let script = walkthrough()
        .replace("https://127.0.0.1:8443", &server.base)
        .replace(
            "data/ca.pem",
            &server.data_dir().join("ca.pem").display().to_string(),
        );
    let out = tokio::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .output()
        .await
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected_in_order = [
        r#"{"username":"alice"}"#,
        r#"{"username":"bob"}"#,
        r#""name":"general","owner":"alice""#,
        r#""message":"hello bob""#,
        r#""messages":[{"id":1"#,
        r#""title":"Forbidden","status":403"#,
        r#"{"username":"bob","permissions":"r"}"#,
        r#""author":"alice","message":"hello bob""#,
        r#"{"username":"eve"}"#,
        "HTTP/2 403",
        "content-type: application/problem+json",
    ];
    let mut rest = stdout.as_ref();
    for needle in expected_in_order {
        let at = rest
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing (in order) from:\n{stdout}"));
        rest = &rest[at + needle.len()..];
    }
}
