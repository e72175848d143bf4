//! The browser harness itself (`support/browser.rs` and `tests/peers/browser/`), against what
//! every server serves: Chromium loads a real server's documents over TLS trusting exactly
//! its pinned key and refuses any other certificate, reports what goes wrong on a page, sends
//! a form from another site as a real cross-site POST, and keeps its screenshots.

use crate::support::TestServer;
use crate::support::browser::{self, server_pin};
use serde_json::{Value, json};

/// Whether `file` is a PNG with something in it.
fn is_png(file: &std::path::Path) -> bool {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

#[tokio::test]
async fn chromium_loads_health_and_openapi_from_a_server_whose_key_is_pinned_and_keeps_screenshots()
{
    let test = "browser_harness::chromium_loads_health_and_openapi_from_a_server_whose_key_is_pinned_and_keeps_screenshots";
    let server = TestServer::start().await;
    let params = json!({"urls": [server.url("/health"), server.url("/openapi.json")]});
    let Some(report) = browser::run(test, "load_pages", params, &[server_pin(&server)]).await
    else {
        return;
    };
    report.assert_clean();

    let pages = report.value.as_array().expect("one result per URL");
    assert_eq!(pages.len(), 2, "{report}");
    for page in pages {
        assert_eq!(page["status"], 200, "{report}");
        assert!(
            page["contentType"]
                .as_str()
                .is_some_and(|t| t.starts_with("application/json")),
            "{report}"
        );
    }
    let health: Value = serde_json::from_str(pages[0]["text"].as_str().expect("text"))
        .unwrap_or_else(|e| panic!("the health document as shown: {e}\n{report}"));
    assert!(health.is_object(), "{report}");
    let openapi = pages[1]["text"].as_str().expect("text");
    assert!(openapi.contains("\"openapi\""), "{report}");

    let dir = browser::screenshot_dir(test);
    assert!(
        dir.ends_with("console-screenshots/browser_harness.chromium_loads_health_and_openapi_from_a_server_whose_key_is_pinned_and_keeps_screenshots"),
        "{}",
        dir.display()
    );
    assert_eq!(report.shots.len(), 2, "{report}");
    for shot in &report.shots {
        assert!(
            shot.starts_with(&dir),
            "{} is not under {}",
            shot.display(),
            dir.display()
        );
        assert!(is_png(shot), "{} is not a PNG screenshot", shot.display());
    }
}

#[tokio::test]
async fn a_server_whose_key_is_not_pinned_is_refused_as_an_attacker_would_be() {
    let test =
        "browser_harness::a_server_whose_key_is_not_pinned_is_refused_as_an_attacker_would_be";
    // Two servers with certificates for the same address from the same kind of CA: only
    // the key tells them apart.
    let (trusted, attacker) = tokio::join!(TestServer::start(), TestServer::start());
    let params = json!({
        "urls": [attacker.url("/health"), trusted.url("/health")],
        "mustLoad": false,
    });
    let Some(report) = browser::run(test, "load_pages", params, &[server_pin(&trusted)]).await
    else {
        return;
    };
    report.assert_ok();
    let pages = report.value.as_array().expect("one result per URL");
    assert_eq!(pages[0]["loaded"], false, "{report}");
    let refusal = pages[0]["error"].as_str().unwrap_or_default();
    assert!(
        refusal.contains("net::ERR_CERT_AUTHORITY_INVALID"),
        "{report}"
    );
    assert!(
        report
            .failed_requests
            .iter()
            .any(|r| r.url == attacker.url("/health")
                && r.failure == "net::ERR_CERT_AUTHORITY_INVALID"),
        "{report}"
    );
    // The same browser, a moment later, takes the pinned server.
    assert_eq!(pages[1]["loaded"], true, "{report}");
    assert_eq!(pages[1]["status"], 200, "{report}");

    // And with no pin at all, the trusted server is refused too: the pin is all that lets
    // it in.
    let params = json!({"urls": [trusted.url("/health")], "mustLoad": false});
    let report = browser::run(test, "load_pages", params, &[])
        .await
        .expect("the browser ran a moment ago");
    report.assert_ok();
    assert_eq!(report.value[0]["loaded"], false, "{report}");
    assert!(
        report.value[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("net::ERR_CERT_AUTHORITY_INVALID")),
        "{report}"
    );
}

#[tokio::test]
async fn what_goes_wrong_on_a_page_is_reported_console_errors_csp_violations_and_failed_requests() {
    let test = "browser_harness::what_goes_wrong_on_a_page_is_reported_console_errors_csp_violations_and_failed_requests";
    let params = json!({"expect": "^logged by the page"});
    let Some(report) = browser::run(test, "harness_violations", params, &[]).await else {
        return;
    };
    report.assert_ok();
    let any = |list: &[String], text: &str| list.iter().any(|m| m.contains(text));
    assert!(
        any(&report.csp_violations, "inline style"),
        "the inline style's violation\n{report}"
    );
    assert!(
        any(&report.csp_violations, "harness.test/pixel.png"),
        "the image's violation\n{report}"
    );
    assert!(
        any(&report.console_errors, "inline style"),
        "a violation is a console error too\n{report}"
    );
    assert!(
        any(&report.console_errors, "uncaught Error: thrown by the page"),
        "the page's uncaught exception\n{report}"
    );
    assert!(
        any(&report.expected_console_errors, "logged by the page")
            && !any(&report.console_errors, "logged by the page"),
        "the error the scenario expected is set apart\n{report}"
    );
    assert!(
        report
            .failed_requests
            .iter()
            .any(|r| r.url.ends_with("/missing.css") && r.failure == "net::ERR_CONNECTION_REFUSED"),
        "the refused stylesheet\n{report}"
    );
    assert_eq!(report.shots.len(), 3, "{report}");
}

#[tokio::test]
async fn a_form_on_another_site_posts_to_the_server_cross_site_with_its_own_origin() {
    let test = "browser_harness::a_form_on_another_site_posts_to_the_server_cross_site_with_its_own_origin";
    let server = TestServer::start().await;
    // The JSON API takes no form on POST /health (whichever refusal it answers): what
    // matters here is how the request went out.
    let params = json!({
        "action": server.url("/health"),
        "fields": {"csrf": "forged", "name": "prize"},
        "expectStatus": null,
    });
    let Some(report) = browser::run(test, "csrf_cross_site", params, &[server_pin(&server)]).await
    else {
        return;
    };
    report.assert_clean();
    let status = report.value["status"].as_u64().expect("status");
    assert!((400..500).contains(&status), "{report}");
    assert_eq!(report.value["origin"], "https://attacker.test", "{report}");
    assert_eq!(report.value["secFetchSite"], "cross-site", "{report}");
    assert_eq!(report.value["cookieSent"], false, "{report}");
    assert_eq!(report.shots.len(), 2, "{report}");
}
