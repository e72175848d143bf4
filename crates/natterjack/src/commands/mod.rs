//! The subcommands.

mod certs;
mod keys;
mod serve;
mod sessions;
mod shutdown;
mod user;

use crate::cli::{Cli, Command};
use crate::config::{Config, Overrides};
use crate::start_error::StartError;
use natterjack_core::audit::VerifyReport;

/// Loads the configuration and runs the chosen subcommand.
pub async fn run(cli: Cli) -> Result<(), StartError> {
    if matches!(cli.command, Command::Openapi) {
        // Needs no configuration, so it works anywhere (e.g. to regenerate docs/openapi.json).
        println!("{}", natterjack_api::rest::openapi::json());
        return Ok(());
    }
    let listen = match &cli.command {
        Command::Serve(args) => args.listen,
        _ => None,
    };
    let cfg = Config::load(
        cli.config.as_deref(),
        Overrides {
            data_dir: cli.data_dir.clone(),
            listen,
        },
    )?;
    match cli.command {
        Command::Serve(_) => serve::serve(&cfg).await,
        Command::Migrate => {
            let keyring = crate::storage::keyring_as_owner(&cfg, "migrate").await?;
            let done = crate::storage::migrate(&cfg, &keyring).await?;
            if done.applied.is_empty() {
                println!("database is up to date");
            } else {
                println!("applied migrations: {:?}", done.applied);
            }
            if done.sealed > 0 {
                println!(
                    "sealed {} plaintext rows under the current data key",
                    done.sealed
                );
            }
            Ok(())
        }
        Command::User(command) => user::run(&cfg, command).await,
        Command::Sessions(command) => sessions::run(&cfg, command).await,
        Command::Keys(command) => keys::run(&cfg, command).await,
        Command::Backup { file } => {
            let keys = crate::storage::backup(&cfg, &file).await?;
            println!(
                "backup written to {} (sealed: restoring it needs key-encryption key {}, and verifying its audit chain the audit key)",
                file.display(),
                crate::encryption_key::kek_ids(&keys)
            );
            Ok(())
        }
        Command::Certs { command } => certs::run(&cfg, command).await,
        Command::Db(crate::cli::DbCommand::Init { admin_url }) => {
            for line in crate::storage::init(&cfg, &admin_url).await? {
                println!("{line}");
            }
            println!(
                "database ready: run `natterjack migrate` (as the owner), then `natterjack serve`"
            );
            Ok(())
        }
        Command::Openapi => Ok(()),
        Command::Audit(crate::cli::AuditCommand::Verify) => {
            match crate::runtime::verify_audit(&cfg).await? {
                VerifyReport::Intact { records } => {
                    println!("OK: {records} audit records, chain intact");
                    Ok(())
                }
                VerifyReport::Broken {
                    first_bad_id,
                    reason,
                } => {
                    println!("FAIL: first bad record {first_bad_id}: {reason}");
                    Err(StartError::Other(format!(
                        "audit chain broken at record {first_bad_id}"
                    )))
                }
            }
        }
    }
}
