//! The owner and app roles `db init` creates or converges: login roles with no
//! cluster-wide power, the app role also unable to inherit another role's privileges.

use super::errors::{classify, refuse};
use super::identifier::Identifier;
use super::{ddl, scram};
use natterjack_core::ports::StoreError;
use sqlx::PgConnection;

/// Which of the two roles, and so which attributes it must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Owns the database, the schema and every table; runs migrations. Never serves.
    Owner,
    /// What the server connects as: exactly the grants the API needs.
    App,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Owner => "owner role",
            Kind::App => "app role",
        }
    }
}

/// Attributes as read from `pg_roles`: super, createdb, createrole, replication,
/// bypassrls, login, inherit.
type Attributes = (bool, bool, bool, bool, bool, bool, bool);

const CREATE_OWNER: &str = "CREATE ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L";
const CREATE_OWNER_NO_PASSWORD: &str = "CREATE ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD NULL";
const CREATE_APP: &str = "CREATE ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD %L";
const CREATE_APP_NO_PASSWORD: &str = "CREATE ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT PASSWORD NULL";
const ALTER_OWNER: &str =
    "ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS";
const ALTER_APP: &str = "ALTER ROLE %I WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT";
const SET_PASSWORD: &str = "ALTER ROLE %I WITH PASSWORD %L";
const LEAVE_ROLE: &str = "REVOKE %I FROM %I";

/// Creates the role, or converges an existing one to the attributes of its kind, and sets
/// its password to `password` (as a SCRAM verifier) unless it already verifies it. With no
/// password, a new role gets none (certificate or trust authentication) and an existing
/// role keeps its own. Returns what it did, one line per fact.
pub(crate) async fn ensure(
    admin: &mut PgConnection,
    kind: Kind,
    role: &Identifier,
    password: Option<&str>,
) -> Result<Vec<String>, StoreError> {
    let label = kind.label();
    let mut report = Vec::new();
    let existing: Option<Attributes> = sqlx::query_as(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin, rolinherit \
         FROM pg_roles WHERE rolname = $1",
    )
    .bind(role.as_str())
    .fetch_optional(&mut *admin)
    .await
    .map_err(classify)?;

    let Some(attributes) = existing else {
        // Computed before the statement so that a bad password fails before anything exists.
        let verifier = password.map(scram::verifier).transpose()?;
        let template = match (kind, &verifier) {
            (Kind::Owner, Some(_)) => CREATE_OWNER,
            (Kind::Owner, None) => CREATE_OWNER_NO_PASSWORD,
            (Kind::App, Some(_)) => CREATE_APP,
            (Kind::App, None) => CREATE_APP_NO_PASSWORD,
        };
        let mut args = vec![role.as_str()];
        args.extend(verifier.as_deref());
        ddl::run(admin, template, &args).await?;
        report.push(format!(
            "{label} {role}: created{}",
            if verifier.is_some() {
                " with a SCRAM-SHA-256 password"
            } else {
                " without a password (the URL has none)"
            }
        ));
        return Ok(report);
    };

    let (superuser, createdb, createrole, replication, bypassrls, login, inherit) = attributes;
    if superuser {
        return Err(refuse(format!(
            "the {label} {role} exists and is a superuser: refusing to change it; pick another role name in the URL"
        )));
    }
    let wanted_inherit = match kind {
        Kind::Owner => inherit,
        Kind::App => false,
    };
    if createdb || createrole || replication || bypassrls || !login || inherit != wanted_inherit {
        let template = match kind {
            Kind::Owner => ALTER_OWNER,
            Kind::App => ALTER_APP,
        };
        ddl::run(admin, template, &[role.as_str()]).await?;
        report.push(format!(
            "{label} {role}: exists; attributes reset to LOGIN NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS{}",
            if kind == Kind::App { " NOINHERIT" } else { "" }
        ));
    } else {
        report.push(format!("{label} {role}: exists"));
    }

    if kind == Kind::App {
        report.extend(leave_other_roles(admin, role).await?);
    }

    match password {
        None => report.push(format!(
            "{label} {role}: password left as is (the URL has none)"
        )),
        Some(password) => {
            let verifier = scram::verifier(password)?;
            match stored_verifier(admin, role).await? {
                Some(Some(stored)) if scram::matches(&stored, password) => {
                    report.push(format!("{label} {role}: password unchanged"));
                }
                unreadable_or_different => {
                    ddl::run(admin, SET_PASSWORD, &[role.as_str(), &verifier]).await?;
                    report.push(if unreadable_or_different.is_none() {
                        format!(
                            "{label} {role}: password set (this administrator cannot read stored verifiers to compare)"
                        )
                    } else {
                        format!("{label} {role}: password changed")
                    });
                }
            }
        }
    }
    Ok(report)
}

/// The role's stored verifier: `None` when this administrator may not read `pg_authid`
/// (only superusers may), `Some(None)` when the role has no password.
async fn stored_verifier(
    admin: &mut PgConnection,
    role: &Identifier,
) -> Result<Option<Option<String>>, StoreError> {
    let readable: bool =
        sqlx::query_scalar("SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')")
            .fetch_one(&mut *admin)
            .await
            .map_err(classify)?;
    if !readable {
        return Ok(None);
    }
    let stored: Option<String> =
        sqlx::query_scalar("SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = $1")
            .bind(role.as_str())
            .fetch_one(&mut *admin)
            .await
            .map_err(classify)?;
    Ok(Some(stored))
}

/// Removes the app role from every role it is a member of: NOINHERIT stops it from using
/// their privileges implicitly, but not from `SET ROLE` to them.
async fn leave_other_roles(
    admin: &mut PgConnection,
    role: &Identifier,
) -> Result<Vec<String>, StoreError> {
    let groups: Vec<String> = sqlx::query_scalar(
        "SELECT g.rolname FROM pg_auth_members m \
         JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member \
         WHERE r.rolname = $1 ORDER BY g.rolname",
    )
    .bind(role.as_str())
    .fetch_all(&mut *admin)
    .await
    .map_err(classify)?;
    let mut report = Vec::new();
    for group in groups {
        ddl::run(admin, LEAVE_ROLE, &[&group, role.as_str()]).await?;
        report.push(format!(
            "app role {role}: removed from role {group} (it could SET ROLE to it)"
        ));
    }
    Ok(report)
}
