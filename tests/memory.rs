//! Memory bounds, measured in a test binary of their own so that no other test shares the
//! process while resident memory is read.

#[path = "it/support/mod.rs"]
mod support;

use std::time::Duration;

use chorus::events::{EventBatch, EventName, Topic};
use serde_json::json;
use support::ws::WsClient;
use support::{Backend, TestApp, rss_kib};

/// A client that stops reading is cut off, and the server does not buffer for it: pushing
/// ~94 MiB of events at it (and at a healthy client) leaves resident memory flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_does_not_grow_server_memory() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.hub.queue_frames = 16).await;
    let alice = app.register("alice").await;
    let bob = app.register("bobby").await;
    // Alice's public `user:` topic: anyone may watch it.
    let (topic, watched) = (format!("user:{}", alice.id), Topic::User(alice.id.parse().unwrap()));
    let mut slow = WsClient::connect(&app.base, &alice.token).await;
    slow.subscribe(&topic).await;
    let mut healthy = WsClient::connect(&app.base, &bob.token).await.without_log();
    healthy.subscribe(&topic).await;
    let _slow = slow.into_inner(); // never read again

    let blob = "x".repeat(64 * 1024);
    let mut batch = EventBatch::new();
    let mut warm = 0;
    for i in 0..1500u32 {
        batch.ephemeral(&[watched], EventName::CommentCreated, &json!({"i": i, "blob": blob}));
        if i % 8 == 7 {
            app.state.publish(std::mem::take(&mut batch));
            for _ in 0..8 {
                healthy.expect_event(&topic, "comment.created").await;
            }
        }
        if i == 199 {
            warm = rss_kib(); // after allocator warm-up and the slow client's buffers filled
        }
    }
    let grown_mib = rss_kib().saturating_sub(warm) / 1024;
    assert!(grown_mib < 16, "server memory grew by {grown_mib} MiB while ~81 MiB more were published");
    support::eventually(Duration::from_secs(10), || async {
        (app.state.hub.subscriber_count(&watched) == 1).then_some(())
    })
    .await;
}
