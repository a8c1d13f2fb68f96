//! Debian's headless chromium driven through the DevTools protocol (chromiumoxide), for tests of
//! the web page: launch with a fresh profile, open the node's page, evaluate, click, type, poll.

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::browser::{
    PermissionDescriptor, PermissionSetting, SetPermissionParams,
};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::browser_protocol::performance::EnableParams as PerformanceEnable;
use chromiumoxide::cdp::js_protocol::heap_profiler::CollectGarbageParams;
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Where Debian puts chromium (`RUMGATE_CHROMIUM` overrides it).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a condition may take to show on the page.
pub const WAIT: Duration = Duration::from_secs(20);

/// Records CSP violations and uncaught errors of every document, for `Tab::assert_clean`.
const WATCH: &str = r#"
window.__rumgate_test = { csp: [], errors: [] };
document.addEventListener("securitypolicyviolation",
  (e) => window.__rumgate_test.csp.push(e.violatedDirective + " " + e.blockedURI));
window.addEventListener("error", (e) => window.__rumgate_test.errors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => window.__rumgate_test.errors.push(String(e.reason)));
"#;

pub struct Chrome {
    browser: Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: TempDir,
}

impl Chrome {
    /// Starts headless chromium with a fresh profile. Fails (never skips) when it is missing.
    pub async fn launch() -> Chrome {
        let exe = std::env::var("RUMGATE_CHROMIUM").unwrap_or_else(|_| CHROMIUM.to_string());
        assert!(
            std::path::Path::new(&exe).exists(),
            "{exe} not found: the web page tests drive Debian's chromium — install it with \
             `apt-get install -y chromium`"
        );
        let profile = tempfile::tempdir().expect("profile dir");
        let config = BrowserConfig::builder()
            .chrome_executable(&exe)
            .disable_default_args()
            // Flag names without the leading `--` (chromiumoxide adds it).
            .args([
                "headless",
                "no-sandbox",
                "disable-gpu",
                "disable-quic",
                "no-first-run",
                "disable-background-networking",
                "disable-component-update",
                "disable-sync",
                "hide-scrollbars",
                "mute-audio",
            ])
            .user_data_dir(profile.path())
            .window_size(1440, 900)
            .viewport(None)
            .launch_timeout(Duration::from_secs(60))
            .request_timeout(Duration::from_secs(60))
            .build()
            .expect("browser config");
        let (browser, mut events) = Browser::launch(config)
            .await
            .unwrap_or_else(|e| panic!("cannot start {exe}: {e}"));
        let handler = tokio::spawn(async move { while events.next().await.is_some() {} });
        Chrome {
            browser,
            handler,
            _profile: profile,
        }
    }

