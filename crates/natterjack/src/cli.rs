//! Command-line interface. Flags override environment variables, which override the file.

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Natterjack: a secure-by-default API for spaces, permissions and messages.
#[derive(Debug, Parser)]
#[command(name = "natterjack", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file. Environment variables (NATTERJACK_*, nested keys joined by
    /// `__`, e.g. NATTERJACK_REST__LISTEN) override it; flags override both.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the database, certificates and keys (default ./data).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the HTTPS API (creates the data directory, database and development
    /// certificates on first run).
    Serve(ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// List or end the console's browser sessions (on every node sharing the database: a
    /// revoked session is refused on its next request).
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Prepare a PostgreSQL database (SQLite needs no preparation).
    #[command(subcommand)]
    Db(DbCommand),
    /// Manage the keys that seal messages and space names at rest.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Write a consistent copy of the SQLite database while the server runs (PostgreSQL:
    /// use pg_dump). The copy stays sealed: restoring it needs the key-encryption key, and
    /// verifying its audit chain needs the audit key; keep both apart from the copy.
    Backup {
        /// The new file to write (refused if it exists), created 0600.
        file: PathBuf,
    },
    /// Show what the server trusts, or issue a client certificate for gRPC (without a
    /// subcommand: `show`).
    Certs {
        /// What to do.
        #[command(subcommand)]
        command: Option<CertsCommand>,
    },
    /// Print the OpenAPI 3.1 document of the REST API (as served at /openapi.json).
    Openapi,
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the whole hash chain against the key and the anchored head: prints `OK` with
    /// the record count, or the id of the first bad record; exits 1 when broken.
    Verify,
}

/// `keys` subcommands. On PostgreSQL, `rotate`, `destroy` and `rewrap` connect as the
/// schema owner (database.owner_url): the server's role can only read the data keys.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Show each data key (current, retired, destroyed) with the rows it seals, and the
    /// key-encryption key's fingerprint.
    Status,
    /// Make a new data key current (new writes use it; running servers pick it up within
    /// encryption.key_poll_secs), then re-seal every older row here, in bounded batches,
    /// with a progress bar. Interrupting is safe: running servers finish the pass, and so
    /// does the next start of one.
    Rotate {
        /// Only make the new key current; leave the re-sealing to the servers.
        #[arg(long)]
        no_wait: bool,
    },
    /// Erase a retired data key. Refused while it is current or any row is sealed under it.
    Destroy {
        /// The key id, as `keys status` shows it.
        id: u32,
    },
    /// Re-wrap every data key with a new key-encryption key (the rows are not touched),
    /// then point the configuration at the new key and restart the servers.
    Rewrap {
        /// The new key-encryption key: a file holding 64 hex digits, 0600. Created with a
        /// new random key if it does not exist.
        #[arg(long, value_name = "PATH")]
        new_key_file: PathBuf,
    },
}

/// `certs` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Print the certificate files in use and the CA that gRPC client certificates must
    /// chain to.
    Show,
    /// Issue a client certificate for an existing user from the development CA: NAME.pem
    /// and NAME-key.pem (0600), with the SAN URI natterjack:user:NAME. Refused for a user
    /// that does not exist (yet).
    IssueClient {
        /// The username the certificate names.
        name: String,
        /// Output directory (default <data_dir>/clients).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// `db` subcommands.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// As a PostgreSQL administrator, create or converge the owner role and the app role
    /// named by database.owner_url and database.url (with their passwords, sent as SCRAM
    /// verifiers), the database (owned by the owner role, closed to PUBLIC) and the schema
    /// permissions. Safe to run again. Then run `natterjack migrate`.
    Init {
        /// An administrator's URL, e.g. postgres://postgres@db.example/postgres. Prefer the
        /// environment variable: arguments are visible to other local users.
        #[arg(
            long,
            env = "NATTERJACK_DB_ADMIN_URL",
            value_name = "URL",
            hide_env_values = true
        )]
        admin_url: SecretString,
    },
}

/// Options of `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address for the REST listener, e.g. 127.0.0.1:8443 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

/// `sessions` subcommands. Passwords are read from a prompt (or one line of standard input when
/// it is not a terminal), never from arguments, which other local users can see.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Every session: its id (the SHA-256 of its token, which cannot be used to present
    /// it), user, sign-in method, address, opened and last seen.
    List,
    /// End sessions: one by its id as `list` shows it, or every session of a user.
    Revoke {
        /// The session id (64 hex digits).
        #[arg(required_unless_present = "user", conflicts_with = "user")]
        id: Option<String>,
        /// End every session of this user instead.
        #[arg(long)]
        user: Option<String>,
    },
}

/// `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account (works even when self-registration is disabled).
    Add {
        /// The username: 2 to 30 ASCII letters or digits, starting with a letter.
        name: String,
    },
    /// Set a new password for an account; cached logins with the old one stop working.
    Passwd {
        /// The username.
        name: String,
    },
    /// Grant or revoke the global admin role.
    Admin {
        /// The username.
        name: String,
        /// Grant the admin role.
        #[arg(long, conflicts_with = "revoke", required_unless_present = "revoke")]
        grant: bool,
        /// Revoke the admin role.
        #[arg(long)]
        revoke: bool,
    },
    /// Link an external identity to an account, so that it logs in as that account: an
    /// OpenID Connect issuer and the `sub` of its tokens, or a directory and a username.
    Link {
        /// The username of the existing account.
        name: String,
        /// Where the identity is verified: the issuer URL exactly as configured in
        /// `[[auth.oidc]]`, the directory's `ldap://host:port` / `ldaps://host:port`, or
        /// `saml:` followed by the SAML identity provider's entity id.
        #[arg(long)]
        source: String,
        /// Who the source says it is: the token's `sub`, or the directory username in
        /// lower case.
        #[arg(long)]
        subject: String,
    },
}
