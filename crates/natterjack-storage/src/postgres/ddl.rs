//! DDL with identifiers quoted by the server, never spliced in by the client.
//!
//! DDL cannot take bound parameters for names, so each statement is a constant template
//! with `%I` (identifier) and `%L` (literal) placeholders; PostgreSQL's own `format()`
//! fills them from bound parameters, and the text it returns is then run as is.

use super::errors::classify;
use natterjack_core::ports::StoreError;
use sqlx::PgConnection;

/// Runs `template` (a constant of this crate, never input) with its placeholders filled by
/// the server from `args`, in order.
pub(crate) async fn run(
    conn: &mut PgConnection,
    template: &'static str,
    args: &[&str],
) -> Result<(), StoreError> {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let statement: String = sqlx::query_scalar("SELECT format($1, VARIADIC $2::text[])")
        .bind(template)
        .bind(args)
        .fetch_one(&mut *conn)
        .await
        .map_err(classify)?;
    sqlx::raw_sql(&statement)
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
    Ok(())
}