    /// A new tab on `url`, with CSP violations and uncaught errors recorded, and clipboard
    /// access granted to its origin (as a user would grant it).
    pub async fn open(&self, url: &str) -> Tab {
        let origin = url::Url::parse(url)
            .expect("page url")
            .origin()
            .ascii_serialization();
        for name in ["clipboard-read", "clipboard-write"] {
            let mut grant = SetPermissionParams::new(
                PermissionDescriptor::new(name),
                PermissionSetting::Granted,
            );
            grant.origin = Some(origin.clone());
            self.browser
                .execute(grant)
                .await
                .unwrap_or_else(|e| panic!("grant {name}: {e}"));
        }
        let page = self.browser.new_page("about:blank").await.expect("new tab");
        page.evaluate_on_new_document(WATCH)
            .await
            .expect("install watcher");
        page.execute(PerformanceEnable::default())
            .await
            .expect("enable performance metrics");
        let tab = Tab { page };
        tab.goto(url).await;
        tab
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

pub struct Tab {
    pub page: Page,
}

impl Tab {
    pub async fn goto(&self, url: &str) {
        self.page
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
    }

    /// Evaluates `js` (an expression; promises are awaited) and returns its JSON value.
    pub async fn eval<T: DeserializeOwned>(&self, js: &str) -> T {
        let params = EvaluateParams::builder()
            .expression(js)
            .await_promise(true)
            .return_by_value(true)
            .build()
            .expect("evaluate params");
        let result = self
            .page
            .evaluate_expression(params)
            .await
            .unwrap_or_else(|e| panic!("evaluating {js}: {e}"));
        let value = result.value().cloned().unwrap_or(Value::Null);
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{js} gave {value}, not the expected type: {e}"))
    }

    /// Polls `js` until it yields something other than null/false/undefined; that value.
    pub async fn wait(&self, what: &str, js: &str) -> Value {
        self.wait_for(what, js, WAIT).await
    }

    pub async fn wait_for(&self, what: &str, js: &str, limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            let v: Value = self.eval(js).await;
            if !(v.is_null() || v == Value::Bool(false)) {
                return v;
            }
            if start.elapsed() > limit {
                let error: Value = self
                    .eval("document.getElementById('error')?.hidden === false ? document.getElementById('error-text').textContent : null")
                    .await;
                panic!("timed out after {limit:?} waiting for {what} (page error banner: {error})");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// A real mouse click at the element's centre (scrolled into view first).
    pub async fn click(&self, selector: &str) {
        self.page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("no element {selector}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    /// Clicks into a field, clears it and types `text` as key events.
    pub async fn type_into(&self, selector: &str, text: &str) {
        let sel = serde_json::to_string(selector).expect("selector");
        let _: Value = self
            .eval(&format!("(document.querySelector({sel}).value = '', null)"))
            .await;
        self.page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("no element {selector}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {selector}: {e}"))
            .type_str(text)
            .await
            .unwrap_or_else(|e| panic!("type into {selector}: {e}"));
    }

    /// Sets a field's value (for long or non-typable text), firing `input`/`change`.
    pub async fn set_value(&self, selector: &str, value: &str) {
        let sel = serde_json::to_string(selector).expect("selector");
        let val = serde_json::to_string(value).expect("value");
        let _: Value = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({sel}); e.value = {val}; \
                 e.dispatchEvent(new Event('input', {{bubbles: true}})); \
                 e.dispatchEvent(new Event('change', {{bubbles: true}})); return null; }})()"
            ))
            .await;
    }

    /// The text of the error banner, once it shows.
    pub async fn error_banner(&self) -> String {
        self.wait(
            "the error banner",
            "document.getElementById('error').hidden ? null : document.getElementById('error-text').textContent",
        )
        .await
        .as_str()
        .expect("banner text")
        .to_string()
    }

    /// Number of posts in the timeline's DOM.
    pub async fn post_count(&self) -> usize {
        self.eval("document.querySelectorAll('#items > article').length")
            .await
    }

    /// Contents of the timeline's posts, top (newest) first.
    pub async fn contents(&self) -> Vec<String> {
        self.eval(
            "[...document.querySelectorAll('#items > article .content')].map(e => e.textContent)",
        )
        .await
    }

    /// JS heap in use after a garbage collection (CDP `Performance.getMetrics`), in bytes.
    pub async fn heap_used(&self) -> f64 {
        self.page
            .execute(CollectGarbageParams::default())
            .await
            .expect("collect garbage");
        self.metric("JSHeapUsedSize").await
    }

    pub async fn metric(&self, name: &str) -> f64 {
        self.page
            .metrics()
            .await
            .expect("performance metrics")
            .into_iter()
            .find(|m| m.name == name)
            .map(|m| m.value)
            .unwrap_or_else(|| panic!("no metric {name}"))
    }

    pub async fn screenshot(&self, path: &std::path::Path) {
        let png = self
            .page
            .screenshot(
                ScreenshotParams::builder()
                    .format(CaptureScreenshotFormat::Png)
                    .build(),
            )
            .await
            .expect("screenshot");
        std::fs::write(path, png).expect("write screenshot");
    }

    /// The page broke no CSP rule and threw no uncaught error.
    pub async fn assert_clean(&self) {
        let v: Value = self.eval("window.__rumgate_test").await;
        assert_eq!(v["csp"], serde_json::json!([]), "CSP violations: {v}");
        assert_eq!(v["errors"], serde_json::json!([]), "uncaught errors: {v}");
    }
}
