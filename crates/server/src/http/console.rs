//! The web console (INTERFACE §7): `GET /admin/` and its assets, compiled into the
//! binary, so `cargo run` and the release binary serve it with no Node.js and no
//! files beside them.
//!
//! The console is hand-written HTML, CSS and JavaScript modules under
//! `crates/server/console/` (no build step, so there is no generated output to drift
//! from its source). It is a client of the admin API and the token endpoint like any
//! other: it gets no privileges from being served here, and this module only hands
//! out static bytes.
//!
//! Every answer under `/admin/` and `/admin/assets/` (a `304`, a `404` and a `405`
//! included) carries a strict `Content-Security-Policy`, so the pages run only the
//! scripts and styles served here (no inline script, no `eval`, no other origin) and
//! may talk only to this broker; no framing, no `Referer`, no MIME sniffing. Assets
//! are revalidated on every use (`no-cache` with an `ETag` of their content), so a
//! browser never runs an old script against an upgraded broker, and an unchanged
//! one costs a `304`.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::LazyLock;

/// What the console's pages may load and where they may send data: only this origin,
/// no inline script or style (every handler is attached from a module), no `eval`,
/// `data:` images only (none are used today; it keeps a future inline icon from
/// needing a policy change). `form-action 'self'`: the sign-in form is submitted by
/// script, but a form that somehow posts natively stays on this origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One file of the console.
#[derive(Debug)]
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// Includes `crates/server/console/<path>`.
macro_rules! asset {
    ($path:literal, $name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../../console/", $path)),
        }
    };
}

/// The page itself, at `/admin/`.
const INDEX: Asset = asset!("index.html", "index.html", "text/html; charset=utf-8");

/// Everything at `/admin/assets/NAME`. A unit test checks this list against the
/// `console/assets` directory, so a new file cannot be forgotten here.
const ASSETS: [Asset; 12] = [
    asset!("assets/app.js", "app.js", JS),
    asset!("assets/api.js", "api.js", JS),
    asset!("assets/dom.js", "dom.js", JS),
    asset!("assets/chart.js", "chart.js", JS),
    asset!("assets/home.js", "home.js", JS),
    asset!("assets/clients.js", "clients.js", JS),
    asset!("assets/client.js", "client.js", JS),
    asset!("assets/keys.js", "keys.js", JS),
    asset!("assets/audit.js", "audit.js", JS),
    asset!("assets/token.js", "token.js", JS),
    asset!(
        "assets/console.css",
        "console.css",
        "text/css; charset=utf-8"
    ),
    asset!("assets/icon.svg", "icon.svg", "image/svg+xml"),
];

/// Strong `ETag`s (RFC 9110 §8.8.3) from each file's SHA-256, computed once: they
/// change exactly when the bytes do, whatever the version number says.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    std::iter::once(&INDEX)
        .chain(ASSETS.iter())
        .map(|a| {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, a.body);
            let hex: String = digest.as_ref()[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            HeaderValue::from_str(&format!("\"{hex}\""))
                .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
        })
        .collect()
});

/// The console's routes (`/admin`, `/admin/`, `/admin/assets/{name}`), each answer
/// with the headers of `security_headers`. Merged into the broker's router beside `/admin/v1`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/admin", get(redirect).fallback(super::only("GET")))
        .route("/admin/", get(index).fallback(super::only("GET")))
        .route(
            "/admin/assets/{name}",
            get(asset).fallback(super::only("GET")),
        )
        .layer(axum::middleware::map_response(security_headers))
}

/// `/admin` → `/admin/`, so the page's relative asset and API paths resolve under
/// `/admin/`. The `Location` is relative (`admin/`, resolved against `/admin`), so it
/// stays right behind a proxy that mounts the broker under a path prefix.
async fn redirect() -> Response {
    (
        StatusCode::PERMANENT_REDIRECT,
        [(header::LOCATION, HeaderValue::from_static("admin/"))],
    )
        .into_response()
}

async fn index(headers: HeaderMap) -> Response {
    serve(0, &INDEX, &headers)
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => serve(i + 1, &ASSETS[i], &headers),
        None => (
            StatusCode::NOT_FOUND,
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            "no such file in the console; open /admin/\n",
        )
            .into_response(),
    }
}

/// The asset, or `304` when the browser's copy is current (`If-None-Match`, weak
/// comparison as RFC 9110 §13.1.2 asks for this header).
fn serve(etag_index: usize, asset: &Asset, headers: &HeaderMap) -> Response {
    let etag = ETAGS
        .get(etag_index)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("\"0\""));
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.trim_start_matches("W/").as_bytes() == etag.as_bytes());
    let cache = (header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if fresh {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag), cache]).into_response();
    }
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::ETAG, etag),
            cache,
        ],
        asset.body,
    )
        .into_response()
}

/// The headers every console answer carries (see the module's doc).
async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // No other site's window keeps a handle on the console's (and the token in its
    // memory), and no other site may embed its files.
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// The names of the console's assets, for tests that fetch each.
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file under `console/assets` is served, and nothing served is missing.
    #[test]
    fn the_asset_list_is_the_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console/assets");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        on_disk.sort();
        let mut listed: Vec<String> = asset_names().map(str::to_owned).collect();
        listed.sort();
        assert_eq!(listed, on_disk, "ASSETS in console.rs vs {}", dir.display());
    }

    #[test]
    fn etags_differ_per_file_and_are_quoted() {
        let mut tags: Vec<&[u8]> = ETAGS.iter().map(HeaderValue::as_bytes).collect();
        assert!(tags.iter().all(|t| t.len() == 34 && t[0] == b'"'));
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len() + 1);
    }
}
