//! The gRPC adapter: the same service layer as REST, for service-to-service callers that
//! authenticate with a client certificate (mutual TLS).
//!
//! - [`call`]: the adapter of the pipeline for one call; [`operations`]: method names to
//!   the operations whose permissions the pipeline enforces.
//! - [`spaces`] and [`watch`]: the public `Spaces` service; [`admin`]: the internal one.
//! - [`convert`]: proto ⇄ domain, in one place; [`status`]: the one error mapping.
//! - [`identity`]: which user a client certificate names.
//! - [`server`]: the public (mTLS) listener; [`internal`]: the operators' admin socket and
//!   metrics listener.
//! - [`refusals`]: the record of calls that tonic or h2 refuse before the pipeline runs.

pub mod admin;
pub mod call;
pub mod convert;
pub mod identity;
pub mod internal;
pub mod operations;
pub mod refusals;
pub mod server;
pub mod spaces;
pub mod status;
mod watch;

pub use call::{GrpcLimits, GrpcState};
pub use internal::{serve_admin_socket, serve_metrics};
pub use server::{GrpcTransport, serve_public};

/// Code generated from `proto/natterjack/v1/*.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("natterjack.v1");

    /// The encoded descriptors of every message and service, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("natterjack_descriptor");
}
