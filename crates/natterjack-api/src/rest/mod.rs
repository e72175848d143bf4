//! The REST/JSON adapter: the pipeline's HTTP side, routes, request and response types,
//! one error mapping.

pub mod error;
pub mod extract;
mod handlers;
pub mod host;
pub mod hygiene;
pub mod openapi;
pub mod operations;
mod panic;
pub mod routes;
mod safe_output;
pub mod secure;
pub mod views;

pub use routes::routes;
pub use secure::secure_pipeline;
