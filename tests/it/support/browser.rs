//! A real browser for the web client's tests: Debian's headless Chromium driven over
//! WebDriver (fantoccini) by Debian's chromedriver, one chromedriver per test and one
//! browser session — its own profile, storage and cookies — per user.
//!
//! Waiting is done on the page's state (a JavaScript predicate polled through WebDriver),
//! never by sleeping: the client renders what the server pushes whenever it arrives.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::skip_or_fail;

/// How long a page may take to show what a test waits for.
pub const WAIT: Duration = Duration::from_secs(30);

fn find_binary(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    for c in candidates {
        let p = PathBuf::from(c);
        if p.is_absolute() && p.exists() {
            return Some(p);
        }
        if let Some(found) = std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(c)).find(|p| p.exists()))
        {
            return Some(found);
        }
    }
    None
}

/// A running chromedriver.
pub struct Browser {
    driver: Child,
    url: String,
    chromium: PathBuf,
}

impl Browser {
    /// Starts chromedriver for the system Chromium; `None` (after a loud skip) without them.
    pub async fn start() -> Option<Browser> {
        let chromium = find_binary("CHORUS_TEST_CHROMIUM", &["/usr/bin/chromium", "chromium", "chromium-browser"]);
        let driver = find_binary("CHORUS_TEST_CHROMEDRIVER", &["/usr/bin/chromedriver", "chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            skip_or_fail("Chromium and chromedriver (Debian packages chromium, chromium-driver)");
            return None;
        };
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            l.local_addr().unwrap().port()
        };
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = http.get(format!("{url}/status")).send().await
                && r.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == true)
            {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "chromedriver did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(Browser { driver: child, url, chromium })
    }

    /// A new browser session (a fresh profile) with a window of `width` × `height`.
    pub async fn page(&self, width: u32, height: u32) -> Page {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": self.chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         format!("--window-size={width},{height}"), "--hide-scrollbars", "--mute-audio",
                         "--no-first-run", "--disable-background-networking"],
            }),
        );
        caps.insert("unhandledPromptBehavior".into(), json!("accept"));
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session");
        Page { client }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.start_kill();
    }
}

/// One user's browser window.
pub struct Page {
    pub client: Client,
}

/// A Chrome DevTools Protocol command through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp(Value);

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (axum::http::Method::POST, Some(self.0.to_string()))
    }
}

impl Page {
    /// Runs a DevTools command (`Browser.grantPermissions`, `ServiceWorker.deliverPushMessage`):
    /// what WebDriver has no command for.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.client
            .issue_cmd(Cdp(json!({"cmd": cmd, "params": params})))
            .await
            .unwrap_or_else(|e| panic!("{cmd} failed: {e}"))
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Evaluates `script` (a function body; `arguments` are `args`) in the page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until `predicate` (an expression, `arguments` are `args`) is truthy; returns it.
    /// The page itself waits: a MutationObserver re-evaluates the predicate on every DOM
    /// change and answers the asynchronous script as soon as it holds (WebDriver has no
    /// push), re-armed every few seconds and across navigations until [`WAIT`].
    pub async fn until(&self, what: &str, predicate: &str, args: Vec<Value>) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1];
             const test = () => {{ try {{ return ({predicate}) || null; }} catch (e) {{ return null; }} }};
             const first = test();
             if (first) return done(first);
             const obs = new MutationObserver(() => {{ const v = test(); if (v) {{ obs.disconnect(); clearTimeout(t); done(v); }} }});
             obs.observe(document, {{ subtree: true, childList: true, characterData: true, attributes: true }});
             const t = setTimeout(() => {{ obs.disconnect(); done(test()); }}, 3000);"
        );
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.client.execute_async(&script, args.clone()).await.unwrap_or(Value::Null);
            if !v.is_null() && v != Value::Bool(false) {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                let body = self.js("return document.body.innerText", vec![]).await;
                self.shot("failure").await;
                panic!("timed out waiting for {what}; the page shows:\n{}", body.as_str().unwrap_or_default());
            }
        }
    }

    /// Waits for an element matching `css` whose text contains `text`.
    pub async fn until_text(&self, css: &str, text: &str) {
        self.until(
            &format!("{css} containing {text:?}"),
            "[...document.querySelectorAll(arguments[0])].some(e => e.innerText.includes(arguments[1]))",
            vec![json!(css), json!(text)],
        )
        .await;
    }

    /// How many elements match `css` with exactly this text (trimmed).
    pub async fn count_text(&self, css: &str, text: &str) -> u64 {
        self.js(
            "return [...document.querySelectorAll(arguments[0])].filter(e => e.innerText.trim() === arguments[1]).length",
            vec![json!(css), json!(text)],
        )
        .await
        .as_u64()
        .unwrap()
    }

    /// The texts of every element matching `css`, in document order.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let v = self
            .js("return [...document.querySelectorAll(arguments[0])].map(e => e.innerText.trim())", vec![json!(css)])
            .await;
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect()
    }

    pub async fn click(&self, css: &str) {
        self.until(&format!("{css} to be clickable"), "(() => { const e = document.querySelector(arguments[0]); return e && !e.disabled && e.offsetParent !== null; })()", vec![json!(css)]).await;
        self.client
            .find(Locator::Css(css))
            .await
            .expect(css)
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Clicks the first element matching `css` whose text contains `text`.
    pub async fn click_text(&self, css: &str, text: &str) {
        self.until_text(css, text).await;
        let els = self.client.find_all(Locator::Css(css)).await.expect(css);
        for e in els {
            if e.text().await.unwrap_or_default().contains(text) {
                e.click().await.unwrap_or_else(|err| panic!("click {css} {text:?}: {err}"));
                return;
            }
        }
        panic!("no {css} with {text:?}");
    }

    /// Types into the element matching `css` (after it appears).
    pub async fn type_into(&self, css: &str, text: &str) {
        self.until(&format!("{css} to appear"), "document.querySelector(arguments[0])", vec![json!(css)]).await;
        self.client.find(Locator::Css(css)).await.expect(css).send_keys(text).await.expect("type");
    }

    /// The path and query of the page (`/chat/42`).
    pub async fn path(&self) -> String {
        let u = self.client.current_url().await.expect("url");
        format!("{}{}", u.path(), u.query().map(|q| format!("?{q}")).unwrap_or_default())
    }

    /// A PNG of the window, kept under `target/screenshots/` (or `CHORUS_SCREENSHOTS`).
    pub async fn shot(&self, name: &str) {
        let dir = std::env::var("CHORUS_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots"));
        std::fs::create_dir_all(&dir).ok();
        if let Ok(png) = self.client.screenshot().await {
            std::fs::write(dir.join(format!("{name}.png")), png).ok();
        }
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
