//! The check `open` (and `natterjack serve`) runs before serving: the role it connected as
//! must hold no more than the app role's grants. A server connected as a superuser or as
//! the owner would make the grants, and so least privilege, meaningless.

use super::errors::{classify, refuse};
use natterjack_core::ports::StoreError;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection, Row};

/// What the database says about the current role, in one round trip.
struct RoleFacts {
    name: String,
    superuser: bool,
    create_role: bool,
    create_db: bool,
    bypass_rls: bool,
    replication: bool,
    owned_relation_count: i64,
    owned_relations: Option<String>,
    owned_schemas: Option<String>,
    owns_database: bool,
    create_on_database: bool,
    temp_on_database: bool,
    create_on_schemas: Option<String>,
    member_of: Option<String>,
    excess_table_privileges: Option<String>,
}

impl<'r> FromRow<'r, PgRow> for RoleFacts {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            name: row.try_get("name")?,
            superuser: row.try_get("superuser")?,
            create_role: row.try_get("create_role")?,
            create_db: row.try_get("create_db")?,
            bypass_rls: row.try_get("bypass_rls")?,
            replication: row.try_get("replication")?,
            owned_relation_count: row.try_get("owned_relation_count")?,
            owned_relations: row.try_get("owned_relations")?,
            owned_schemas: row.try_get("owned_schemas")?,
            owns_database: row.try_get("owns_database")?,
            create_on_database: row.try_get("create_on_database")?,
            temp_on_database: row.try_get("temp_on_database")?,
            create_on_schemas: row.try_get("create_on_schemas")?,
            member_of: row.try_get("member_of")?,
            excess_table_privileges: row.try_get("excess_table_privileges")?,
        })
    }
}

const FACTS: &str = "\
SELECT r.rolname::text AS name, r.rolsuper AS superuser, r.rolcreaterole AS create_role, \
       r.rolcreatedb AS create_db, r.rolbypassrls AS bypass_rls, r.rolreplication AS replication, \
       (SELECT count(*) FROM pg_catalog.pg_class c WHERE c.relowner = r.oid) AS owned_relation_count, \
       (SELECT string_agg(x.relname::text, ', ') FROM (SELECT c.relname FROM pg_catalog.pg_class c \
         WHERE c.relowner = r.oid ORDER BY c.relname LIMIT 5) x) AS owned_relations, \
       (SELECT string_agg(n.nspname::text, ', ' ORDER BY n.nspname) FROM pg_catalog.pg_namespace n \
         WHERE n.nspowner = r.oid) AS owned_schemas, \
       EXISTS (SELECT 1 FROM pg_catalog.pg_database d \
         WHERE d.datname = current_database() AND d.datdba = r.oid) AS owns_database, \
       has_database_privilege(current_database(), 'CREATE') AS create_on_database, \
       has_database_privilege(current_database(), 'TEMP') AS temp_on_database, \
       (SELECT string_agg(n.nspname::text, ', ' ORDER BY n.nspname) FROM pg_catalog.pg_namespace n \
         WHERE has_schema_privilege(n.oid, 'CREATE')) AS create_on_schemas, \
       (SELECT string_agg(g.rolname::text, ', ' ORDER BY g.rolname) FROM pg_catalog.pg_auth_members m \
         JOIN pg_catalog.pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid) AS member_of, \
       (SELECT string_agg(t.tbl || ' ' || t.privilege, ', ' ORDER BY t.tbl, t.privilege) FROM ( \
         SELECT c.relname::text AS tbl, p.privilege FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' \
         CROSS JOIN (VALUES ('UPDATE'), ('DELETE'), ('TRUNCATE'), ('REFERENCES'), ('TRIGGER')) p(privilege) \
         WHERE c.relkind = 'r' AND has_table_privilege(c.oid, p.privilege) \
           AND NOT (p.privilege = 'DELETE' AND c.relname IN ('messages', 'memberships', \
             'console_sessions', 'console_pending_logins')) \
           AND NOT (p.privilege = 'UPDATE' AND c.relname IN ('users', 'memberships', 'spaces', 'messages', 'row_ids'))) t \
       ) AS excess_table_privileges \
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user";

/// Every reason the role is more than an app role should be, in words for the operator.
fn reasons(f: &RoleFacts) -> Vec<String> {
    let mut why = Vec::new();
    let mut flag = |on: bool, text: &str| {
        if on {
            why.push(text.to_owned());
        }
    };
    flag(f.superuser, "it is a superuser");
    flag(f.create_role, "it has CREATEROLE");
    flag(f.create_db, "it has CREATEDB");
    flag(f.bypass_rls, "it has BYPASSRLS");
    flag(f.replication, "it has REPLICATION");
    flag(f.owns_database, "it owns the database");
    flag(f.create_on_database, "it has CREATE on the database");
    flag(f.temp_on_database, "it has TEMP on the database");
    if let Some(tables) = &f.owned_relations {
        let more = if f.owned_relation_count > 5 {
            format!(" and {} more", f.owned_relation_count - 5)
        } else {
            String::new()
        };
        why.push(format!("it owns tables or sequences ({tables}{more})"));
    }
    if let Some(schemas) = &f.owned_schemas {
        why.push(format!("it owns schemas ({schemas})"));
    }
    if let Some(schemas) = &f.create_on_schemas {
        why.push(format!("it has CREATE on schemas ({schemas})"));
    }
    if let Some(grants) = &f.excess_table_privileges {
        why.push(format!(
            "it holds table privileges the API never uses ({grants}); run `natterjack migrate` to re-apply the grants"
        ));
    }
    if let Some(roles) = &f.member_of {
        why.push(format!(
            "it is a member of roles it could SET ROLE to ({roles})"
        ));
    }
    why
}

/// Refuses (`Internal`, with every reason named) unless the connected role is a plain app
/// role: not a superuser; no CREATEROLE, CREATEDB, BYPASSRLS or REPLICATION; owning no
/// table, sequence, schema or the database; no CREATE or TEMP on the database; no CREATE on
/// any schema; a member of no other role.
pub async fn check_least_privilege(conn: &mut PgConnection) -> Result<(), StoreError> {
    let facts: RoleFacts = sqlx::query_as(FACTS)
        .fetch_one(&mut *conn)
        .await
        .map_err(classify)?;
    let why = reasons(&facts);
    if why.is_empty() {
        return Ok(());
    }
    Err(refuse(format!(
        "refusing to serve as PostgreSQL role \"{}\": {}; connect as the app role that `natterjack db init` creates",
        facts.name,
        why.join("; ")
    )))
}
