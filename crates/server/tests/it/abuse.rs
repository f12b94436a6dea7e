//! Abuse (issue 7): idle and half-sent connections cannot exhaust the broker, a
//! wrong-secret flood is limited without touching anyone with the right secret, and
//! oversized heads and bodies are refused before they are read.
//!
//! Raw `TcpStream`s where a well-behaved HTTP client would not do what is tested.

use crate::on_both_stores;
use auth_broker_proto::ClientSecret;
use auth_broker_server::Config;
use auth_broker_testkit::{Backend, TestBroker};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

on_both_stores!(a_wrong_secret_flood_is_limited_but_never_the_right_secret);

const FORM: &str = "application/x-www-form-urlencoded";

fn token_request(id: &str, secret: &ClientSecret, keep_alive: bool) -> String {
    let body = "grant_type=client_credentials";
    format!(
        "POST /auth-broker/request-token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nContent-Type: {FORM}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n{body}",
        STANDARD.encode(format!("{id}:{}", secret.expose_secret())),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    )
}

/// One HTTP/1.1 response read off a raw stream: status, head, body. `None` when the
/// connection closed (or was reset) before a whole response arrived.
async fn read_response(s: &mut TcpStream) -> Option<(u16, String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                let status = head.get(9..12)?.parse().ok()?;
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return Some((status, head, body));
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Waits until the broker closes `s`; returns how long that took and any bytes it
/// sent first.
async fn until_closed(mut s: TcpStream, limit: Duration) -> (Duration, String) {
    let start = Instant::now();
    let mut out = Vec::new();
    let r = tokio::time::timeout(limit, async {
        let mut chunk = [0u8; 1024];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "the broker kept the connection open for {limit:?}"
    );
    (start.elapsed(), String::from_utf8_lossy(&out).into_owned())
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

/// A counter's value, read over a connection that is closed right after (a pooled
/// one would hold a slot of a small connection cap).
async fn metric(b: &TestBroker, name: &str) -> f64 {
    let text = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
        .get(b.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).map(|v| v.trim().parse().unwrap()))
        .unwrap_or(0.0)
}

/// Every slot of a small connection cap is held by a client that sends nothing, or
/// not all of its head, or not all of its body, or stays idle after a request.
/// While they are held, one more connection is answered `503` at once (not left
/// hanging in the backlog); each held connection is closed by the broker itself
/// within its timeout; after that a real token request succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_half_sent_connections_cannot_exhaust_the_broker() {
    let timeout = Duration::from_secs(2);
    let b = TestBroker::start_config(
        Backend::Sqlite,
        Config {
            max_connections: 5,
            header_timeout: timeout,
            body_timeout: timeout,
            ..Config::default()
        },
    )
    .await;
    let (id, secret) = b.create_client("app", "", None).await;
    // Take the shared metrics baseline before any slot is held.
    let rejected_before = metric(&b, "auth_broker_connections_rejected_total").await;
    tokio::time::sleep(Duration::from_millis(100)).await; // its slot is free again

    let opened = Instant::now();
    // 1, 2: connect and send nothing.
    let idle1 = connect(b.addr).await;
    let idle2 = connect(b.addr).await;
    // 3: a head without its final CRLF.
    let mut half_head = connect(b.addr).await;
    half_head
        .write_all(b"POST /auth-broker/request-token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n")
        .await
        .unwrap();
    // 4: a body shorter than its Content-Length.
    let mut half_body = connect(b.addr).await;
    let full = token_request(&id, &secret, true);
    half_body
        .write_all(&full.as_bytes()[..full.len() - 10])
        .await
        .unwrap();
    // 5: one good request on a keep-alive connection, then silence.
    let mut kept = connect(b.addr).await;
    kept.write_all(token_request(&id, &secret, true).as_bytes())
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut kept).await.unwrap();
    assert_eq!(status, 200);

    // The cap is reached: one more connection is refused at once, long before any
    // held slot times out.
    let asked = Instant::now();
    let mut extra = connect(b.addr).await;
    let _ = extra
        .write_all(token_request(&id, &secret, false).as_bytes())
        .await;
    let answer = tokio::time::timeout(Duration::from_secs(1), read_response(&mut extra))
        .await
        .expect("a connection over the cap is answered at once, not queued");
    let refused_in = asked.elapsed();
    if let Some((status, head, body)) = &answer {
        assert_eq!(*status, 503, "{head}");
        assert!(head.contains("Retry-After: 1"), "{head}");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "temporarily_unavailable");
    } // else: closed (or reset) without an answer, which is also a refusal.
    assert!(opened.elapsed() < timeout, "the cap was tested while held");
    println!(
        "over the cap: {} after {refused_in:?}",
        if answer.is_some() {
            "503"
        } else {
            "closed without answer"
        }
    );

    // Each held connection is closed by the broker within its timeout (+ margin),
    // and not much before it.
    let limit = timeout + Duration::from_secs(3);
    let held = [idle1, idle2, half_head, half_body, kept];
    let names = ["idle", "idle", "half head", "half body", "idle keep-alive"];
    let mut waits = Vec::new();
    for s in held {
        waits.push(tokio::spawn(until_closed(s, limit)));
    }
    for (name, w) in names.iter().zip(waits) {
        let (_, sent) = w.await.unwrap();
        let since_open = opened.elapsed();
        println!("{name}: closed {since_open:?} after opening; sent {sent:?}");
        assert!(since_open < limit, "{name}: {since_open:?}");
        if *name == "half body" {
            // The body timeout answers 408 before closing.
            assert!(sent.starts_with("HTTP/1.1 408"), "{name}: {sent}");
        } else {
            assert!(
                sent.is_empty() || sent.starts_with("HTTP/1.1 408"),
                "{sent}"
            );
        }
    }
    assert!(
        opened.elapsed() >= timeout - Duration::from_millis(200),
        "closed by the timeout, not at once"
    );

    // The slots are free again: real requests succeed.
    for _ in 0..3 {
        assert_eq!(b.request_token(&id, &secret).await.status(), 200);
    }
    let rejected = metric(&b, "auth_broker_connections_rejected_total").await;
    assert!(rejected > rejected_before, "the refusal is counted");
}

