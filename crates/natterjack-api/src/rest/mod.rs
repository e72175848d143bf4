//! The REST/JSON adapter: routes, request and response types, one error mapping.

pub mod error;
pub mod extract;
mod handlers;
pub mod openapi;
pub mod routes;
pub mod views;

pub use routes::routes;
