//! `certs`: what the server trusts, and client certificates from the development CA.

use crate::cli::CertsCommand;
use crate::config::Config;
use crate::data_dir::ensure_data_dir;
use crate::dev_ca;
use crate::start_error::StartError;
use natterjack_core::domain::Username;
use std::path::PathBuf;

/// Runs a `certs` subcommand.
pub(super) async fn run(cfg: &Config, command: Option<CertsCommand>) -> Result<(), StartError> {
    match command {
        None | Some(CertsCommand::Show) => show(cfg),
        Some(CertsCommand::IssueClient { name, out }) => {
            let name = Username::parse(&name).map_err(|e| StartError::Other(e.to_string()))?;
            if cfg.tls.cert.is_some() {
                return Err(StartError::Other(
                    "production certificates are configured: issue client certificates from \
                     your own CA (the one grpc.client_ca names)"
                        .into(),
                ));
            }
            ensure_data_dir(&cfg.data_dir)?;
            // Certificates name users by name only: one issued before the account exists
            // would belong to whoever registers that name later.
            let storage = crate::storage::prepare(cfg).await?;
            let found = storage.store().find_user(&name).await;
            storage.close().await;
            if found
                .map_err(|e| StartError::Other(e.to_string()))?
                .is_none()
            {
                return Err(StartError::Other(format!(
                    "no user {name}: create the account first (`natterjack user add {name}`)"
                )));
            }
            let out = out.unwrap_or_else(|| cfg.data_dir.join("clients"));
            let issued = dev_ca::issue_client(&cfg.data_dir, name.as_str(), &out)
                .map_err(StartError::Other)?;
            println!("certificate: {}", issued.cert.display());
            println!("private key: {} (0600)", issued.key.display());
            println!("principal:   natterjack:user:{name} (the user must exist)");
            Ok(())
        }
    }
}

fn show(cfg: &Config) -> Result<(), StartError> {
    let dev = dev_ca::DevPki::in_dir(&cfg.data_dir);
    let (server, key): (PathBuf, PathBuf) = match (&cfg.tls.cert, &cfg.tls.key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => (dev.server_cert.clone(), dev.server_key.clone()),
    };
    let client_ca = cfg.grpc.client_ca.clone().unwrap_or(dev.ca_cert.clone());
    println!("server certificate (REST and gRPC): {}", server.display());
    println!("server private key:                 {}", key.display());
    if cfg.tls.cert.is_none() {
        println!(
            "development CA (clients trust it):  {}",
            dev.ca_cert.display()
        );
    }
    if cfg.grpc.enabled {
        println!(
            "gRPC client CA (client certificates must chain to it): {}",
            client_ca.display()
        );
        println!("gRPC principal: the SAN URI natterjack:user:NAME, else the subject CN");
    } else {
        println!("gRPC: disabled");
    }
    Ok(())
}
