use crate::config::Config;
use crate::runtime::assemble;
use crate::start_error::StartError;
use std::io::Write;
use tokio::net::TcpListener;

/// Starts the listeners and serves until SIGINT or SIGTERM, then shuts down gracefully
/// (see [`super::shutdown`]); SIGHUP reloads the certificate.
pub(super) async fn serve(cfg: &Config) -> Result<(), StartError> {
    // Before assembly, so that what the background tasks it starts record (the read
    // cache's listener saying it is connected) is counted.
    natterjack_api::metrics::install();
    let assembled = assemble(cfg).await?;
    assembled
        .state
        .limits
        .spawn_eviction(std::time::Duration::from_secs(60));
    crate::disk_space::spawn(
        assembled.space_gate.clone(),
        assembled.state.audit.clone(),
        cfg.data_dir.clone(),
        std::time::Duration::from_secs(cfg.audit.disk_check_secs),
    );
    let resealer = tokio::spawn(crate::resealer::run(
        assembled.store.resealing(),
        assembled.store.keyring(),
        crate::resealer::ResealerSettings {
            batch: cfg.encryption.reseal_batch,
            pause: std::time::Duration::from_millis(cfg.encryption.reseal_pause_ms),
            poll: std::time::Duration::from_secs(cfg.encryption.key_poll_secs),
        },
    ));
    // Before the listeners are announced: from here on SIGHUP reloads the certificate
    // instead of ending the process.
    crate::tls::reload::spawn(
        assembled.certificate.clone(),
        std::time::Duration::from_secs(cfg.tls.reload_check_secs),
        natterjack_core::clock::system(),
    )
    .map_err(|e| StartError::Other(format!("cannot handle SIGHUP: {e}")))?;
    let bind = |addr: std::net::SocketAddr| async move {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| StartError::Other(format!("cannot listen on {addr}: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| StartError::Other(e.to_string()))?;
        Ok::<_, StartError>((listener, local))
    };
    let (listener, addr) = bind(cfg.rest.listen).await?;
    let app = assembled.app_with_console(cfg, addr)?;
    let grpc = match &assembled.grpc_tls {
        Some(_) => Some(bind(cfg.grpc.listen).await?),
        None => None,
    };
    let internal = if cfg.internal.enabled {
        let socket = cfg.admin_socket_path();
        let admin = crate::admin_socket::bind(&socket).map_err(StartError::Other)?;
        Some((bind(cfg.internal.listen).await?, (admin, socket)))
    } else {
        None
    };
    // Every listener stops on the same signal.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let export_stopped = stopped.clone();
    let on_stop = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let exporters = crate::export::start(
        &cfg.audit.sinks,
        &assembled.state.audit,
        assembled.export_gate.clone(),
        assembled.store.export_leases(cfg)?.as_ref(),
        std::time::Duration::from_millis(cfg.audit.export_lease_retry_ms),
        export_stopped,
    )
    .map_err(StartError::Other)?;
    // Before the listeners are announced, so that a signal right after is a graceful
    // shutdown and not the end of the process.
    let signals = super::shutdown::Signals::register();
    let mut tasks = Vec::new();
    {
        let mut out = std::io::stdout().lock();
        if let (Some((listener, local)), Some(tls)) = (grpc, assembled.grpc_tls) {
            let _ = writeln!(out, "natterjack listening grpc https://{local}");
            tasks.push(tokio::spawn(natterjack_api::grpc::serve_public(
                listener,
                tls,
                assembled.grpc.clone(),
                assembled.grpc_transport,
                on_stop(),
            )));
        }
        if let Some(((listener, local), (admin, socket))) = internal {
            let _ = writeln!(out, "natterjack listening internal http://{local}");
            tasks.push(tokio::spawn(natterjack_api::grpc::serve_metrics(
                listener,
                assembled.grpc.clone(),
                cfg.internal
                    .admin_over_tcp
                    .then(crate::operator::capability),
                on_stop(),
            )));
            let _ = writeln!(out, "natterjack listening admin unix:{}", socket.display());
            let state = assembled.grpc.clone();
            let stopped = on_stop();
            tasks.push(tokio::spawn(async move {
                let served = natterjack_api::grpc::serve_admin_socket(
                    admin,
                    state,
                    crate::operator::capability(),
                    stopped,
                )
                .await;
                let _ = std::fs::remove_file(&socket);
                served
            }));
        }
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
    tokio::spawn(super::shutdown::sequence(
        signals,
        assembled.state.lifecycle.clone(),
        std::time::Duration::from_secs(cfg.shutdown.drain_secs),
        stop,
    ));
    natterjack_api::transport::serve(listener, assembled.tls, app, assembled.transport, on_stop())
        .await;
    // The gRPC listener cuts what it still serves `timeout_secs` after the stop, as the
    // REST one did (watch streams end at the stop itself); the operators' listeners have
    // no long calls. The margin is for the cut connections to go.
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_secs(cfg.shutdown.timeout_secs)
        + std::time::Duration::from_secs(2);
    for task in tasks {
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "a listener failed"),
            Ok(Err(e)) => tracing::error!(error = %e, "a listener task failed"),
            Err(_) => tracing::warn!("a listener was still open after the shutdown deadline"),
        }
    }
    // Completion records are queued without waiting, the last of them once the last
    // response was sent: commit them before exit.
    if assembled.state.audit.flush().await.is_err() {
        tracing::error!("could not flush the audit log at shutdown");
    }
    for exporter in exporters {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), exporter).await;
    }
    // A batch in flight is one transaction: aborting it rolls it back, and the next start
    // resumes the pass.
    resealer.abort();
    let _ = resealer.await;
    // The read cache's listener holds a connection of its own: stop it with the pool.
    drop(assembled.cache_listener);
    assembled.store.close().await;
    tracing::info!("stopped");
    Ok(())
}
