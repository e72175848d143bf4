//! Assembly: configuration in, a ready service, TLS configuration and router out. Shared by
//! `serve`, the CLI commands and the in-process tests, so all of them run the same wiring.

use crate::audit_files::{FileAnchor, load_or_create_key};
use crate::config::{Config, ConfigError};
use crate::dev_ca;
use crate::start_error::StartError;
use crate::storage::Storage;
use crate::tls::{PairFiles, ServedCertificate};
use axum::Router;
use natterjack_api::AppState;
use natterjack_api::grpc::{GrpcLimits, GrpcState, GrpcTransport};
use natterjack_api::pipeline::PipelineLimits;
use natterjack_api::pipeline::rate_limit::RateLimits;
use natterjack_api::rest::{routes, secure_pipeline};
use natterjack_api::transport::{ListenerSpec, Protocol, TransportLimits};
use natterjack_core::audit::{
    AnomalyMonitor, AuditLog, ExportGate, HeadAnchor, SpaceGate, VerifyReport, verify,
};
use natterjack_core::auth::{
    Authenticator, LinkedAccounts, PasswordHashing, PasswordSource, VerificationCache,
};
use natterjack_core::clock::SharedClock;
use natterjack_core::ports::Store;
use natterjack_core::service::{Service, ServiceSettings};
use natterjack_core::session::{SessionLogins, SessionSettings, Sessions};
use natterjack_federation::ldap::LdapDirectory;
use natterjack_federation::oidc::BearerLogins;
use std::sync::Arc;
use std::time::Duration;

/// Builds the service layer over `store` as configured.
pub async fn service(cfg: &Config, store: Arc<dyn Store>) -> Result<Arc<Service>, StartError> {
    let hashing = PasswordHashing::new(
        cfg.auth.argon2,
        cfg.auth.max_concurrent_hashes,
        Duration::from_millis(cfg.auth.hash_queue_wait_ms),
    )
    .map_err(|e| StartError::Config(ConfigError(e)))?;
    let cache = VerificationCache::new(
        Duration::from_secs(cfg.auth.cache_ttl_secs),
        cfg.auth.cache_capacity,
    )
    .with_clock(natterjack_core::clock::system());
    let mut auth = Authenticator::new(store.clone(), Arc::new(hashing), cache)
        .await
        .map_err(|e| StartError::Other(format!("cannot prepare the authenticator: {e}")))?;
    if let Some(ldap) = &cfg.auth.ldap {
        let directory =
            LdapDirectory::new(ldap).map_err(|e| StartError::Config(ConfigError(e.to_string())))?;
        auth = auth.with_directory(Arc::new(directory), cfg.auth.passwords);
    }
    // With a directory checking passwords, a name registered here first would squat (or,
    // checked locally first, shadow) a directory user's name: registration stays closed.
    let directory_names = cfg.auth.passwords != PasswordSource::Local;
    if directory_names && cfg.auth.self_registration {
        tracing::info!("self-registration is off: a directory checks passwords");
    }
    let settings = ServiceSettings {
        grant_policy: cfg.access.grant_policy,
        self_registration: cfg.auth.self_registration && !directory_names,
    };
    Ok(Arc::new(Service::new(store, auth, settings)))
}

/// Starts the audit writer over `store`, with the chain key and head anchor from the
/// configuration (the key is created on first start), the anomaly monitor (its windows in
/// Redis when `shared` says so), the coalescing of rate-limit refusals, the export gate
/// that `audit.fail_closed` closes, and the disk-space gate.
pub async fn audit_log(
    cfg: &Config,
    store: &Storage,
    gates: (Arc<ExportGate>, Arc<SpaceGate>),
    shared: Option<&crate::shared_limits::Shared>,
    clock: SharedClock,
) -> Result<Arc<AuditLog>, StartError> {
    let (gate, space) = gates;
    let store = store.audit_store();
    let head = store
        .audit_head()
        .await
        .map_err(|e| StartError::Other(e.to_string()))?;
    let key =
        load_or_create_key(&cfg.audit_key_path(), head.is_none()).map_err(StartError::Other)?;
    let anchor: Arc<dyn HeadAnchor> = Arc::new(FileAnchor::new(cfg.audit_head_path()));
    let log = AuditLog::start(store, key, Some(anchor))
        .await
        .map_err(StartError::Other)?
        .with_clock(clock)
        .with_monitor(Arc::new(AnomalyMonitor::new(cfg.audit.alerts.thresholds())))
        .with_coalescing(cfg.audit.coalescing())
        .with_export_gate(gate)
        .with_space_gate(space);
    let log = match shared {
        Some(shared) => log.with_shared_windows(shared.windows.clone(), shared.timeout),
        None => log,
    };
    Ok(Arc::new(log))
}

