//! # natterjack
//!
//! The server binary and operator CLI: configuration, start-up, development certificates,
//! and the subcommands. Everything here wires the other crates together; it holds no
//! security decision of its own beyond refusing unsafe configuration.
#![forbid(unsafe_code)]

pub mod admin_socket;
pub mod audit_files;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod data_dir;
pub mod dev_ca;
pub mod disk_space;
pub mod encryption_key;
pub mod export;
mod operator;
pub mod read_cache;
pub mod resealer;
pub mod runtime;
pub mod shared_limits;
pub mod start_error;
pub mod storage;
pub mod syslog_facility;
pub mod tls;
