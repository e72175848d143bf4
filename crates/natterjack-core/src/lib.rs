//! # natterjack-core
//!
//! The part of Natterjack that knows what the API *means*, and nothing about how it is
//! carried: domain types that can only hold valid values, the access policy with its
//! escalation rule, password authentication, and the one service layer that every transport
//! (REST today, gRPC and the CLI alike) calls with the caller's identity first.
//!
//! Rules this crate keeps so that the transports cannot get security wrong:
//! - input becomes a domain type through a `parse` function or not at all
//!   ([`domain`]); the service layer accepts only domain types;
//! - every operation on a space needs a [`access::SpaceAccess`], a capability that only
//!   [`service::Service::authorize`] can create after consulting the ACL;
//! - storage is reached only through the [`ports::Store`] trait, so SQL stays in the storage
//!   crate;
//! - secrets are `secrecy` types and never implement `Debug` in clear.
#![forbid(unsafe_code)]

pub mod access;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod domain;
pub mod error;
pub mod feed;
pub mod policy;
pub mod ports;
pub mod principal;
pub mod rate;
pub mod service;
pub mod session;
pub mod store_cache;

pub use error::ServiceError;