/// Verifies the whole audit chain against the key and the anchored head.
pub async fn verify_audit(cfg: &Config) -> Result<VerifyReport, StartError> {
    let keyring = crate::storage::keyring(cfg).await?;
    let storage = crate::storage::open(cfg, keyring).await?;
    let key_path = cfg.audit_key_path();
    if !key_path.exists() {
        return Err(StartError::Other(format!(
            "no audit key at {}",
            key_path.display()
        )));
    }
    let key = load_or_create_key(&key_path, false).map_err(StartError::Other)?;
    let anchored = FileAnchor::new(cfg.audit_head_path())
        .load()
        .map_err(|e| StartError::Other(format!("cannot read the audit head anchor: {e}")))?;
    let report = verify(&key, storage.audit_store().as_ref(), anchored)
        .await
        .map_err(|e| StartError::Other(e.to_string()));
    storage.close().await;
    let report = report?;
    Ok(report)
}

/// Everything `serve` needs, assembled.
pub struct Assembled {
    /// Shared request state.
    pub state: AppState,
    /// The store, to close on shutdown.
    pub store: Storage,
    /// The read cache's invalidation listener (PostgreSQL), stopped when this is dropped.
    pub cache_listener: Option<crate::read_cache::Listening>,
    /// The listener that brings messages posted on other nodes to this node's watchers
    /// (PostgreSQL only); stops when dropped.
    pub feed_listener: Option<crate::read_cache::Listening>,
    /// TLS configuration of the REST listener.
    pub tls: Arc<rustls::ServerConfig>,
    /// The certificate both public listeners present, which `serve` reloads when its files
    /// change.
    pub certificate: Arc<ServedCertificate>,
    /// The CA file clients should trust, when the development CA is in use.
    pub dev_ca: Option<std::path::PathBuf>,
    /// Limits inside the pipeline.
    pub pipeline: PipelineLimits,
    /// The REST listener: HTTP/1.1 and HTTP/2 with the `[rest]` limits.
    pub transport: ListenerSpec,
    /// The gRPC side of the state (shares the service, limits and audit log).
    pub grpc: GrpcState,
    /// TLS configuration of the public gRPC listener (mutual TLS), when it is enabled.
    pub grpc_tls: Option<Arc<rustls::ServerConfig>>,
    /// Limits of the public gRPC listener.
    pub grpc_transport: GrpcTransport,
    /// The SIEM exporters' backlog, which `audit.fail_closed` turns into refusals.
    pub export_gate: Arc<ExportGate>,
    /// The free space of the data directory, which `audit.min_free_mb` turns into refusals
    /// (measured by `natterjack serve`, see [`crate::disk_space`]).
    pub space_gate: Arc<SpaceGate>,
    /// The console's browser sessions (also an identity provider of `state`).
    pub sessions: Arc<Sessions>,
    /// The accounts external identities are linked to (the console's SAML sign-on maps
    /// its identities through them, as bearer tokens do).
    pub linked: LinkedAccounts,
    /// The console's OpenID Connect login, when `[console.oidc]` is set.
    pub oidc_flow: Option<Arc<natterjack_federation::oidc::CodeFlow>>,
}

