//! Building and running one Chorus instance.
//!
//! [`Chorus::build`] does everything that can fail — connect and migrate the database,
//! connect Redis, load secrets, bind the port — and [`Chorus::run_until_stopped`] serves
//! until the shutdown token is cancelled (by SIGINT/SIGTERM in `main`, or by a test), then
//! drains: stop accepting, tell socket clients to reconnect elsewhere, let in-flight
//! requests and jobs finish, close the pools — all within `shutdown_timeout_secs`.
//! `main` and the tests start Chorus the same way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::tokens::load_or_create_secret;
use crate::auth::{Auth, Revocations};
use crate::broker::Broker;
use crate::broker::memory::{MemoryBroker, MemoryBus};
use crate::broker::redis::Connected;
use crate::config::Config;
use crate::domain::{IdGen, Timestamp};
use crate::jobs::{self, Queue, Registry};
use crate::mail::Mailer;
use crate::ratelimit::RateLimits;
use crate::realtime::close::CloseCode;
use crate::realtime::hub::Hub;
use crate::realtime::presence::{self, Presence};
use crate::state::{AppState, Inner};
use crate::store::Store;

/// Options that only tests and tools need.
#[derive(Clone, Default)]
pub struct BuildOptions {
    /// Join this in-process bus instead of creating one (several instances in one process
    /// acting as a cluster without Redis).
    pub memory_bus: Option<Arc<MemoryBus>>,
}

/// A built instance, bound and ready to serve.
pub struct Chorus {
    listener: TcpListener,
    state: AppState,
    router: Router,
    registry: Registry,
}

