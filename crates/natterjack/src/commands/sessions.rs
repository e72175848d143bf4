//! `natterjack sessions list|revoke`: the operator's view of the console's browser
//! sessions, straight from the database every node shares.

use crate::cli::SessionsCommand;
use crate::config::Config;
use crate::start_error::StartError;
use natterjack_core::domain::Username;
use natterjack_core::session::SessionKey;

/// Runs a `sessions` subcommand with the operator's authority.
pub(super) async fn run(cfg: &Config, command: SessionsCommand) -> Result<(), StartError> {
    let storage = crate::storage::prepare(cfg).await?;
    let sessions = storage.sessions();
    let other = |e: natterjack_core::ports::StoreError| StartError::Other(e.to_string());
    let outcome = match command {
        SessionsCommand::List => {
            let all = sessions.list_sessions().await.map_err(other)?;
            println!("ID\tUSER\tMETHOD\tADDRESS\tOPENED\tLAST SEEN");
            for s in &all {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    s.key.hex(),
                    s.user.username,
                    s.method,
                    s.client_ip,
                    s.created_at.to_rfc3339(),
                    s.last_seen_at.to_rfc3339()
                );
            }
            Ok(())
        }
        SessionsCommand::Revoke { id: Some(id), .. } => {
            let key = SessionKey::from_hex(&id).ok_or_else(|| {
                StartError::Other(format!(
                    "not a session id (64 hex digits, as `natterjack sessions list` shows): {id}"
                ))
            })?;
            if sessions.delete_session(&key).await.map_err(other)? {
                println!("session {} ended", key.short());
                Ok(())
            } else {
                Err(StartError::Other(format!("no session {}", key.short())))
            }
        }
        SessionsCommand::Revoke {
            user: Some(name), ..
        } => {
            let name = Username::parse(&name).map_err(|e| StartError::Other(e.to_string()))?;
            match storage.store().find_user(&name).await.map_err(other)? {
                Some(user) => {
                    let n = sessions.delete_sessions_of(user.id).await.map_err(other)?;
                    println!("{n} session(s) of {name} ended");
                    Ok(())
                }
                None => Err(StartError::Other(format!("no user {name}"))),
            }
        }
        SessionsCommand::Revoke { .. } => {
            Err(StartError::Other("give a session id or --user NAME".into()))
        }
    };
    storage.close().await;
    outcome
}