impl Assembled {
    /// The REST application: the routes, extended by `extra` (tests add a route there),
    /// inside the security pipeline. `serve`, the in-process tests and the benchmarks all
    /// build it here, so they run the same pipeline.
    pub fn app(&self, extra: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Router {
        secure_pipeline(extra(routes()), self.state.clone(), self.pipeline)
    }

    /// [`Assembled::app`] with the browser console under `/console/` (when
    /// `console.enabled`), for a REST listener bound at `bound`.
    /// Fails when `[console.saml]` cannot be loaded.
    pub fn app_with_console(
        &self,
        cfg: &Config,
        bound: std::net::SocketAddr,
    ) -> Result<Router, StartError> {
        let app = self.app(|routes| routes);
        match crate::console::router(cfg, self, bound)? {
            Some(console) => Ok(console.merge(app)),
            None => Ok(app),
        }
    }
}

/// The HTTPS listener from `[rest]` (trusted proxies are exempt from the per-client
/// connection cap): one derivation for the server and for the load benchmark's baseline,
/// so that the baseline runs under exactly the same transport.
pub fn rest_listener(cfg: &Config) -> ListenerSpec {
    let r = &cfg.rest;
    ListenerSpec {
        name: "rest",
        protocol: Protocol::Http,
        limits: TransportLimits {
            max_connections: r.max_connections,
            max_connections_per_client: r.max_connections_per_client,
            exempt: cfg.rate_limit.trusted_proxies.clone(),
            proxy_protocol: r.proxy_protocol,
            handshake_timeout: Duration::from_secs(r.handshake_timeout_secs),
            header_read_timeout: Duration::from_secs(r.header_read_timeout_secs),
            keep_alive_timeout: Duration::from_secs(r.keep_alive_timeout_secs),
            http2_idle_timeout: Duration::from_secs(r.http2_idle_timeout_secs),
            max_connection_age: None,
            max_concurrent_streams: r.max_concurrent_streams,
            shutdown_grace: Duration::from_secs(cfg.shutdown.timeout_secs),
            ..TransportLimits::default()
        },
    }
}

/// The public gRPC listener from `[grpc]` (its TLS handshake deadline is `[rest]`'s).
pub fn grpc_transport(cfg: &Config) -> GrpcTransport {
    let g = &cfg.grpc;
    let idle = Duration::from_secs(g.idle_timeout_secs);
    GrpcTransport {
        max_message_bytes: g.max_message_bytes,
        keepalive_interval: Duration::from_secs(g.keepalive_interval_secs),
        keepalive_timeout: Duration::from_secs(g.keepalive_timeout_secs),
        limits: TransportLimits {
            max_connections: g.max_connections,
            max_connections_per_client: g.max_connections_per_client,
            exempt: cfg.rate_limit.trusted_proxies.clone(),
            proxy_protocol: g.proxy_protocol,
            handshake_timeout: Duration::from_secs(cfg.rest.handshake_timeout_secs),
            header_read_timeout: Duration::from_secs(g.header_read_timeout_secs),
            keep_alive_timeout: idle,
            http2_idle_timeout: idle,
            max_connection_age: Some(Duration::from_secs(g.max_connection_age_secs)),
            max_concurrent_streams: g.max_concurrent_streams,
            shutdown_grace: Duration::from_secs(cfg.shutdown.timeout_secs),
            ..TransportLimits::default()
        },
    }
}

/// Migrates, opens storage (behind the read cache where the backend announces changes),
/// builds the service and loads (or creates) certificates.
pub async fn assemble(cfg: &Config) -> Result<Assembled, StartError> {
    assemble_with_clock(cfg, natterjack_core::clock::system()).await
}

/// [`assemble`] on `clock`: the one clock every window, refill and record time of the
/// process reads (tests pass a `ManualClock` and move it instead of sleeping).
pub async fn assemble_with_clock(
    cfg: &Config,
    clock: SharedClock,
) -> Result<Assembled, StartError> {
    let store = crate::storage::prepare(cfg).await?;
    let cache = crate::read_cache::start(cfg, &store, clock.clone());
    let service = service(cfg, cache.store.clone()).await?;
    let feed_listener = crate::read_cache::feed(&store, service.clone());
    let (files, dev_ca) = match (&cfg.tls.cert, &cfg.tls.key) {
        (Some(cert), Some(key)) => (
            PairFiles {
                cert: cert.clone(),
                key: key.clone(),
            },
            None,
        ),
        _ => {
            let pki = dev_ca::ensure(&cfg.data_dir).map_err(StartError::Other)?;
            (
                PairFiles {
                    cert: pki.server_cert,
                    key: pki.server_key,
                },
                Some(pki.ca_cert),
            )
        }
    };
    let now = natterjack_core::clock::Clock::wall(clock.as_ref()).to_date_time();
    let certificate = Arc::new(
        ServedCertificate::load(files, now)
            .map_err(|e| StartError::Other(format!("cannot use the TLS certificate: {e}")))?,
    );
    let tls = crate::tls::server_config(certificate.clone());
    let grpc_tls = if cfg.grpc.enabled {
        let client_ca = cfg
            .grpc
            .client_ca
            .clone()
            .or_else(|| dev_ca.clone())
            .ok_or_else(|| StartError::Other("grpc.client_ca is not set".into()))?;
        Some(
            crate::tls::grpc_server_config(certificate.clone(), &client_ca)
                .map_err(StartError::Other)?,
        )
    } else {
        None
    };
    let pipeline = PipelineLimits {
        request_timeout: Duration::from_secs(cfg.rest.request_timeout_secs),
    };
    let transport = rest_listener(cfg);
    let export_gate = Arc::new(ExportGate::new(
        cfg.audit.sinks.len(),
        cfg.audit.fail_closed.then_some(cfg.audit.max_backlog),
    ));
    let space_gate = Arc::new(SpaceGate::new(cfg.audit.min_free_bytes()));
    let shared = crate::shared_limits::from_config(&cfg.rate_limit)
        .map_err(|e| StartError::Config(ConfigError(e)))?;
    let audit = audit_log(
        cfg,
        &store,
        (export_gate.clone(), space_gate.clone()),
        shared.as_ref(),
        clock.clone(),
    )
    .await?;
    if let Some(shared) = &shared {
        crate::shared_limits::record_changes(&shared.limits, audit.clone(), clock.clone());
    }
    let limits = RateLimits::with_clock(
        &cfg.rate_limit,
        clock.clone(),
        shared.map(|shared| shared.limits),
    )
    .map_err(|e| StartError::Config(ConfigError(e)))?;
    let bearer = BearerLogins::start(
        &cfg.auth.oidc,
        LinkedAccounts::new(cache.store.clone()),
        limits.login_budgets(),
        clock.clone(),
    )
    .await
    .map_err(|e| StartError::Config(ConfigError(e)))?;
    let sessions = Arc::new(Sessions::new(
        store.sessions(),
        cache.store.clone(),
        SessionSettings {
            idle: Duration::from_secs(cfg.console.session_idle_secs),
            absolute: Duration::from_secs(cfg.console.session_absolute_secs),
        },
        clock.clone(),
    ));
    let oidc_flow = match &cfg.console.oidc {
        Some(settings) if cfg.console.enabled => Some(Arc::new(
            bearer
                .code_flow(settings)
                .map_err(|e| StartError::Config(ConfigError(e)))?,
        )),
        _ => None,
    };
    let state = AppState::new(service, Arc::new(limits), audit, clock)
        .with_provider(Arc::new(bearer))
        .with_provider(Arc::new(SessionLogins(sessions.clone())));
    let g = &cfg.grpc;
    let grpc = GrpcState::new(
        state.clone(),
        GrpcLimits {
            watch_max_duration: Duration::from_secs(g.watch_max_duration_secs),
            watch_messages_per_sec: g.watch_messages_per_sec,
            watch_max_per_principal: g.watch_max_per_principal,
            watch_buffer: g.watch_buffer,
            watch_recheck: Duration::from_secs(g.watch_recheck_secs),
            request_timeout: Duration::from_secs(g.request_timeout_secs),
        },
    );
    let grpc_transport = grpc_transport(cfg);
    Ok(Assembled {
        state,
        grpc,
        grpc_tls,
        grpc_transport,
        export_gate,
        space_gate,
        store,
        cache_listener: cache.listener,
        feed_listener,
        tls,
        certificate,
        dev_ca,
        pipeline,
        transport,
        sessions,
        oidc_flow,
        linked: LinkedAccounts::new(cache.store.clone()),
    })
}
