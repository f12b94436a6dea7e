//! The admin API (INTERFACE §6) over HTTP, on both stores: access by this broker's own
//! tokens, problem details naming each bad field, If-Match, pagination, the audit
//! trail (one event per change, never a secret), usage and revoke-tokens.

use crate::on_both_stores;
use auth_broker_proto::ClientSecret;
use auth_broker_server::admin::Actor;
use auth_broker_testkit::{Backend, TestBroker};
use reqwest::{Method, Response};
use serde_json::{Value, json};

on_both_stores!(
    an_admin_token_manages_a_client_end_to_end,
    access_needs_the_right_token_and_scope,
    every_bad_field_gets_its_own_problem,
    stale_if_match_is_412_and_nothing_is_overwritten,
    pages_are_stable_under_concurrent_inserts,
    the_audit_trail_has_one_event_per_change_and_no_secret,
    revoke_tokens_and_usage,
);

/// A broker with an `ops` client (admin:write, made as the CLI would) and its token.
async fn broker_with_admin(backend: Backend) -> (TestBroker, String) {
    let b = TestBroker::start(backend).await;
    let (id, secret) = b.create_client("ops", "admin:write", None).await;
    let token = b.token(&id, &secret).await;
    (b, token)
}

async fn call(
    b: &TestBroker,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let mut r = b.http.request(method, b.url(path)).bearer_auth(token);
    if let Some(body) = body {
        r = r.json(&body);
    }
    r.send().await.unwrap()
}

async fn problem(r: Response, status: u16) -> Value {
    assert_eq!(r.status().as_u16(), status, "status");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], status, "{v}");
    assert!(v["title"].is_string() && v["detail"].is_string(), "{v}");
    v
}

