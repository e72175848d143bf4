//! The PostgreSQL implementation of the storage ports: the production backend.
//!
//! Three roles, three jobs, so that the server's own connections can do exactly what the API
//! needs and nothing else:
//!
//! - an **administrator** runs [`PgStore::init`] once (`natterjack db init --admin-url`): it
//!   creates or converges the owner and app roles (`roles.rs`) and the database
//!   (`database.rs`), with passwords sent as SCRAM-SHA-256 verifiers (`scram.rs`) and every
//!   name quoted by the server (`ddl.rs`);
//! - the **owner** role runs [`PgStore::migrate`] (`migrate.rs`): it owns the schema, and
//!   after every migration it replaces the app role's grants with exactly the list in
//!   `grants.rs`;
//! - the **app** role serves through [`PgStore::open`], which refuses to start when the role
//!   holds anything more ([`check_least_privilege`]) or the schema is not current.
//!
//! Triggers refuse UPDATE/DELETE where the SQLite backend's do, and UPDATE, DELETE and
//! TRUNCATE on the audit log for every role, the owner included. Other triggers announce
//! every change to users, memberships and linked identities on a channel that each server
//! `LISTEN`s on ([`PgInvalidations`]), so that its read cache drops what another process
//! changed, and another announces every new message ([`PgPosted`]), so that watchers on
//! every node see what any node posts.
//! Every connection is made from a [`PgTarget`]: with `database.ca_file` its TLS is
//! terminated in this process (`tls/`), trusting that file's certificates alone.
//! Each sink's exporter holds a session-level advisory lock on a connection of
//! its own ([`PgExportLeases`]), so that one server of a deployment exports it.

mod audit;
mod database;
mod ddl;
mod errors;
mod export_lease;
mod grants;
mod identifier;
mod invalidations;
mod lifecycle;
mod listen;
mod migrate;
mod options;
mod posted;
mod privileges;
mod roles;
mod scram;
mod sealed;
mod sessions;
mod store;
mod target;
mod tls;

pub use export_lease::PgExportLeases;
pub use invalidations::{INVALIDATION_CHANNEL, PgInvalidations};
pub use lifecycle::PgStore;
pub use options::connect_options;
pub use posted::{POSTED_CHANNEL, PgPosted};
pub use privileges::check_least_privilege;
/// sqlx's connection options, re-exported so that callers need no direct sqlx dependency to
/// hold the three sets of options `init`, `migrate` and `open` take.
pub use sqlx::postgres::PgConnectOptions;
pub use target::PgTarget;