/// A flood of wrong secrets for client A from one address: after the allowance
/// (20 a minute) every failure gets `429` with `Retry-After` and an RFC 6749 §5.2
/// body, while A with its right secret and another client B, from the same address,
/// get their tokens throughout the flood.
async fn a_wrong_secret_flood_is_limited_but_never_the_right_secret(backend: Backend) {
    let b = Arc::new(TestBroker::start(backend).await);
    let (a_id, a_secret) = b.create_client("a", "", None).await;
    let (b_id, b_secret) = b.create_client("b", "", None).await;
    let (unauthorized, limited) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));

    let flood = {
        let (b, a_id) = (b.clone(), a_id.clone());
        let (unauthorized, limited) = (unauthorized.clone(), limited.clone());
        tokio::spawn(async move {
            let wrong = ClientSecret::new("abs_not-the-secret");
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let (b, a_id, wrong) = (b.clone(), a_id.clone(), wrong.clone());
                let (unauthorized, limited) = (unauthorized.clone(), limited.clone());
                tasks.push(tokio::spawn(async move {
                    for _ in 0..40 {
                        let r = b.request_token(&a_id, &wrong).await;
                        match r.status().as_u16() {
                            401 => {
                                unauthorized.fetch_add(1, Ordering::Relaxed);
                            }
                            429 => {
                                limited.fetch_add(1, Ordering::Relaxed);
                                let retry: u64 = r.headers()["retry-after"]
                                    .to_str()
                                    .unwrap()
                                    .parse()
                                    .unwrap();
                                assert!((1..=60).contains(&retry), "Retry-After {retry}");
                                assert_eq!(r.headers()["cache-control"], "no-store");
                                let v: Value = r.json().await.unwrap();
                                assert_eq!(v["error"], "invalid_client", "{v}");
                                assert!(
                                    v["error_description"].as_str().unwrap().contains("retry"),
                                    "{v}"
                                );
                            }
                            s => panic!("flood got {s}"),
                        }
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        })
    };

    // Right secrets, A's and B's, while the flood runs.
    let mut served = 0;
    let mut during_limit = 0;
    loop {
        let done = flood.is_finished();
        for (id, s) in [(&a_id, &a_secret), (&b_id, &b_secret)] {
            let r = b.request_token(id, s).await;
            assert_eq!(r.status(), 200, "right secret during the flood");
            served += 1;
            if limited.load(Ordering::Relaxed) > 0 && !done {
                during_limit += 1;
            }
        }
        if done {
            break;
        }
    }
    flood.await.unwrap();
    let (u, l) = (
        unauthorized.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed),
    );
    println!(
        "{backend:?}: flood of 320 wrong secrets: {u} x 401, {l} x 429; right secrets served: {served} (of them {during_limit} while A was limited)"
    );
    // 20 allowed at once, plus the allowance refilled during the run (one per 3 s).
    assert!((20..=25).contains(&u), "{u} failures got 401");
    assert_eq!(u + l, 320);
    assert!(
        during_limit >= 4,
        "right secrets were tried while the flood was limited"
    );
    // The address is limited too: B with a wrong secret is refused with 429 ...
    let r = b.request_token(&b_id, &ClientSecret::new("wrong")).await;
    assert_eq!(r.status(), 429);
    // ... and B with its right secret still is not.
    assert_eq!(b.request_token(&b_id, &b_secret).await.status(), 200);
}

/// A head over `max_header_bytes` (one 64 KiB cookie) is refused with `431` as
/// soon as the limit is passed: the rest is never sent, yet the answer comes at once
/// (long before the header timeout). Too many headers: `431` too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_are_refused_early() {
    let b = TestBroker::start_config(
        Backend::Sqlite,
        Config {
            header_timeout: Duration::from_secs(30),
            ..Config::default()
        },
    )
    .await;
    let limit = Config::default().max_header_bytes;
    assert_eq!(limit, 16 * 1024);
    let cookie = format!("Cookie: c={}\r\n", "x".repeat(64 * 1024));
    let head = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{cookie}\r\n");
    // Send a little over the limit of it, never the end of the head.
    let mut s = connect(b.addr).await;
    let start = Instant::now();
    s.write_all(&head.as_bytes()[..limit + 1024]).await.unwrap();
    let (took, sent) = until_closed(s, Duration::from_secs(5)).await;
    println!(
        "64 KiB cookie: {:?} after {took:?}, {} of {} bytes sent",
        sent.lines().next(),
        limit + 1024,
        head.len()
    );
    assert!(sent.starts_with("HTTP/1.1 431"), "{sent}");
    assert!(start.elapsed() < Duration::from_secs(2));

    // A head just under the limit is fine.
    let r = b
        .http
        .get(b.url("/healthz"))
        .header("cookie", "x".repeat(limit - 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // 200 small headers (over hyper's 100).
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let mut s = connect(b.addr).await;
    s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes())
        .await
        .unwrap();
    let (_, sent) = until_closed(s, Duration::from_secs(5)).await;
    assert!(sent.starts_with("HTTP/1.1 431"), "{sent}");
}

/// A declared 10 MB body gets `413` before any of it is sent; a chunked one is cut
/// off at 64 KiB, long before the client is done sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_before_they_are_read() {
    let b = TestBroker::start(Backend::Sqlite).await;
    let (id, secret) = b.create_client("app", "", None).await;
    let auth = STANDARD.encode(format!("{id}:{}", secret.expose_secret()));

    // Content-Length: 10 MB, and not one byte of body.
    let mut s = connect(b.addr).await;
    let start = Instant::now();
    s.write_all(
        format!(
            "POST /auth-broker/request-token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: {FORM}\r\nContent-Length: 10485760\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (status, head, body) = tokio::time::timeout(Duration::from_secs(2), read_response(&mut s))
        .await
        .expect("413 without waiting for the body")
        .unwrap();
    let took = start.elapsed();
    println!("10 MB declared: {status} after {took:?} with 0 body bytes sent");
    assert_eq!(status, 413);
    // Told not to reuse the connection, whose unread body the broker drops.
    assert!(
        head.to_ascii_lowercase().contains("\r\nconnection: close"),
        "{head}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"], "invalid_request");
    // And the connection is closed rather than left waiting for 10 MB.
    let (_, rest) = until_closed(s, Duration::from_secs(2)).await;
    assert!(rest.is_empty(), "{rest}");

    // Chunked: the client would send 64 MB; the broker answers after 64 KiB and
    // closes, so the client's writes fail long before the end.
    let s = connect(b.addr).await;
    let (mut rd, mut wr) = s.into_split();
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let written = written.clone();
        tokio::spawn(async move {
            let head = format!(
                "POST /auth-broker/request-token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nContent-Type: {FORM}\r\nTransfer-Encoding: chunked\r\n\r\n"
            );
            wr.write_all(head.as_bytes()).await?;
            let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "a".repeat(64 * 1024));
            for _ in 0..1024 {
                wr.write_all(chunk.as_bytes()).await?;
                written.fetch_add(64 * 1024, Ordering::Relaxed);
            }
            wr.write_all(b"0\r\n\r\n").await
        })
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    while !out.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), rd.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed without an answer");
        out.extend_from_slice(&buf[..n]);
    }
    let at_answer = written.load(Ordering::Relaxed);
    let head = String::from_utf8_lossy(&out);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    drop(rd);
    let w = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the writer stops once the broker closes")
        .unwrap();
    let total = written.load(Ordering::Relaxed);
    println!(
        "chunked 64 MB: 413 after {:?}, {at_answer} bytes written by then, {total} in all before the write failed",
        start.elapsed()
    );
    assert!(w.is_err(), "the broker closed before the 64 MB were sent");
    assert!(total < 64 * 1024 * 1024);
}

