//! The database `db init` creates or converges: owned by the owner role, reachable by the
//! app role and nobody else, with a `public` schema only the owner can create objects in.

use super::ddl;
use super::errors::classify;
use super::identifier::Identifier;
use natterjack_core::ports::StoreError;
use sqlx::PgConnection;

const CREATE_DATABASE: &str = "CREATE DATABASE %I OWNER %I ENCODING 'UTF8' TEMPLATE template0";
const ALTER_DATABASE_OWNER: &str = "ALTER DATABASE %I OWNER TO %I";
const DATABASE_PRIVILEGES: &[&str] = &[
    // PUBLIC holds CONNECT and TEMP by default: take both away.
    "REVOKE ALL ON DATABASE %I FROM PUBLIC",
    "REVOKE ALL ON DATABASE %I FROM %I",
    "GRANT CONNECT ON DATABASE %I TO %I",
];

const CREATE_SCHEMA: &str = "CREATE SCHEMA public AUTHORIZATION %I";
const SCHEMA_OWNER: &str = "ALTER SCHEMA public OWNER TO %I";
const SCHEMA_PRIVILEGES: &[&str] = &[
    "REVOKE ALL ON SCHEMA public FROM PUBLIC",
    "REVOKE ALL ON SCHEMA public FROM %I",
    "GRANT USAGE ON SCHEMA public TO %I",
];

/// Creates the database owned by `owner` if it does not exist (or hands an existing one to
/// `owner`), then leaves CONNECT to `app` alone among non-owners. Run on a connection to
/// any other database of the cluster.
pub(crate) async fn ensure(
    admin: &mut PgConnection,
    database: &Identifier,
    owner: &Identifier,
    app: &Identifier,
) -> Result<Vec<String>, StoreError> {
    let mut report = Vec::new();
    let current_owner: Option<String> = sqlx::query_scalar(
        "SELECT r.rolname::text FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1",
    )
    .bind(database.as_str())
    .fetch_optional(&mut *admin)
    .await
    .map_err(classify)?;
    match current_owner {
        None => {
            ddl::run(admin, CREATE_DATABASE, &[database.as_str(), owner.as_str()]).await?;
            report.push(format!("database {database}: created, owned by {owner}"));
        }
        Some(current) if current == owner.as_str() => {
            report.push(format!("database {database}: exists, owned by {owner}"));
        }
        Some(current) => {
            ddl::run(
                admin,
                ALTER_DATABASE_OWNER,
                &[database.as_str(), owner.as_str()],
            )
            .await?;
            report.push(format!(
                "database {database}: exists; owner changed from {current} to {owner}"
            ));
        }
    }

    let acl = "SELECT datacl::text FROM pg_database WHERE datname = $1";
    let before: Option<String> = sqlx::query_scalar(acl)
        .bind(database.as_str())
        .fetch_one(&mut *admin)
        .await
        .map_err(classify)?;
    for template in DATABASE_PRIVILEGES {
        ddl::run(admin, template, &[database.as_str(), app.as_str()]).await?;
    }
    let after: Option<String> = sqlx::query_scalar(acl)
        .bind(database.as_str())
        .fetch_one(&mut *admin)
        .await
        .map_err(classify)?;
    report.push(if before == after {
        format!("database {database}: privileges already in place (CONNECT for {app}, nothing for PUBLIC)")
    } else {
        format!("database {database}: privileges set (CONNECT for {app}, nothing for PUBLIC)")
    });
    Ok(report)
}

/// Inside the database: hands schema `public` to `owner` and leaves `app` only USAGE on it,
/// PUBLIC nothing. Run on an administrator's connection to the database itself.
pub(crate) async fn lock_down_schema(
    admin_in_db: &mut PgConnection,
    owner: &Identifier,
    app: &Identifier,
) -> Result<Vec<String>, StoreError> {
    let mut report = Vec::new();
    let state = "SELECT r.rolname::text, n.nspacl::text FROM pg_namespace n \
                 JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = 'public'";
    let before: Option<(String, Option<String>)> = sqlx::query_as(state)
        .fetch_optional(&mut *admin_in_db)
        .await
        .map_err(classify)?;
    if before.is_none() {
        ddl::run(admin_in_db, CREATE_SCHEMA, &[owner.as_str()]).await?;
        report.push(format!("schema public: created, owned by {owner}"));
    }
    ddl::run(admin_in_db, SCHEMA_OWNER, &[owner.as_str()]).await?;
    for template in SCHEMA_PRIVILEGES {
        // format() ignores arguments a template has no placeholder for.
        ddl::run(admin_in_db, template, &[app.as_str()]).await?;
    }
    let after: Option<(String, Option<String>)> = sqlx::query_as(state)
        .fetch_optional(&mut *admin_in_db)
        .await
        .map_err(classify)?;
    report.push(if before == after {
        format!("schema public: exists, owned by {owner}; privileges already in place (USAGE for {app}, nothing for PUBLIC)")
    } else {
        format!("schema public: owned by {owner}; privileges set (USAGE for {app}, nothing for PUBLIC)")
    });
    Ok(report)
}
