//! A real SMTP listener on loopback that accepts every message and hands it to the test.
//! It speaks enough of RFC 5321 for lettre (EHLO, MAIL, RCPT, DATA with dot-unstuffing, RSET,
//! NOOP, QUIT) over plain TCP. [`start_refusing`] makes it answer `MAIL FROM` with a
//! transient `451` for the first N messages (or until told otherwise), to test retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Controls a listener started with [`start_refusing`].
#[derive(Clone)]
pub struct Control {
    /// Messages still to refuse (`usize::MAX`: all, until [`Control::accept`]).
    left: Arc<AtomicUsize>,
    /// Messages refused so far.
    refused: watch::Receiver<usize>,
}

impl Control {
    /// Accepts every message from now on.
    pub fn accept(&self) {
        self.left.store(0, Ordering::SeqCst);
    }

    /// Messages refused so far.
    pub fn refused(&self) -> usize {
        *self.refused.borrow()
    }

    /// Waits until at least `n` messages were refused.
    pub async fn wait_refused(&mut self, n: usize) {
        self.refused.wait_for(|r| *r >= n).await.expect("smtp listener alive");
    }
}

/// A received message.
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl Received {
    /// The body, decoded like a mail client would (quoted-printable when so declared).
    pub fn body(&self) -> String {
        let (headers, body) = self.data.split_once("\n\n").unwrap_or(("", &self.data));
        if headers.to_ascii_lowercase().contains("content-transfer-encoding: quoted-printable") {
            decode_quoted_printable(body)
        } else {
            body.to_string()
        }
    }
}

/// RFC 2045 quoted-printable: `=XX` escapes and `=` soft line breaks.
fn decode_quoted_printable(s: &str) -> String {
    let joined = s.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Starts the listener; returns the `smtp://` URL for Chorus and the message stream.
pub async fn start() -> (String, mpsc::UnboundedReceiver<Received>) {
    let (url, rx, _) = start_refusing(0).await;
    (url, rx)
}

/// Like [`start`], but the first `refuse` messages get `451` at `MAIL FROM` (a transient
/// failure: the sender is expected to retry). `usize::MAX` refuses until [`Control::accept`].
pub async fn start_refusing(refuse: usize) -> (String, mpsc::UnboundedReceiver<Received>, Control) {
    let left = Arc::new(AtomicUsize::new(refuse));
    let (refused_tx, refused_rx) = watch::channel(0usize);
    let refused_tx = Arc::new(refused_tx);
    let control = Control { left: left.clone(), refused: refused_rx };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp");
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let tx = tx.clone();
            let (left, refused_tx) = (left.clone(), refused_tx.clone());
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                let _ = w.write_all(b"220 test-smtp ready\r\n").await;
                let (mut from, mut to) = (String::new(), Vec::new());
                while let Ok(Some(line)) = lines.next_line().await {
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-test-smtp\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("HELO") {
                        b"250 test-smtp\r\n"
                    } else if upper.starts_with("MAIL FROM:")
                        && left
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| match l {
                                0 => None,
                                usize::MAX => Some(usize::MAX),
                                l => Some(l - 1),
                            })
                            .is_ok()
                    {
                        refused_tx.send_modify(|r| *r += 1);
                        b"451 4.3.0 try again later\r\n"
                    } else if upper.starts_with("MAIL FROM:") {
                        from = line[10..].trim().trim_matches(|c| c == '<' || c == '>').to_string();
                        b"250 OK\r\n"
                    } else if upper.starts_with("RCPT TO:") {
                        to.push(line[8..].trim().trim_matches(|c| c == '<' || c == '>').to_string());
                        b"250 OK\r\n"
                    } else if upper == "DATA" {
                        let _ = w.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await;
                        let mut data = String::new();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            data.push_str(l.strip_prefix('.').unwrap_or(&l));
                            data.push('\n');
                        }
                        let _ =
                            tx.send(Received { from: std::mem::take(&mut from), to: std::mem::take(&mut to), data });
                        b"250 OK queued\r\n"
                    } else if upper == "QUIT" {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        break;
                    } else if upper.starts_with("RSET") || upper.starts_with("NOOP") {
                        b"250 OK\r\n"
                    } else {
                        b"502 not implemented\r\n"
                    };
                    if w.write_all(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (format!("smtp://{addr}"), rx, control)
}
