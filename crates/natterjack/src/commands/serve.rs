use crate::config::Config;
use crate::runtime::{StartError, assemble};
use std::io::Write;
use tokio::net::TcpListener;

/// Starts the REST listener and serves until SIGINT or SIGTERM.
pub(super) async fn serve(cfg: &Config) -> Result<(), StartError> {
    let assembled = assemble(cfg).await?;
    assembled
        .state
        .limits
        .spawn_eviction(std::time::Duration::from_secs(60));
    let app = assembled.app(|routes| routes);
    let listener = TcpListener::bind(cfg.rest.listen)
        .await
        .map_err(|e| StartError::Other(format!("cannot listen on {}: {e}", cfg.rest.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Other(e.to_string()))?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "natterjack listening rest https://{addr}");
        if let Some(ca) = &assembled.dev_ca {
            let _ = writeln!(
                out,
                "try: curl --cacert {} https://{addr}/health",
                ca.display()
            );
        }
        let _ = out.flush();
    }
    natterjack_api::server::serve(
        listener,
        assembled.tls,
        app,
        assembled.transport,
        shutdown_signal(),
    )
    .await;
    // Completion records are queued without waiting; commit the last of them before exit.
    if assembled.state.audit.flush().await.is_err() {
        tracing::error!("could not flush the audit log at shutdown");
    }
    assembled.store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down");
}
