//! The security pipeline, in one place and in no transport's terms.
//!
//! Every request of every transport passes these steps in this order; [`steps::admit`]
//! runs 1 to 6 and [`steps::complete`] the last, so the order is written once:
//!
//! | step | control | where |
//! | --- | --- | --- |
//! | 0 | transport: TLS, connection caps, handshake, header-read and idle deadlines, request deadline | [`crate::transport`], the adapters |
//! | 1 | rate limiting: before headers, bodies or hashing are looked at | [`rate_limit`] |
//! | 2 | the transport's form checks (REST: `Host`, header limits 431, JSON body type 415, body limit 413) | [`steps::Inbound::well_formed`] |
//! | 3 | authentication: a credential through the core's identity providers, then the per-principal limit | [`natterjack_core::auth`] |
//! | 4 | the operation's need of a principal | [`operation`] |
//! | 5 | audit: a durable intent record before any state change | [`natterjack_core::audit`] |
//! | 6 | access control: the permission the operation declares, on the addressed space | [`operation`] |
//! | 7 | validated input: wire format into domain types | the adapters' handlers |
//! | 8 | service and storage | `natterjack-core`, `natterjack-storage` |
//! | 9 | safe output and the `complete` audit record | the adapters' error mapping, [`headers`], [`steps::complete`] |
//!
//! A step refuses with a [`Refusal`]; each transport maps it once (`rest/error.rs`,
//! `grpc/status.rs`). The adapters (`rest::secure`, `grpc::call`) only describe a request
//! ([`steps::Call`], [`steps::Inbound`]) and answer.

pub mod draft;
pub mod headers;
pub mod operation;
pub mod rate_limit;
pub mod refusal;
pub mod request_id;
pub mod steps;

pub use draft::Draft;
pub use operation::{Need, Operation};
pub use refusal::{CredentialError, Refusal};
pub use steps::{Admitted, Call, Inbound, admit, complete};

use std::time::Duration;

/// Largest request body accepted, in bytes (413 beyond).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Most header fields a request may carry (431 beyond).
pub const MAX_HEADER_FIELDS: usize = 100;

/// Largest header list accepted, counted as HTTP/2 counts it (RFC 9113 §6.5.2: name, value
/// and 32 bytes per field), for HTTP/1.1 and HTTP/2 alike (431 beyond).
pub const MAX_HEADER_LIST_BYTES: usize = 16 * 1024;

/// Limits applied inside the pipeline.
#[derive(Debug, Clone, Copy)]
pub struct PipelineLimits {
    /// Time allowed for a whole request, handler included (408 beyond).
    pub request_timeout: Duration,
}

impl Default for PipelineLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn sources(dir: &Path, into: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, into);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                into.push((path.display().to_string(), text));
            }
        }
    }

    #[test]
    fn the_pipeline_uses_nothing_of_the_transports_that_use_it() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pipeline");
        let mut files = Vec::new();
        sources(&dir, &mut files);
        assert!(files.len() >= 8, "{} files", files.len());
        for (path, text) in &files {
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for module in ["rest", "grpc", "transport"] {
                    let transport = format!("crate::{module}");
                    assert!(
                        !line.contains(&transport),
                        "{path} uses {transport}: `{}`",
                        line.trim()
                    );
                }
            }
        }
    }
}