async fn an_admin_token_manages_a_client_end_to_end(backend: Backend) {
    let (b, admin) = broker_with_admin(backend).await;
    let r = call(
        &b,
        &admin,
        Method::POST,
        "/admin/v1/clients",
        Some(
            json!({"client_name": "billing", "scope": "invoices:read invoices:write",
                    "audience": ["https://api.example.com"], "access_token_ttl": 900,
                    "extra_claims": {"tenant": "acme"}, "contacts": ["ops@example.com"]}),
        ),
    )
    .await;
    assert_eq!(r.status(), 201);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = r.json().await.unwrap();
    let id = created["client_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/admin/v1/clients/{id}"));
    assert_eq!(etag, format!("\"{}\"", created["version"]));
    let secret = ClientSecret::new(created["client_secret"].as_str().unwrap());
    // The new client gets a token with its settings.
    let r = b.request_token(&id, &secret).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["expires_in"], 899);
    let claims = crate::jwt::claims_unverified(v["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://api.example.com");
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    // Read it back: every setting, never the secret.
    let r = call(&b, &admin, Method::GET, &location, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["client_name"], "billing");
    assert!(got.get("client_secret").is_none(), "{got}");
    // Patch: narrower scope, a cap; the next token request sees it.
    let r = call(
        &b,
        &admin,
        Method::PATCH,
        &location,
        Some(json!({"scope": "invoices:read", "tokens_per_minute": 2, "access_token_ttl": null})),
    )
    .await;
    assert_eq!(r.status(), 200);
    let patched: Value = r.json().await.unwrap();
    assert_eq!(patched["scope"], "invoices:read");
    assert_eq!(patched["access_token_ttl"], Value::Null);
    let r = b.request_token(&id, &secret).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["scope"], "invoices:read");
    assert_eq!(v["expires_in"], 3599, "back to the broker's default");
    // The cap: 2 a minute, the first of them was the request above.
    assert_eq!(b.request_token(&id, &secret).await.status(), 200);
    let r = b.request_token(&id, &secret).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "temporarily_unavailable");
    assert!(
        v["error_description"]
            .as_str()
            .unwrap()
            .contains("cache the token"),
        "{v}"
    );
    // Rotate the secret: old refused, new works.
    let r = call(
        &b,
        &admin,
        Method::POST,
        &format!("{location}/secret"),
        Some(json!({"grace_seconds": 0})),
    )
    .await;
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    let new = ClientSecret::new(rotated["client_secret"].as_str().unwrap());
    assert_eq!(rotated["client_id"], id.as_str());
    call(
        &b,
        &admin,
        Method::PATCH,
        &location,
        Some(json!({"tokens_per_minute": null})),
    )
    .await;
    assert_eq!(b.request_token(&id, &secret).await.status(), 401);
    assert_eq!(b.request_token(&id, &new).await.status(), 200);
    // Keys.
    let r = call(&b, &admin, Method::POST, "/admin/v1/keys/rotate", None).await;
    assert_eq!(r.status(), 201);
    let key: Value = r.json().await.unwrap();
    let keys: Value = call(&b, &admin, Method::GET, "/admin/v1/keys", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(keys["keys"][0]["kid"], key["kid"]);
    assert_eq!(keys["keys"][0]["state"], "active");
    assert_eq!(keys["keys"][1]["state"], "retired");
    // A key of another algorithm than the broker's, when the body names one.
    let r = call(
        &b,
        &admin,
        Method::POST,
        "/admin/v1/keys/rotate",
        Some(json!({"alg": "EdDSA"})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let key: Value = r.json().await.unwrap();
    assert_eq!(key["alg"], "EdDSA", "{key}");
    let v = problem(
        call(
            &b,
            &admin,
            Method::POST,
            "/admin/v1/keys/rotate",
            Some(json!({"alg": "HS256"})),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(v["errors"][0]["field"], "alg", "{v}");
    // Delete: gone, its token requests refused.
    let r = call(&b, &admin, Method::DELETE, &location, None).await;
    assert_eq!(r.status(), 204);
    problem(call(&b, &admin, Method::GET, &location, None).await, 404).await;
    assert_eq!(b.request_token(&id, &new).await.status(), 401);
}

async fn access_needs_the_right_token_and_scope(backend: Backend) {
    let (b, write) = broker_with_admin(backend).await;
    let (reader, reader_secret) = b.create_client("auditor", "admin:read", None).await;
    let read = b.token(&reader, &reader_secret).await;
    let (plain, plain_secret) = b.create_client("app", "invoices:read", None).await;
    let plain_token = b.token(&plain, &plain_secret).await;
    let (api, api_secret) = b
        .create_client("elsewhere", "admin:write", Some("https://api.example.com"))
        .await;
    let for_api = b.token(&api, &api_secret).await;

    // No token: 401 with a challenge and no error code (RFC 6750 §3.1).
    let r = b.http.get(b.url("/admin/v1/clients")).send().await.unwrap();
    let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(
        challenge.starts_with("Bearer ") && !challenge.contains("error="),
        "{challenge}"
    );
    problem(r, 401).await;
    assert!(challenge.contains(r#"scope="admin:read""#), "{challenge}");
    // A broken token, a token for another audience: invalid_token, with the guard
    // crate's words for the fault (the same as token-info's for the same token).
    for (bad, says) in [
        ("nonsense", "not a JWT"),
        (for_api.as_str(), "https://api.example.com"),
    ] {
        let r = call(&b, bad, Method::GET, "/admin/v1/clients", None).await;
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(
            challenge.starts_with(r#"Bearer realm="auth-broker admin""#),
            "{challenge}"
        );
        let v = problem(r, 401).await;
        let detail = v["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{detail}");
        let info: Value = b
            .http
            .get(b.url(&format!("/auth-broker/token-info?audience={}", b.issuer)))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let explained = info["error_description"].as_str().unwrap();
        assert!(detail.starts_with(explained), "{detail} / {explained}");
    }
    // A token without an admin scope: 403 insufficient_scope.
    let r = call(&b, &plain_token, Method::GET, "/admin/v1/clients", None).await;
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    let v = problem(r, 403).await;
    // Worded for the operation (the console prints it after "Not allowed:").
    assert!(
        v["detail"].as_str().unwrap().starts_with(
            "this operation needs a token with the scope 'admin:read'; this one has 'invoices:read'"
        ),
        "{v}"
    );
    // admin:read reads, and may not change anything, its own scope included.
    assert_eq!(
        call(&b, &read, Method::GET, "/admin/v1/clients", None)
            .await
            .status(),
        200
    );
    let own = format!("/admin/v1/clients/{reader}");
    let r = call(
        &b,
        &read,
        Method::PATCH,
        &own,
        Some(json!({"scope": "admin:write"})),
    )
    .await;
    let v = problem(r, 403).await;
    assert!(v["detail"].as_str().unwrap().contains("admin:write"), "{v}");
    let c: Value = call(&b, &write, Method::GET, &own, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["scope"], "admin:read", "unchanged");
    // The caller cannot lock itself out (another admin client can do these).
    let (ops_id, _) = {
        let c: Value = call(&b, &write, Method::GET, "/admin/v1/clients?q=ops", None)
            .await
            .json()
            .await
            .unwrap();
        (
            c["clients"][0]["client_id"].as_str().unwrap().to_owned(),
            (),
        )
    };
    let own = format!("/admin/v1/clients/{ops_id}");
    for (method, path, body) in [
        (Method::PATCH, own.clone(), Some(json!({"enabled": false}))),
        (Method::POST, format!("{own}/revoke-tokens"), None),
        (Method::DELETE, own.clone(), None),
    ] {
        let v = problem(call(&b, &write, method.clone(), &path, body).await, 409).await;
        assert!(
            v["detail"]
                .as_str()
                .unwrap()
                .contains("lock the caller out"),
            "{method} {v}"
        );
    }
    assert_eq!(
        call(&b, &write, Method::GET, "/admin/v1/keys", None)
            .await
            .status(),
        200
    );
    // A token revoked by its client (RFC 7009) stops working at once: the guard
    // asks the broker, which knows, and caches nothing.
    let (rev, rev_secret) = b.create_client("revoker", "admin:read", None).await;
    let rev_token = b.token(&rev, &rev_secret).await;
    assert_eq!(
        call(&b, &rev_token, Method::GET, "/admin/v1/keys", None)
            .await
            .status(),
        200
    );
    let r = b
        .http
        .post(b.url("/auth-broker/revoke"))
        .basic_auth(&rev, Some(rev_secret.expose_secret()))
        .form(&[("token", rev_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v = problem(
        call(&b, &rev_token, Method::GET, "/admin/v1/keys", None).await,
        401,
    )
    .await;
    assert!(v["detail"].as_str().unwrap().contains("revoked"), "{v}");
    // A disabled admin client's token stops working at once.
    b.admin()
        .set_enabled(&Actor::cli(), &reader, false)
        .await
        .unwrap();
    problem(
        call(&b, &read, Method::GET, "/admin/v1/clients", None).await,
        401,
    )
    .await;
    // Refusals are rate limited like failed client authentications.
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(
            call(&b, "nonsense", Method::GET, "/admin/v1/keys", None)
                .await
                .status()
                .as_u16(),
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // ...but a good token is still served.
    assert_eq!(
        call(&b, &write, Method::GET, "/admin/v1/keys", None)
            .await
            .status(),
        200
    );
}

async fn every_bad_field_gets_its_own_problem(backend: Backend) {
    let (b, admin) = broker_with_admin(backend).await;
    let r = call(
        &b,
        &admin,
        Method::POST,
        "/admin/v1/clients",
        Some(
            json!({"client_name": "", "scope": "a\"b", "audience": ["x y"],
                    "access_token_ttl": 0, "extra_claims": {"iss": "me"},
                    "tokens_per_minute": 0, "client_secret_expires_at": -5,
                    "contacts": [""], "description": "\u{1b}[2J"}),
        ),
    )
    .await;
    let v = problem(r, 400).await;
    let fields = crate::problem_fields(&v);
    assert_eq!(
        fields,
        [
            "client_name",
            "scope",
            "audience[0]",
            "access_token_ttl",
            "extra_claims.iss",
            "tokens_per_minute",
            "client_secret_expires_at",
            "contacts[0]",
            "description"
        ],
        "{v}"
    );
    // The detail names each field with its fault, as the CLI prints it against the
    // database (the remote CLI prints the detail).
    let detail = v["detail"].as_str().unwrap();
    for e in v["errors"].as_array().unwrap() {
        let said = format!(
            "{}: {}",
            e["field"].as_str().unwrap(),
            e["message"].as_str().unwrap()
        );
        assert!(detail.contains(&said), "{said} not in {detail}");
    }
    // Unknown and read-only fields, wrong types, bodies that are not JSON.
    let cases = [
        (
            Method::POST,
            "/admin/v1/clients".to_owned(),
            json!({"client_name": "x", "nmae": 1}),
            "nmae",
        ),
        (
            Method::POST,
            "/admin/v1/clients".to_owned(),
            json!({"scope": "a"}),
            "client_name",
        ),
    ];
    for (m, path, body, field) in cases {
        let v = problem(call(&b, &admin, m, &path, Some(body)).await, 400).await;
        assert_eq!(v["errors"][0]["field"], field, "{v}");
    }
    let (id, _) = b.create_client("target", "", None).await;
    let path = format!("/admin/v1/clients/{id}");
    for (body, field) in [
        (json!({"client_id": "other"}), "client_id"),
        (json!({"version": 9}), "version"),
        (json!({"audience": "not-a-list"}), "(body)"),
        (json!({"tokens_per_minute": -1}), "(body)"),
        (
            json!({"extra_claims": {"scope": "admin:write"}}),
            "extra_claims.scope",
        ),
        (json!({"client_name": "ops"}), "client_name"),
    ] {
        let r = call(&b, &admin, Method::PATCH, &path, Some(body.clone())).await;
        let status = if field == "client_name" { 409 } else { 400 };
        let v = problem(r, status).await;
        assert_eq!(v["errors"][0]["field"], field, "{body}: {v}");
    }
    let r = b
        .http
        .patch(b.url(&path))
        .bearer_auth(&admin)
        .header("content-type", "text/plain")
        .body("scope=a")
        .send()
        .await
        .unwrap();
    problem(r, 415).await;
    let r = b
        .http
        .patch(b.url(&path))
        .bearer_auth(&admin)
        .header("content-type", "application/merge-patch+json")
        .body("{\"scope\": ")
        .send()
        .await
        .unwrap();
    problem(r, 400).await;
    // Nothing of the above changed the client.
    let c: Value = call(&b, &admin, Method::GET, &path, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["version"], 1, "{c}");
}

async fn stale_if_match_is_412_and_nothing_is_overwritten(backend: Backend) {
    let (b, admin) = broker_with_admin(backend).await;
    let (id, _) = b.create_client("shared", "a", None).await;
    let path = format!("/admin/v1/clients/{id}");
    // Two operators read the same version...
    let r = call(&b, &admin, Method::GET, &path, None).await;
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let patch_with = |tag: String, body: Value| {
        let b = &b;
        let admin = &admin;
        let path = &path;
        async move {
            b.http
                .patch(b.url(path))
                .bearer_auth(admin)
                .header("if-match", tag)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    // ...the first one's change lands, the second one's is refused.
    let r = patch_with(etag.clone(), json!({"description": "first"})).await;
    assert_eq!(r.status(), 200);
    let newer = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(newer, etag);
    let r = patch_with(etag.clone(), json!({"scope": "b"})).await;
    assert_eq!(
        r.headers()["etag"].to_str().unwrap(),
        newer,
        "412 names the current version"
    );
    problem(r, 412).await;
    let c: Value = call(&b, &admin, Method::GET, &path, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (c["description"].as_str(), c["scope"].as_str()),
        (Some("first"), Some("a"))
    );
    // With the current tag it goes through; a weak tag never matches; * always does.
    assert_eq!(patch_with(newer, json!({"scope": "b"})).await.status(), 200);
    problem(
        patch_with("W/\"3\"".into(), json!({"scope": "c"})).await,
        412,
    )
    .await;
    assert_eq!(
        patch_with("*".into(), json!({"scope": "c"})).await.status(),
        200
    );
    // Delete with a stale tag is refused too.
    let r = b
        .http
        .delete(b.url(&path))
        .bearer_auth(&admin)
        .header("if-match", etag)
        .send()
        .await
        .unwrap();
    problem(r, 412).await;
}

async fn pages_are_stable_under_concurrent_inserts(backend: Backend) {
    let (b, admin) = broker_with_admin(backend).await;
    for i in 0..7 {
        b.create_client(&format!("cat-{i}"), "", None).await;
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/admin/v1/clients?limit=3&after={a}"),
            None => "/admin/v1/clients?limit=3".to_owned(),
        };
        let page: Value = call(&b, &admin, Method::GET, &path, None)
            .await
            .json()
            .await
            .unwrap();
        pages += 1;
        for c in page["clients"].as_array().unwrap() {
            seen.push(c["client_name"].as_str().unwrap().to_owned());
        }
        // Someone adds clients between our pages.
        b.create_client(&format!("late{pages}"), "", None).await;
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
        assert!(pages < 10, "the pages end");
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no client twice: {seen:?}");
    for i in 0..7 {
        assert!(
            seen.contains(&format!("cat-{i}")),
            "cat-{i} not skipped: {seen:?}"
        );
    }
    // Search and filters.
    let page: Value = call(&b, &admin, Method::GET, "/admin/v1/clients?q=CAT-3", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["clients"].as_array().unwrap().len(), 1, "{page}");
    let v = problem(
        call(
            &b,
            &admin,
            Method::GET,
            "/admin/v1/clients?after=garbage",
            None,
        )
        .await,
        400,
    )
    .await;
    assert_eq!(v["errors"][0]["field"], "after");
    problem(
        call(&b, &admin, Method::GET, "/admin/v1/clients?limit=0", None).await,
        400,
    )
    .await;
}

async fn the_audit_trail_has_one_event_per_change_and_no_secret(backend: Backend) {
    let (b, admin) = broker_with_admin(backend).await;
    let mut secrets = Vec::new();
    let mut answers = String::new();
    let mut keep = |r: &Value| answers.push_str(&r.to_string());
    let created: Value = call(
        &b,
        &admin,
        Method::POST,
        "/admin/v1/clients",
        Some(json!({"client_name": "a"})),
    )
    .await
    .json()
    .await
    .unwrap();
    keep(&created);
    secrets.push(created["client_secret"].as_str().unwrap().to_owned());
    let id = created["client_id"].as_str().unwrap().to_owned();
    let path = format!("/admin/v1/clients/{id}");
    for body in [
        json!({"scope": "x"}),
        json!({"enabled": false}),
        json!({"enabled": true}),
    ] {
        keep(
            &call(&b, &admin, Method::PATCH, &path, Some(body))
                .await
                .json()
                .await
                .unwrap(),
        );
    }
    for grace in [0, 60] {
        let r: Value = call(
            &b,
            &admin,
            Method::POST,
            &format!("{path}/secret"),
            Some(json!({"grace_seconds": grace})),
        )
        .await
        .json()
        .await
        .unwrap();
        secrets.push(r["client_secret"].as_str().unwrap().to_owned());
        keep(&r);
    }
    keep(
        &call(
            &b,
            &admin,
            Method::POST,
            &format!("{path}/revoke-tokens"),
            None,
        )
        .await
        .json()
        .await
        .unwrap(),
    );
    keep(
        &call(&b, &admin, Method::POST, "/admin/v1/keys/rotate", None)
            .await
            .json()
            .await
            .unwrap(),
    );
    // A refused change is not an event.
    call(
        &b,
        &admin,
        Method::PATCH,
        &path,
        Some(json!({"scope": "bad\"scope"})),
    )
    .await;
    let page: Value = call(
        &b,
        &admin,
        Method::GET,
        &format!("/admin/v1/audit?client_id={id}"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    keep(&page);
    let actions: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "client.tokens.revoke",
            "client.secret.rotate",
            "client.secret.rotate",
            "client.update",
            "client.update",
            "client.update",
            "client.create"
        ],
        "newest first, one per change"
    );
    let first = &page["events"][6];
    assert!(
        first["actor"].as_str().unwrap().starts_with("client:"),
        "{first}"
    );
    assert!(
        first["request_id"].is_string() && first["peer"].is_string(),
        "{first}"
    );
    let update = &page["events"][5];
    assert_eq!(update["changes"]["scope"], json!(["", "x"]), "{update}");
    let keys: Value = call(
        &b,
        &admin,
        Method::GET,
        "/admin/v1/audit?action=key.rotate",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(keys["events"].as_array().unwrap().len(), 1);
    // Append-only in the store itself.
    // No secret, and no hash of one, anywhere in the trail or the answers.
    let all: Value = call(&b, &admin, Method::GET, "/admin/v1/audit?limit=200", None)
        .await
        .json()
        .await
        .unwrap();
    let trail = all.to_string();
    let raw = auth_broker_server::testing::Raw(&b.store);
    let stored = raw.get_client(&id).await.unwrap().unwrap();
    let mut hashes = vec![stored.secret_hash.clone()];
    hashes.extend(stored.previous_secret_hash.clone());
    for s in secrets.iter().chain(hashes.iter()) {
        for piece in [
            s.as_str(),
            s.trim_start_matches("abs_"),
            s.trim_start_matches("sha256:"),
        ] {
            assert!(
                !trail.contains(piece),
                "the audit trail holds a secret or hash"
            );
        }
        let shown_once = answers.matches(s.as_str()).count();
        assert!(shown_once <= 1, "a secret shown more than once");
    }
    for h in &hashes {
        assert!(
            !answers.contains(h.trim_start_matches("sha256:")),
            "an answer holds a hash"
        );
    }
}

async fn revoke_tokens_and_usage(backend: Backend) {
    let (b, admin) = broker_with_admin(backend).await;
    let (rs, rs_secret) = b.create_client("resource-server", "", None).await;
    let (id, secret) = b.create_client("app", "", None).await;
    let before = b.token(&id, &secret).await;
    let introspect = |t: String| {
        let b = &b;
        let rs = rs.clone();
        let rs_secret = rs_secret.clone();
        async move {
            let v: Value = b
                .http
                .post(b.url("/auth-broker/introspect"))
                .basic_auth(&rs, Some(rs_secret.expose_secret()))
                .form(&[("token", t)])
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["active"].as_bool().unwrap()
        }
    };
    assert!(introspect(before.clone()).await);
    let r = call(
        &b,
        &admin,
        Method::POST,
        &format!("/admin/v1/clients/{id}/revoke-tokens"),
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(
        !introspect(before.clone()).await,
        "revoked from the next request on"
    );
    let r = b
        .http
        .get(b.url("/auth-broker/token-info"))
        .bearer_auth(&before)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Tokens issued after the second of the revocation are active.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let after = b.token(&id, &secret).await;
    assert!(introspect(after).await);
    // Usage: two issued, one failure, flushed to the store and summed per minute.
    b.request_token(&id, &ClientSecret::new("wrong")).await;
    b.served_state().flush_usage_now().await;
    let u: Value = call(
        &b,
        &admin,
        Method::GET,
        &format!("/admin/v1/clients/{id}/usage"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let (issued, failed): (u64, u64) =
        u["minutes"]
            .as_array()
            .unwrap()
            .iter()
            .fold((0, 0), |(i, f), m| {
                (
                    i + m["issued"].as_u64().unwrap(),
                    f + m["failed"].as_u64().unwrap(),
                )
            });
    assert_eq!((issued, failed), (2, 1), "{u}");
    problem(
        call(
            &b,
            &admin,
            Method::GET,
            "/admin/v1/clients/nope/usage",
            None,
        )
        .await,
        404,
    )
    .await;
    problem(
        call(
            &b,
            &admin,
            Method::GET,
            &format!("/admin/v1/clients/{id}/usage?from=yesterday"),
            None,
        )
        .await,
        400,
    )
    .await;
}
