use crate::cli::UserCommand;
use crate::config::Config;
use crate::runtime::service;
use crate::start_error::StartError;
use natterjack_core::domain::Username;
use natterjack_core::principal::Caller;
use secrecy::SecretString;
use std::io::{BufRead, IsTerminal};

/// Reads a new password: a hidden prompt (asked twice) on a terminal, otherwise exactly one
/// line of standard input, so scripts can pipe it in without it appearing in `ps`.
fn read_password() -> Result<SecretString, StartError> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")
            .map_err(|e| StartError::Other(e.to_string()))?;
        let second = rpassword::prompt_password("Repeat password: ")
            .map_err(|e| StartError::Other(e.to_string()))?;
        if first != second {
            return Err(StartError::Other("the passwords do not match".into()));
        }
        return Ok(SecretString::from(first));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| StartError::Other(e.to_string()))?;
    let trimmed = line.trim_end_matches(['\n', '\r']).to_owned();
    zeroize::Zeroize::zeroize(&mut line);
    if trimmed.is_empty() {
        return Err(StartError::Other("no password on standard input".into()));
    }
    Ok(SecretString::from(trimmed))
}

fn username(name: &str) -> Result<Username, StartError> {
    Username::parse(name).map_err(|e| StartError::Other(e.to_string()))
}

/// Runs a `user` subcommand against the database, through the service layer, with the
/// operator's authority.
pub(super) async fn run(cfg: &Config, command: UserCommand) -> Result<(), StartError> {
    let store = crate::storage::prepare(cfg).await?;
    let service = service(cfg, store.store()).await?;
    let operator = crate::operator::capability();
    let outcome = match command {
        UserCommand::Add { name } => {
            let name = username(&name)?;
            let password = read_password()?;
            service
                .register(&Caller::Anonymous, Some(operator), name, password)
                .await
                .map(|created| println!("created user {created}"))
        }
        UserCommand::Passwd { name } => {
            let name = username(&name)?;
            let password = read_password()?;
            service
                .change_password(operator, &name, password)
                .await
                .map(|()| println!("password changed for {name}"))
        }
        UserCommand::Admin {
            name,
            grant,
            revoke: _,
        } => {
            let name = username(&name)?;
            service.set_admin(operator, &name, grant).await.map(|()| {
                println!(
                    "{name} {} the admin role",
                    if grant {
                        "now holds"
                    } else {
                        "no longer holds"
                    }
                )
            })
        }
        UserCommand::Link {
            name,
            source,
            subject,
        } => {
            let name = username(&name)?;
            service
                .link_identity(operator, &name, &source, &subject)
                .await
                .map(|()| println!("{source} {subject:?} now logs in as {name}"))
        }
    };
    if outcome.is_ok() && matches!(store, crate::storage::Storage::Sqlite(_)) {
        // A running server learns of this change when it next polls the cache epoch: wait
        // for two of its polls, so that when this command returns the change is in force.
        tokio::time::sleep(std::time::Duration::from_millis(
            cfg.database.cache_poll_ms.saturating_mul(2),
        ))
        .await;
    }
    store.close().await;
    outcome.map_err(|e| StartError::Other(e.to_string()))
}
