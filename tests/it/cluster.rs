//! Several instances sharing a database and a real Redis: cross-instance delivery, resume on
//! another instance, revocation everywhere, presence, and surviving a Redis restart.

use std::time::Duration;

use chorus::domain::Id;
use chorus::events::{EventName, Topic};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::ws::WsClient;
use crate::support::{Backend, PrivateRedis, TestApp, TestUser, eventually, publish};

both_backends!(
    redis_delivers_across_instances_exactly_once_and_in_order,
    resume_on_another_instance_gets_exactly_the_missed_events,
    logout_on_one_instance_closes_sockets_on_the_others,
    presence_is_right_across_instances,
    redis_restart_is_survived_and_missed_events_are_recovered,
);

fn uid(u: &TestUser) -> Id {
    u.id.parse().unwrap()
}

async fn redis_delivers_across_instances_exactly_once_and_in_order(b: Backend) {
    let Some(apps) = TestApp::redis_cluster(b, 2).await else { return };
    let alice = apps[0].register("alice").await;
    let feed = Topic::Feed(uid(&alice));
    let mut on_a = WsClient::connect(&apps[0].base, &alice.token).await;
    let mut on_b = WsClient::connect(&apps[1].base, &alice.token).await;
    let bob = apps[1].register("bobby").await;
    // Someone else's post: its fan-out must not add to alice's feed.
    let carol = apps[0].register("carol").await;
    let post = crate::posts::new_post(&apps[0], &carol, "watched").await;
    let (topic, watched) = (format!("post:{post}"), Topic::Post(post.parse().unwrap()));
    let mut post_watchers = vec![];
    for app in &apps {
        let mut w = WsClient::connect(&app.base, &bob.token).await;
        w.subscribe(&topic).await;
        post_watchers.push(w);
    }
    let (a, bb) = (&apps[0], &apps[1]);
    tokio::join!(
        async {
            for i in 0..30 {
                publish(a, &[feed, watched], EventName::PostCreated, json!({"from": "a", "i": i})).await;
            }
        },
        async {
            for i in 0..30 {
                publish(bb, &[feed, watched], EventName::PostCreated, json!({"from": "b", "i": i})).await;
            }
        }
    );
    for ws in [&mut on_a, &mut on_b] {
        for seq in 1..=60 {
            let e = ws.expect_event("feed", "post.created").await;
            assert_eq!(e["seq"], seq.to_string(), "in order, no gap, no duplicate");
        }
        ws.assert_no_event(Duration::from_millis(300)).await;
    }
    // Ephemeral: each watcher gets each event once, and per publisher in order.
    for w in &mut post_watchers {
        let mut seen_a = vec![];
        let mut seen_b = vec![];
        for _ in 0..60 {
            let e = w.expect_event(&topic, "post.created").await;
            let i = e["data"]["i"].as_i64().unwrap();
            if e["data"]["from"] == "a" { seen_a.push(i) } else { seen_b.push(i) }
        }
        assert_eq!(seen_a, (0..30).collect::<Vec<_>>());
        assert_eq!(seen_b, (0..30).collect::<Vec<_>>());
        w.assert_no_event(Duration::from_millis(300)).await;
    }
}

async fn resume_on_another_instance_gets_exactly_the_missed_events(b: Backend) {
    let Some(apps) = TestApp::redis_cluster(b, 2).await else { return };
    let alice = apps[0].register("alice").await;
    let feed = Topic::Feed(uid(&alice));
    let mut ws = WsClient::connect(&apps[0].base, &alice.token).await;
    for i in 1..=3 {
        publish(&apps[1], &[feed], EventName::PostCreated, json!({"n": i})).await;
    }
    let mut last = String::new();
    for _ in 1..=3 {
        last = ws.expect_event("feed", "post.created").await["seq"].as_str().unwrap().to_string();
    }
    ws.close().await;
    for i in 4..=7 {
        publish(&apps[0], &[feed], EventName::PostCreated, json!({"n": i})).await;
    }
    let mut ws = WsClient::connect_resuming(&apps[1].base, &alice.token, json!({"feed": last})).await;
    for n in 4..=7 {
        let e = ws.expect_event("feed", "post.created").await;
        assert_eq!((e["seq"].clone(), e["data"]["n"].clone()), (json!(n.to_string()), json!(n)));
    }
    publish(&apps[0], &[feed], EventName::PostCreated, json!({"n": 8})).await;
    assert_eq!(ws.expect_event("feed", "post.created").await["seq"], "8");
    ws.assert_no_event(Duration::from_millis(300)).await;
}

