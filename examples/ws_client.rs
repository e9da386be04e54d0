//! A minimal Chorus client: logs in over REST, connects to `/ws` (subprotocol `chorus.v1`),
//! and prints every event of the feed and notifications — resuming where it left off when
//! the server asks it to reconnect (close codes 4000–4499).
//!
//! ```sh
//! cargo run --release                               # a server, in another terminal
//! cargo run --example ws_client -- --base http://127.0.0.1:3000 --login alice --password 'password123'
//! ```
//! (`--register` creates the account first.)

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

struct Args {
    base: String,
    login: String,
    password: String,
    register: bool,
}

fn args() -> Args {
    let mut a =
        Args { base: "http://127.0.0.1:3000".into(), login: String::new(), password: String::new(), register: false };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--base" => a.base = it.next().expect("--base URL"),
            "--login" => a.login = it.next().expect("--login NAME"),
            "--password" => a.password = it.next().expect("--password PASSWORD"),
            "--register" => a.register = true,
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(!a.login.is_empty() && !a.password.is_empty(), "--login and --password are required");
    a
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args();
    let http = reqwest::Client::new();
    let api = format!("{}/api/v1", a.base);
    if a.register {
        let r = http
            .post(format!("{api}/auth/register"))
            .json(&json!({"username": a.login, "email": format!("{}@example.com", a.login), "password": a.password}))
            .send()
            .await?;
        println!("register: {}", r.status());
    }
    let auth: Value = http
        .post(format!("{api}/auth/login"))
        .json(&json!({"login": a.login, "password": a.password}))
        .send()
        .await?
        .json()
        .await?;
    let token = auth["access_token"].as_str().ok_or_else(|| anyhow::anyhow!("login failed: {auth}"))?.to_string();

    // Last seq seen per durable topic: sent back on reconnect so nothing is missed.
    let mut positions: HashMap<String, String> = HashMap::new();
    loop {
        let pos = serde_json::to_string(&positions)?;
        let url = format!(
            "{}/ws?access_token={token}&positions={}",
            a.base.replacen("http", "ws", 1),
            url::form_urlencoded::byte_serialize(pos.as_bytes()).collect::<String>()
        );
        let mut req = url.into_client_request()?;
        req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("chorus.v1"));
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await?;
        let mut reconnect = false;
        while let Some(msg) = ws.next().await {
            match msg? {
                Message::Text(t) => {
                    let f: Value = serde_json::from_str(&t)?;
                    match f["op"].as_str() {
                        Some("hello") => println!("connected as user {}", f["data"]["user_id"]),
                        Some("event") => {
                            if let (Some(topic), Some(seq)) = (f["topic"].as_str(), f["seq"].as_str()) {
                                positions.insert(topic.to_string(), seq.to_string());
                            }
                            println!("{} {} {}", f["topic"], f["event"], f["data"]);
                        }
                        Some("resync_required") => {
                            println!("{} is too far behind: refetch it over REST", f["topic"]);
                            positions.insert(
                                f["topic"].as_str().unwrap_or_default().to_string(),
                                f["seq"].as_str().unwrap_or("0").into(),
                            );
                        }
                        Some("reconnect") => reconnect = true,
                        _ => println!("{t}"),
                    }
                }
                Message::Ping(p) => ws.send(Message::Pong(p)).await?,
                Message::Close(frame) => {
                    let code = frame.as_ref().map(|f| u16::from(f.code)).unwrap_or(1005);
                    println!("closed: {frame:?}");
                    reconnect |= (4000..4500).contains(&code);
                    break;
                }
                _ => {}
            }
        }
        if !reconnect {
            return Ok(());
        }
        println!("reconnecting and resuming from {positions:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