impl Chorus {
    /// Builds an instance from configuration.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with(config, BuildOptions::default()).await
    }

    /// Builds an instance with test/tool options.
    pub async fn build_with(config: Config, opts: BuildOptions) -> anyhow::Result<Self> {
        let shutdown = CancellationToken::new();
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        crate::metrics::install();

        let store = Store::connect(&config.effective_database_url(), config.database_max_connections)
            .await
            .context("connecting to the database")?;
        store.migrate().await.context("applying migrations")?;

        let redis = match &config.redis_url {
            Some(url) => {
                let client = redis::Client::open(url.as_str()).context("parsing redis_url")?;
                Some(crate::broker::redis::connection_manager(client).await.context("connecting to Redis")?)
            }
            None => None,
        };
        anyhow::ensure!(
            redis.is_none() || config.jwt_secret.is_some(),
            "jwt_secret (CHORUS_JWT_SECRET) must be set when redis_url is set: every instance of a cluster needs the same one"
        );

        let node = match (config.node_id, &redis) {
            (Some(n), _) => n,
            (None, Some(conn)) => {
                let mut conn = conn.clone();
                let n: i64 = redis::cmd("INCR")
                    .arg(format!("{}:node_seq", config.redis_namespace))
                    .query_async(&mut conn)
                    .await
                    .context("allocating a node id in Redis")?;
                (n.rem_euclid(1024)) as u16
            }
            (None, None) => 0,
        };

        let secret = load_or_create_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
        let auth = Auth::new(&secret, config.access_token_ttl_secs as i64, config.refresh_token_ttl_secs as i64);
        let revocations = match &redis {
            Some(conn) => Revocations::Redis { conn: conn.clone(), namespace: config.redis_namespace.clone() },
            None => Revocations::Database(store.clone()),
        };
        let limits = match &redis {
            Some(conn) => RateLimits::redis(conn.clone(), config.redis_namespace.clone(), &config.rate_limit),
            None => RateLimits::local(&config.rate_limit),
        };
        let mailer = Mailer::new(config.smtp_url.as_deref(), &config.mail_from).context("configuring SMTP")?;

        // The broker is made for the hub (it delivers to it), the hub owns it.
        let redis_broker = match &config.redis_url {
            Some(url) => Some(Connected::open(url).await?),
            None => None,
        };
        let presence = match &redis {
            Some(conn) => Presence::redis(
                conn.clone(),
                config.redis_namespace.clone(),
                format!("{node}-{}", crate::auth::tokens::random_token(6)),
            ),
            None => Presence::local(),
        };
        let hub = Hub::new(config.hub.queue_frames, |sink| match redis_broker {
            Some(connected) => Broker::Redis(connected.start(&config.redis_namespace, sink, shutdown.clone())),
            None => Broker::Memory(MemoryBroker::join(opts.memory_bus.unwrap_or_default(), sink)),
        });
        let broker = hub.broker().clone();

        let listener = TcpListener::bind(config.listen).await.with_context(|| format!("binding {}", config.listen))?;
        let mut config = config;
        if config.public_url.is_none() {
            // Links in e-mails and media URLs must name the port really bound (port 0 in tests).
            config.public_url = Some(format!("http://{}", listener.local_addr()?));
        }

        let media = crate::media::Media::new(&config, &secret).context("setting up media storage")?;
        let push = crate::push::Pusher::from_config(&config).context("setting up push")?;
        let state = AppState::new(Inner {
            ids: IdGen::new(node),
            config,
            store,
            auth,
            revocations,
            mailer,
            media,
            push,
            limits,
            jobs: Queue::default(),
            hub,
            broker,
            presence,
            redis,
            shutdown,
        });
        // Sockets: `/ws` and the Socket.IO layer (which answers `/socket.io/` and passes the
        // rest through) around the REST router.
        let router = crate::http::router(state.clone())
            .route("/ws", axum::routing::get(crate::realtime::ws::handler).with_state(state.clone()))
            .layer(crate::realtime::sio::layer(&state));
        let registry = job_registry();
        Ok(Self { listener, state, router, registry })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// The instance's state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Cancelling this token starts a graceful shutdown.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled, then drains within the deadline.
    /// Returns an error if the drain did not finish in time.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Chorus { listener, state, router, registry } = self;
        let shutdown = state.shutdown.clone();
        tracing::info!(addr = %listener.local_addr()?, backend = ?state.store.backend(), broker = state.broker.kind(), "Chorus listening");

        let worker_token = CancellationToken::new();
        let worker = tokio::spawn(jobs::run_worker(state.clone(), registry, worker_token.clone()));
        let maintenance = tokio::spawn(maintenance(state.clone(), shutdown.clone()));
        let presence_task = tokio::spawn(presence_refresh(state.clone(), shutdown.clone()));
        let media_gc = tokio::spawn(crate::services::media::gc_loop(state.clone(), shutdown.clone()));

        let server = {
            let shutdown = shutdown.clone();
            let app = router.into_make_service_with_connect_info::<SocketAddr>();
            // TCP_NODELAY: a socket's frames are already batched per write (see `ws.rs`), and
            // with Nagle on, a small frame written while an earlier one is unacknowledged
            // waits for the peer's delayed ACK (up to 40 ms on Linux) — a reply followed by
            // an event, a typing indicator after a message.
            let listener = listener.tap_io(|tcp| {
                if let Err(e) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY not set");
                }
            });
            tokio::spawn(async move {
                axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
            })
        };

        shutdown.cancelled().await;
        tracing::info!("shutting down: draining connections and jobs");
        // Sockets are long-lived; they would hold the drain open. Tell them to reconnect
        // elsewhere (4000) now; their tasks end when the close is written.
        state.hub.close_all(CloseCode::SHUTDOWN);
        worker_token.cancel();

        let deadline = Duration::from_secs(state.config.shutdown_timeout_secs);
        let drained = tokio::time::timeout(deadline, async {
            let _ = server.await;
            let _ = worker.await;
            let _ = maintenance.await;
            let _ = presence_task.await;
            let _ = media_gc.await;
        })
        .await;
        state.store.close().await;
        match drained {
            Ok(()) => {
                tracing::info!("shutdown complete");
                Ok(())
            }
            Err(_) => anyhow::bail!("graceful shutdown did not finish within {deadline:?}"),
        }
    }
}

/// Every job kind and its handler.
fn job_registry() -> Registry {
    let mut r = Registry::default();
    r.register(crate::services::auth::run_send_email);
    r.register(crate::services::push::run_send_push);
    r.register(crate::services::media::run_process_media);
    r.register(crate::services::media::run_delete_stored_media);
    r.register(crate::services::feed::run_fan_out);
    r.register(crate::services::feed::run_sync_timeline);
    r.register(crate::services::feed::run_backfill_followers);
    r.register(crate::services::notifications::run_notify);
    r.register(crate::services::accounts::run_erase_account);
    r.register(crate::services::exports::run_export);
    r
}

/// Periodic housekeeping: expired tokens and revocations, old events, idle rate-limit keys.
/// Idempotent sweeps; losing one to a restart loses nothing.
async fn maintenance(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        state.limits.shrink();
        let now = Timestamp::now();
        let retention = Timestamp(now.0 - state.config.hub.event_retention_secs as i64 * 1000);
        let result: anyhow::Result<()> = async {
            let mut tx = state.store.begin().await?;
            crate::store::tokens::purge_expired(tx.ex(), now).await?;
            crate::store::events::purge_before(tx.ex(), retention).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "maintenance sweep failed");
        }
    }
}

/// Keeps this instance's presence entries alive and reports users whose instance died.
async fn presence_refresh(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(presence::REFRESH);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match state.presence.tick().await {
            Ok(offline) => {
                for user in offline {
                    crate::realtime::session::publish_presence(&state, user).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "presence refresh failed"),
        }
    }
}
