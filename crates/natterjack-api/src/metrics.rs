//! Prometheus metrics, rendered on the internal listener only: what each transport served,
//! and what the controls refused. Labels carry route templates, policy names and reasons,
//! never ids, names or addresses, so their number stays bounded.

use axum::response::IntoResponse;
use metrics::Counter;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use natterjack_core::audit::Status;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once (later calls reuse it), so counters recorded
/// anywhere in the process show up at `/metrics`.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|()| handle)
        })
        .as_ref()
}

/// `GET /metrics`: the Prometheus text format.
pub(crate) async fn render() -> axum::response::Response {
    match install() {
        Some(handle) => (
            [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => http::StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// The request counters this thread has used, by transport, status and operation. Every
/// request is counted, and building its counter's key (the labels as owned strings, hashed
/// and looked up in the registry) cost more than the rest of counting; the labels are
/// bounded (route templates and status codes), and so is this cache.
type RequestCounters = HashMap<(&'static str, Status), HashMap<String, Counter>>;

thread_local! {
    static REQUESTS: RefCell<RequestCounters> = RefCell::new(HashMap::new());
}

/// A request answered by `transport` (`rest` or `grpc`): operation and status (an HTTP
/// code, or a gRPC code's name).
pub(crate) fn request(transport: &'static str, operation: &str, status: Status) {
    let counter = || {
        let label = match status {
            Status::Http(code) => code.to_string(),
            Status::Grpc(code) => format!("{:?}", tonic::Code::from_i32(i32::from(code))),
        };
        metrics::counter!(
            "natterjack_requests_total",
            "transport" => transport,
            "operation" => operation.to_owned(),
            "status" => label,
        )
    };
    // Until this process's recorder is installed, a counter handle may be a no-op one:
    // nothing is kept then.
    if !recorder_installed() {
        counter().increment(1);
        return;
    }
    REQUESTS.with_borrow_mut(|cache| {
        let by_operation = cache.entry((transport, status)).or_default();
        match by_operation.get(operation) {
            Some(counter) => counter.increment(1),
            None => {
                let made = counter();
                made.increment(1);
                by_operation.insert(operation.to_owned(), made);
            }
        }
    });
}

/// A request refused by a rate-limit policy.
pub(crate) fn rate_limit_refusal(transport: &'static str, policy: &'static str) {
    counted(
        "natterjack_rate_limit_refusals_total",
        transport,
        ("policy", policy),
    );
}

/// A failed authentication, by reason.
pub(crate) fn auth_failure(transport: &'static str, reason: &'static str) {
    counted(
        "natterjack_auth_failures_total",
        transport,
        ("reason", reason),
    );
}

/// Whether this process's recorder is installed: until it is, a counter handle may be a
/// no-op one, so none is kept.
fn recorder_installed() -> bool {
    matches!(HANDLE.get(), Some(Some(_)))
}

/// The refusal counters this thread has used, by metric name, transport and the value of
/// their one other label (each name has its own label), all of them static strings. A
/// flood is answered with refusals, each counted: looking its counter up in the registry
/// (the key built and hashed) was a visible share of a refusal's cost.
type StaticCounters = HashMap<(&'static str, &'static str, &'static str), Counter>;

thread_local! {
    static STATIC_COUNTERS: RefCell<StaticCounters> = RefCell::new(HashMap::new());
}

/// Adds one to the counter `name` labelled with `transport` and `label`, registered the
/// first time this thread counts it (and every time while no recorder is installed).
fn counted(
    name: &'static str,
    transport: &'static str,
    (key, value): (&'static str, &'static str),
) {
    let make = || metrics::counter!(name, "transport" => transport, key => value);
    if !recorder_installed() {
        make().increment(1);
        return;
    }
    STATIC_COUNTERS.with_borrow_mut(|cache| {
        cache
            .entry((name, transport, value))
            .or_insert_with(make)
            .increment(1);
    });
}

/// A TLS handshake that failed or timed out on a public listener (`rest` or `grpc`).
pub(crate) fn tls_handshake_failure(listener: &'static str, reason: &'static str) {
    metrics::counter!(
        "natterjack_tls_handshake_failures_total",
        "listener" => listener,
        "reason" => reason,
    )
    .increment(1);
}

/// Connections open on a public listener now.
pub(crate) fn connections_open(listener: &'static str, open: usize) {
    metrics::gauge!("natterjack_connections_open", "listener" => listener).set(open as f64);
}

/// A connection closed before it was served: its client held too many already
/// (`per_client`), or the listener was full and no slot freed in time (`full`).
pub(crate) fn connection_refused(listener: &'static str, reason: &'static str) {
    metrics::counter!(
        "natterjack_connections_refused_total",
        "listener" => listener,
        "reason" => reason,
    )
    .increment(1);
}

/// An idle connection closed to make room for a new one at the listener's cap.
pub(crate) fn connection_evicted(listener: &'static str) {
    metrics::counter!("natterjack_connections_evicted_total", "listener" => listener).increment(1);
}

/// A connection the server closed, by reason: `first_request` (no request head in time
/// after the handshake), `idle` (keep-alive or HTTP/2 idle timeout), `evicted`, `age`,
/// `shutdown`.
pub(crate) fn connection_closed(listener: &'static str, reason: &'static str) {
    metrics::counter!(
        "natterjack_connections_closed_total",
        "listener" => listener,
        "reason" => reason,
    )
    .increment(1);
}

/// Streams that HTTP/2 refused (`REFUSED_STREAM`) because their connection already had
/// `max_concurrent_streams` open: no service ever saw them, so this is their only count.
pub(crate) fn streams_refused(listener: &'static str, count: u64) {
    metrics::counter!("natterjack_streams_refused_total", "listener" => listener).increment(count);
}
