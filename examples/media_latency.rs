//! Measures upload-to-ready latency of a 12-megapixel JPEG and the peak memory of the
//! process while it is processed.
//!
//! ```sh
//! cargo run --release --example media_latency            # 5 runs
//! cargo run --release --example media_latency -- 10      # 10 runs
//! ```
//!
//! Starts a complete Chorus in this process (SQLite and local storage in a temporary data
//! dir, the same `Chorus::build` path as `main`), registers a user, and uploads the same
//! 4000×3000 JPEG several times over HTTP. For each run it reports the time until the `201`
//! and until `media.ready` is published on the uploader's `image` topic (seen through the
//! hub tap, as a socket client would see it). Memory is the kernel's peak resident set size
//! (`VmHWM`, reset before each run through `/proc/self/clear_refs`) compared with the RSS just
//! before the upload: Linux only.

use std::time::{Duration, Instant};

use chorus::app::Chorus;
use chorus::config::Config;
use image::{Rgb, RgbImage};
use serde_json::{Value, json};

fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A photo-like 4000×3000 image: smooth gradients with mild noise (compresses like a photo,
/// about 3–4 MB at quality 90).
fn photo() -> Vec<u8> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let img = RgbImage::from_fn(4000, 3000, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let n = (seed % 24) as i32 - 12;
        let r = (x * 255 / 4000) as i32 + n;
        let g = (y * 255 / 3000) as i32 + n;
        let b = (((x + y) / 30) % 256) as i32 + n;
        Rgb([r.clamp(0, 255) as u8, g.clamp(0, 255) as u8, b.clamp(0, 255) as u8])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).expect("encodes");
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let dir = tempfile::tempdir()?;
    let cfg = Config { listen: "127.0.0.1:0".parse()?, data_dir: dir.path().to_path_buf(), ..Config::default() };
    let app = Chorus::build(cfg).await?;
    let base = format!("http://{}/api/v1", app.local_addr());
    let state = app.state().clone();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());

    let http = reqwest::Client::new();
    let auth: Value = http
        .post(format!("{base}/auth/register"))
        .json(&json!({"username": "bench", "email": "bench@example.com", "password": "password123"}))
        .send()
        .await?
        .json()
        .await?;
    let token = auth["access_token"].as_str().expect("registered").to_string();
    let topic = format!("image:{}", auth["user"]["id"].as_str().expect("user id"));

    let jpeg = photo();
    println!(
        "12-megapixel JPEG: 4000×3000, {:.1} MB; {runs} runs; release build, SQLite, local storage",
        jpeg.len() as f64 / 1e6
    );
    println!("{:>4} {:>12} {:>16} {:>14} {:>14}", "run", "201 (ms)", "ready (ms)", "peak RSS (MiB)", "Δ RSS (MiB)");
    let mut ready_ms = Vec::new();
    let mut deltas = Vec::new();
    let mut peaks = Vec::new();
    for run in 1..=runs {
        let mut tap = state.hub.tap();
        let baseline = status_kib("VmRSS:").unwrap_or(0);
        let can_reset = reset_peak();
        let started = Instant::now();
        let part = reqwest::multipart::Part::bytes(jpeg.clone()).file_name("photo.jpg");
        let resp = http
            .post(format!("{base}/media"))
            .bearer_auth(&token)
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 201, "upload answered {}", resp.status());
        let accepted = started.elapsed();
        let id = resp.json::<Value>().await?["id"].as_str().expect("id").to_string();
        let ready = tokio::time::timeout(Duration::from_secs(120), async {
            loop {
                let env = tap.recv().await.expect("tap open");
                if *env.topic == *topic && env.event.as_str() != "media.processing" && env.data.contains(&id) {
                    return (started.elapsed(), env.event.as_str());
                }
            }
        })
        .await?;
        anyhow::ensure!(ready.1 == "media.ready", "processing ended with {}", ready.1);
        let peak = if can_reset { status_kib("VmHWM:").unwrap_or(0) } else { 0 };
        let delta = peak.saturating_sub(baseline);
        println!(
            "{run:>4} {:>12.1} {:>16.1} {:>14.1} {:>14.1}",
            accepted.as_secs_f64() * 1e3,
            ready.0.as_secs_f64() * 1e3,
            peak as f64 / 1024.0,
            delta as f64 / 1024.0
        );
        ready_ms.push(ready.0.as_secs_f64() * 1e3);
        deltas.push(delta as f64 / 1024.0);
        peaks.push(peak as f64 / 1024.0);
    }
    ready_ms.sort_by(f64::total_cmp);
    let median = ready_ms[ready_ms.len() / 2];
    println!(
        "upload-to-ready: median {median:.0} ms (min {:.0}, max {:.0}); peak RSS {:.0} MiB, at most {:.0} MiB above the pre-upload RSS",
        ready_ms[0],
        ready_ms[ready_ms.len() - 1],
        peaks.iter().copied().fold(0.0, f64::max),
        deltas.iter().copied().fold(0.0, f64::max)
    );
    shutdown.cancel();
    server.await??;
    Ok(())
}
