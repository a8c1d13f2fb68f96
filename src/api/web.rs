//! The built-in web page: static files compiled into the binary, served under a strict CSP
//! (no inline scripts or styles, nothing from other origins). The token stays in the browser.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// Scripts, styles and connections from this origin only; images also as `data:` URLs (inline
/// post images). No inline code, no framing, forms post nowhere.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

const JS: &str = "text/javascript; charset=utf-8";

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // Revalidate, so a new node version's page is picked up at once.
            (header::CACHE_CONTROL, "no-cache"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// The page: groups, timeline, post box, gateway links and node status.
#[utoipa::path(get, path = "/", tag = "web",
    responses((status = 200, description = "HTML page", content_type = "text/html", body = String)))]
pub async fn page() -> Response {
    let mut resp = file("text/html; charset=utf-8", include_str!("web/index.html"));
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(PAGE_CSP),
    );
    resp
}

/// Declares one static file of the page: its handler and its OpenAPI entry.
macro_rules! static_file {
    ($name:ident, $path:literal, $content_type:expr, $content_type_doc:literal, $file:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(get, path = $path, tag = "web",
            responses((status = 200, description = $doc, content_type = $content_type_doc, body = String)))]
        pub async fn $name() -> Response {
            file($content_type, include_str!($file))
        }
    };
}

static_file!(
    script,
    "/app.js",
    JS,
    "text/javascript",
    "web/app.js",
    "The page's entry module (sign-in, groups, composer)."
);
static_file!(
    api_module,
    "/web/api.js",
    JS,
    "text/javascript",
    "web/api.js",
    "Module: the REST client (token, JSON errors)."
);
static_file!(
    render_module,
    "/web/render.js",
    JS,
    "text/javascript",
    "web/render.js",
    "Module: DOM helpers and post content rendering."
);
static_file!(
    timeline_module,
    "/web/timeline.js",
    JS,
    "text/javascript",
    "web/timeline.js",
    "Module: the paged, live timeline."
);
static_file!(
    gateways_module,
    "/web/gateways.js",
    JS,
    "text/javascript",
    "web/gateways.js",
    "Module: gateway accounts and links."
);
static_file!(
    status_module,
    "/web/status.js",
    JS,
    "text/javascript",
    "web/status.js",
    "Module: peers, sync, producers and members."
);
static_file!(
    style,
    "/web/style.css",
    "text/css; charset=utf-8",
    "text/css",
    "web/style.css",
    "The page's style sheet."
);