async fn logout_on_one_instance_closes_sockets_on_the_others(b: Backend) {
    let Some(apps) = TestApp::redis_cluster(b, 2).await else { return };
    let alice = apps[0].register("alice").await;
    let mut on_b = WsClient::connect(&apps[1].base, &alice.token).await;
    assert_eq!(apps[0].call(Method::POST, "/auth/logout", alice.bearer(), None).await.0, StatusCode::NO_CONTENT);
    assert_eq!(on_b.expect_close().await.0, 4501);
    // The revocation holds on the other instance at once (it lives in Redis).
    assert_eq!(apps[1].get("/auth/me", alice.bearer()).await.0, StatusCode::UNAUTHORIZED);
}

async fn presence_is_right_across_instances(b: Backend) {
    let Some(apps) = TestApp::redis_cluster(b, 2).await else { return };
    let alice = apps[0].register("alice").await;
    let bob = apps[0].register("bobby").await;
    let mut watcher = WsClient::connect(&apps[1].base, &bob.token).await;
    let ack = watcher.subscribe(&format!("presence:{}", alice.id)).await;
    assert_eq!(ack["data"]["presence"]["online"], false);
    let alice_ws = WsClient::connect(&apps[0].base, &alice.token).await;
    let e = watcher.expect_event(&format!("presence:{}", alice.id), "presence.changed").await;
    assert_eq!(e["data"]["online"], true);
    alice_ws.close().await;
    let e = watcher.expect_event(&format!("presence:{}", alice.id), "presence.changed").await;
    assert_eq!(e["data"]["online"], false);
    assert!(e["data"]["last_seen"].is_string());
}

async fn redis_restart_is_survived_and_missed_events_are_recovered(b: Backend) {
    let Some(mut redis) = PrivateRedis::start().await else { return };
    let apps = TestApp::redis_cluster_at(b, 2, &redis.url()).await;
    let alice = apps[0].register("alice").await;
    let feed = Topic::Feed(uid(&alice));
    let mut ws = WsClient::connect(&apps[0].base, &alice.token).await;
    publish(&apps[1], &[feed], EventName::PostCreated, json!({"n": 1})).await;
    assert_eq!(ws.expect_event("feed", "post.created").await["seq"], "1");

    redis.kill();
    let ready = |app: &TestApp| {
        let (http, url) = (app.http.clone(), format!("{}/ready", app.base));
        async move {
            let r = http.get(url).send().await.ok()?;
            Some((r.status(), r.json::<Value>().await.ok()?))
        }
    };
    let (status, body) = eventually(Duration::from_secs(10), || async {
        ready(&apps[0]).await.filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE)
    })
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["redis"], "down", "{body}");
    // Written while Redis is away: stored, but no instance can broadcast it.
    publish(&apps[1], &[feed], EventName::PostCreated, json!({"n": 2})).await;

    redis.restart();
    eventually(Duration::from_secs(20), || async { ready(&apps[0]).await.filter(|(s, _)| *s == StatusCode::OK) }).await;
    // The reconnected broker makes sessions re-read their durable topics: the missed event
    // arrives without the client doing anything, then live ones continue.
    let e = ws.expect_event("feed", "post.created").await;
    assert_eq!((e["seq"].clone(), e["data"]["n"].clone()), (json!("2"), json!(2)));
    publish(&apps[1], &[feed], EventName::PostCreated, json!({"n": 3})).await;
    assert_eq!(ws.expect_event("feed", "post.created").await["seq"], "3");
    let metrics = apps[0].http.get(format!("{}/metrics", apps[0].base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("chorus_broker_reconnects_total"), "reconnects are counted");
}
