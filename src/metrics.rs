//! Prometheus metrics.
//!
//! The `metrics` facade is process-global by design (one recorder per process), so the
//! recorder is installed once and every instance in the process shares it; everything else
//! in Chorus is per instance. Gauges that are cheaper to compute than to maintain (queue
//! depth, pool usage) are refreshed when `/metrics` is rendered.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder (once per process) and returns its handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
                )
                .expect("valid buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may exist in a test binary; then ours just renders nothing new.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The label of a request method: one of the methods Chorus routes, or `other`. A label
/// must come from a closed set — any token is a valid HTTP method, and each distinct label
/// value is a new time series held in memory and rendered by `/metrics` forever.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts requests by route and status and records their latency. The route label is the
/// matched route *template* (`/api/v1/posts/{id}`), never the path itself, or `unmatched`.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = method_label(req.method());
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("chorus_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("chorus_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_labels_are_a_closed_set() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for token in ["FOO", "X-RANDOM-1", "PROPFIND"] {
            assert_eq!(method_label(&Method::from_bytes(token.as_bytes()).unwrap()), "other");
        }
    }
}