/// A client that pipelines requests and never reads the answers: once the socket
/// buffers are full the broker's writes stall, and after `send_timeout` the broker
/// closes the connection, so its slot of the connection cap comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_its_answers_is_cut_off() {
    let send_timeout = Duration::from_secs(1);
    let b = TestBroker::start_config(
        Backend::Sqlite,
        Config {
            max_connections: 1,
            send_timeout,
            ..Config::default()
        },
    )
    .await;
    let (_reader, mut writer) = connect(b.addr).await.into_split();
    // The JWKS is the largest cheap answer: pipeline requests for it until our
    // writes stall too (the broker stopped reading because it cannot write).
    let request = b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(64);
    let started = Instant::now();
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(2), writer.write_all(&request)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => break true, // reset: the broker gave up on us
            Err(_) => break false,    // our writes are stuck: the broker stopped reading
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the broker kept reading for a minute"
        );
    };
    let stalled_at = Instant::now();
    // Whether or not our side noticed yet, the broker's slot must come back within
    // the send timeout (plus scheduling slack): a new connection gets a token.
    let (id, secret) = b.create_client("app", "", None).await;
    let deadline = stalled_at + send_timeout + Duration::from_secs(5);
    loop {
        let mut s = connect(b.addr).await;
        s.write_all(token_request(&id, &secret, false).as_bytes())
            .await
            .unwrap();
        match read_response(&mut s).await {
            Some((200, _, _)) => break,
            other => {
                let status = other.map(|(s, _, _)| s);
                assert!(
                    Instant::now() < deadline,
                    "the stalled connection still holds the only slot (last answer {status:?}, closed by then: {closed})"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
