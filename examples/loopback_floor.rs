//! `loopback_floor`: what this machine's kernel allows a fan-out, with no server at all.
//!
//! `--writers` threads (1 unless told) write a message of `--size` bytes to each of their
//! share of `--conns` loopback TCP connections in turn (`--batch` messages per `write`),
//! for `--rounds` rounds; a one-thread
//! tokio runtime reads them all, as a load generator would. It prints messages/s and the
//! CPU seconds per million messages of the writer and of the reader, as JSON. It is the
//! ceiling for any server that sends each delivery with its own syscall (`--batch 1`), and
//! shows what writing several events per send buys (`--batch N`).
//!
//! ```sh
//! CARGO_TARGET_DIR=target/examples cargo build --release --example loopback_floor && ulimit -n 65536
//! target/examples/release/examples/loopback_floor --conns 10000 --rounds 100 --batch 1
//! target/examples/release/examples/loopback_floor --conns 10000 --rounds 100 --batch 4
//! ```

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::json;
use tokio::io::AsyncReadExt;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map_or(default, |v| v.parse().unwrap())
}

/// CPU seconds (user + system) of one thread of this process, from `/proc`.
fn thread_cpu_secs(tid: i64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn gettid() -> i64 {
    std::fs::read_link("/proc/thread-self").ok().and_then(|p| p.file_name()?.to_str()?.parse().ok()).unwrap_or(0)
}

fn main() {
    let (conns, rounds, size, batch) =
        (arg("--conns", 10_000) as usize, arg("--rounds", 100), arg("--size", 200) as usize, arg("--batch", 1).max(1));
    let nodelay = arg("--nodelay", 1) == 1;
    let writers = arg("--writers", 1).max(1) as usize;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    // Each connection gets `rounds / batch` writes of `batch` messages.
    let writes = rounds / batch;
    let expected = conns as u64 * writes * batch * size as u64;

    // The reader: one runtime thread, one task per connection, 8 KiB reads.
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut streams = Vec::with_capacity(conns);
    for _ in 0..conns {
        let client = std::net::TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nodelay(nodelay).unwrap();
        client.set_nonblocking(true).unwrap();
        let got = received.clone();
        rt.spawn(async move {
            let mut s = tokio::net::TcpStream::from_std(client).unwrap();
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                got.fetch_add(n as u64, Ordering::Relaxed);
            }
        });
        streams.push(server);
    }
    let reader_tid = rt.block_on(async { tokio::spawn(async { gettid() }).await.unwrap() });
    let reader_cpu0 = thread_cpu_secs(reader_tid);

    let msg = Arc::new(vec![b'x'; size * batch as usize]);
    let started = Instant::now();
    let per_writer = conns.div_ceil(writers);
    let mut handles = Vec::new();
    while !streams.is_empty() {
        let mut mine: Vec<std::net::TcpStream> = streams.drain(..per_writer.min(streams.len())).collect();
        let msg = msg.clone();
        handles.push(std::thread::spawn(move || {
            let tid = gettid();
            let cpu0 = thread_cpu_secs(tid);
            for _ in 0..writes {
                for s in &mut mine {
                    s.write_all(&msg).unwrap();
                }
            }
            (thread_cpu_secs(tid) - cpu0, mine)
        }));
    }
    // Joined (and the streams kept open) before the reads are counted.
    let done: Vec<(f64, Vec<std::net::TcpStream>)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let writer_cpu: f64 = done.iter().map(|d| d.0).sum();
    while received.load(Ordering::Relaxed) < expected {
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    let secs = started.elapsed().as_secs_f64();
    let reader_cpu = thread_cpu_secs(reader_tid) - reader_cpu0;
    let msgs = (expected / size as u64) as f64;
    println!(
        "{}",
        json!({
            "conns": conns, "size": size, "batch": batch, "nodelay": nodelay, "writers": writers,
            "messages": msgs,
            "messages_per_sec": (msgs / secs).round(),
            "writer_cpu_secs_per_million": writer_cpu / msgs * 1e6,
            "reader_cpu_secs_per_million": reader_cpu / msgs * 1e6,
        })
    );
}
