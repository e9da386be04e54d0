//! Operations endpoints, outside `/api/v1`: `/health`, `/ready`, `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes of this area.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(ready)).routes(routes!(metrics_text))
}

/// Liveness.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// Alive: the process answers HTTP.
#[utoipa::path(get, path = "/health", tag = "ops", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness of each dependency.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ok` when every dependency is reachable.
    pub status: &'static str,
    /// `ok` or `down`.
    pub database: &'static str,
    /// `ok`, `down` or `not_configured`.
    pub redis: &'static str,
    /// Broker kind and state: `memory`, `redis`, `redis (down)`.
    pub broker: String,
}

/// Ready: the database (and Redis, when configured) is reachable. 503 otherwise, so a load
/// balancer stops sending traffic.
#[utoipa::path(get, path = "/ready", tag = "ops",
    responses((status = 200, body = Readiness), (status = 503, description = "A dependency is down", body = Readiness)))]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database = if state.store.ping().await.is_ok() { "ok" } else { "down" };
    let redis = match &state.redis {
        None => "not_configured",
        Some(conn) => {
            let mut conn = conn.clone();
            let pong: Result<String, _> =
                tokio::time::timeout(std::time::Duration::from_secs(2), redis::cmd("PING").query_async(&mut conn))
                    .await
                    .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::IoError, "timeout"))));
            if pong.is_ok() { "ok" } else { "down" }
        }
    };
    let broker_ok = state.broker.is_healthy();
    let broker = if broker_ok { state.broker.kind().to_string() } else { format!("{} (down)", state.broker.kind()) };
    let ok = database == "ok" && redis != "down" && broker_ok;
    let body = Readiness { status: if ok { "ok" } else { "degraded" }, database, redis, broker };
    (if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    let (size, idle) = state.store.pool_stats();
    metrics::gauge!("chorus_db_pool_connections").set(size as f64);
    metrics::gauge!("chorus_db_pool_idle").set(idle as f64);
    metrics::gauge!("chorus_db_pool_in_use").set(size.saturating_sub(idle as u32) as f64);
    metrics::gauge!("chorus_broker_up").set(if state.broker.is_healthy() { 1.0 } else { 0.0 });
    crate::jobs::record_depth(&state).await;
    let body = crate::metrics::install().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
