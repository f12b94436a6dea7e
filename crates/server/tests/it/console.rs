//! The console (`/admin/`, INTERFACE §7) as the broker serves it: the security headers
//! on every answer, every file the page references (and those the scripts import)
//! served with its type, revalidation by `ETag`, and code that a strict CSP lets run
//! (no inline script or style, no `eval`, no `innerHTML`). The browser test
//! (`tests/console/run.sh`) covers what the page does.

use auth_broker_server::http::console::{CONTENT_SECURITY_POLICY, asset_names};
use auth_broker_testkit::{Backend, TestBroker};
use reqwest::header::HeaderMap;
use std::collections::BTreeSet;

/// The headers every console answer carries, whatever its status.
fn assert_console_headers(h: &HeaderMap, what: &str) {
    let get = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_owned()
    };
    assert_eq!(
        get("content-security-policy"),
        CONTENT_SECURITY_POLICY,
        "{what}"
    );
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(get("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(get("x-frame-options"), "DENY", "{what}");
}

#[test]
fn the_policy_allows_only_this_origin_and_no_inline_script() {
    let csp = CONTENT_SECURITY_POLICY;
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(!csp.contains("http"), "no other origin: {csp}");
}

/// The values of `attr="..."` in `html`.
fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!(" {attr}=\"");
    html.match_indices(&needle)
        .filter_map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// The relative modules a script imports (`from './x.js'`, `import('./x.js')`).
fn imports(js: &str) -> Vec<String> {
    let mut found = Vec::new();
    for quote in ['\'', '"'] {
        for prefix in [format!("from {quote}./"), format!("import({quote}./")] {
            for (i, _) in js.match_indices(&prefix) {
                let rest = &js[i + prefix.len()..];
                if let Some(end) = rest.find(quote) {
                    found.push(rest[..end].to_owned());
                }
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_every_asset_it_loads_are_served_with_strict_headers() {
    let b = TestBroker::start(Backend::Sqlite).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // /admin sends the browser to /admin/, so relative paths resolve under it.
    let r = no_redirects.get(b.url("/admin")).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "admin/");
    assert_console_headers(r.headers(), "/admin");

    let r = b.http.get(b.url("/admin/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_console_headers(r.headers(), "/admin/");
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let page_etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let html = r.text().await.unwrap();

    // Nothing inline: every script is a file of this origin, no handler attributes,
    // no style attributes or blocks.
    assert!(!html.contains(" style="), "an inline style");
    assert!(!html.contains("<style"), "an inline style sheet");
    assert!(
        !html.contains(" onclick=") && !html.contains(" onload="),
        "an inline handler"
    );
    for (i, _) in html.match_indices("<script") {
        let tag = &html[i..i + html[i..].find('>').unwrap()];
        assert!(tag.contains(" src=\""), "an inline script: {tag}");
    }

    // Every file the page references, then every module those scripts import.
    let mut queue: Vec<String> = attribute_values(&html, "src")
        .into_iter()
        .chain(attribute_values(&html, "href"))
        .filter(|v| !v.starts_with('#'))
        .inspect(|v| {
            assert!(
                v.starts_with("assets/"),
                "{v}: the page loads only its own assets (relative, under /admin/assets/)"
            );
        })
        .map(|v| v.trim_start_matches("assets/").to_owned())
        .collect();
    assert!(queue.iter().any(|a| a == "app.js"), "{queue:?}");
    let mut served = BTreeSet::new();
    while let Some(name) = queue.pop() {
        if !served.insert(name.clone()) {
            continue;
        }
        let path = format!("/admin/assets/{name}");
        let r = b.http.get(b.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_console_headers(r.headers(), &path);
        assert_eq!(r.headers()["cache-control"], "no-cache", "{path}");
        assert!(r.headers().contains_key("etag"), "{path}");
        let want = match name.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("{path}: an asset of an unexpected kind {other:?}"),
        };
        assert_eq!(r.headers()["content-type"], want, "{path}");
        let body = r.text().await.unwrap();
        if name.ends_with(".js") {
            // What the CSP forbids or what would bypass textContent.
            for banned in [
                "innerHTML",
                "outerHTML",
                "eval(",
                "new Function",
                "document.write",
            ] {
                assert!(!body.contains(banned), "{path} uses {banned}");
            }
            assert!(
                !body.contains("localStorage.set"),
                "{path}: no token in localStorage"
            );
            assert!(!body.contains("document.cookie"), "{path}: no cookies");
            queue.extend(imports(&body));
        }
        if name.ends_with(".css") {
            assert!(
                !body.contains("@import") && !body.contains("url(http"),
                "{path}"
            );
        }
    }
    let all: BTreeSet<String> = asset_names().map(str::to_owned).collect();
    assert_eq!(
        served, all,
        "the assets the page reaches are exactly the assets served"
    );

    // A current copy is revalidated with a 304 (weak or strong tag), an old one is not.
    let r = b
        .http
        .get(b.url("/admin/"))
        .header("if-none-match", &page_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_console_headers(r.headers(), "304");
    assert_eq!(r.headers()["etag"].to_str().unwrap(), page_etag);
    let r = b
        .http
        .get(b.url("/admin/"))
        .header("if-none-match", format!("\"stale\", W/{page_etag}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = b
        .http
        .get(b.url("/admin/assets/app.js"))
        .header("if-none-match", &page_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "another file's tag does not match");

    // HEAD works; other methods, unknown files: refused, with the same headers.
    let r = b.http.head(b.url("/admin/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = b.http.post(b.url("/admin/")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");
    assert_console_headers(r.headers(), "POST /admin/");
    let r = b
        .http
        .get(b.url("/admin/assets/../index.html"))
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 200);
    let r = b
        .http
        .get(b.url("/admin/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_console_headers(r.headers(), "404");
    // The admin API beside it is unchanged: still a bearer-token API.
    let r = b.http.get(b.url("/admin/v1/keys")).send().await.unwrap();
    assert_eq!(r.status(), 401);
}
