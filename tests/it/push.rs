//! Push notifications: the server's Web Push identity.

use base64::Engine;
use reqwest::StatusCode;

use crate::support::{Backend, TestApp, redis_available};

/// The key browsers subscribe with is a P-256 point, and the same after a restart: a new key
/// would silently orphan every browser subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_keeps_one_vapid_key_across_restarts() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (s, v) = app.get("/push/vapid-key", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let key = v["public_key"].as_str().unwrap().to_string();
    let point = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&key).unwrap();
    assert_eq!((point.len(), point[0]), (65, 4), "an uncompressed P-256 point");
    let app = app.restart().await;
    let (_, again) = app.get("/push/vapid-key", None).await;
    assert_eq!(again["public_key"], key.as_str());
}

/// Instances of a cluster sign with one configured key; without one they have no Web Push
/// rather than a key each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_serves_its_configured_key_from_every_instance() {
    if !redis_available().await {
        return;
    }
    let apps = TestApp::redis_cluster(Backend::Sqlite, 1).await.unwrap();
    assert_eq!(apps[0].get("/push/vapid-key", None).await.0, StatusCode::NOT_FOUND);
    let key = chorus::push::Vapid::generate("mailto:ops@example.com").unwrap();
    let private = key.private_base64();
    let apps =
        TestApp::redis_cluster_with(Backend::Sqlite, 2, |c| c.push.vapid_private_key = Some(private)).await.unwrap();
    for app in &apps {
        let (s, v) = app.get("/push/vapid-key", None).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["public_key"], key.public_key().as_str());
    }
}
