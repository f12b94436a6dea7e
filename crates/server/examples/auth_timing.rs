//! Does a failed client authentication take the same time whether the client id
//! exists or not? (No enumeration by timing, issue 7.)
//!
//! Starts a broker on 127.0.0.1:0 (failure rate limit lifted for the run), then sends
//! `N` token requests over one keep-alive connection, half with an unknown client id
//! and half with a known id and a wrong secret, interleaved in random order so drift
//! and noise hit both kinds alike. Ids and secrets have the real formats and lengths,
//! so the requests differ only in those bytes. Prints percentiles, mean, the
//! differences and Welch's t for the two latency distributions.
//!
//! `cargo run --release -p auth-broker-server --example auth_timing -- [N] [DATABASE_URL]`
//! (default 20000 requests on a fresh SQLite file; pass a `postgres://` URL of an
//! empty database to measure PostgreSQL).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_broker_server::admin::{Actor, Admin, NewClient};
use auth_broker_server::testing::{self as secret, Raw};
use auth_broker_server::{Config, Server};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::num::NonZeroU32;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn request(id: &str, secret: &str) -> Vec<u8> {
    let body = "grant_type=client_credentials";
    format!(
        "POST /auth-broker/request-token HTTP/1.1\r\nHost: broker\r\nAuthorization: Basic {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        STANDARD.encode(format!("{id}:{secret}")),
        body.len()
    )
    .into_bytes()
}

/// Sends one request and reads its whole response; returns status and body.
async fn exchange(s: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) -> (u16, String) {
    s.write_all(req).await.unwrap();
    buf.clear();
    let mut chunk = [0u8; 2048];
    loop {
        let n = s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the broker closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().unwrap();
                let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
                return (status, body);
            }
        }
    }
}

/// xorshift64*: enough randomness to shuffle the order of the two kinds.
struct Rng(u64);
impl Rng {
    fn coin(&mut self) -> bool {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 63) == 1
    }
}

struct Stats {
    n: usize,
    mean: f64,
    sd: f64,
    p: [f64; 5],
}

fn stats(xs: &mut [f64]) -> Stats {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
    let q = |f: f64| xs[((n as f64 - 1.0) * f).round() as usize];
    Stats {
        n,
        mean,
        sd: var.sqrt(),
        p: [q(0.10), q(0.50), q(0.90), q(0.99), q(0.999)],
    }
}

/// Kolmogorov–Smirnov D: the largest gap between the two empirical distribution
/// functions (both samples sorted).
fn ks(a: &[f64], b: &[f64]) -> f64 {
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(20_000, |a| a.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let url = args
        .next()
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("timing.db").display()));
    let admin = Admin::open(&url).await.unwrap();
    let store = admin.store().clone();
    let (client, right) = admin
        .create_client(
            &Actor::cli(),
            &NewClient {
                name: "timing".into(),
                scope: String::new(),
                audience: None,
            },
        )
        .await
        .unwrap();
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        auth_failures_per_minute: NonZeroU32::MAX,
        ..Config::default()
    };
    let server = Server::bind_default_clock(config, store.clone())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    tokio::spawn(server.run(std::future::pending()));

    // Same formats and lengths as the real id and secret.
    let unknown_id = secret::generate_client_id().unwrap();
    let wrong_secret = secret::generate_secret().unwrap();
    let other_secret = secret::generate_secret().unwrap();
    assert_eq!(unknown_id.len(), client.client_id.len());
    assert_eq!(
        wrong_secret.expose_secret().len(),
        right.expose_secret().len()
    );
    let unknown = request(&unknown_id, other_secret.expose_secret());
    let wrong = request(&client.client_id, wrong_secret.expose_secret());
    assert_eq!(unknown.len(), wrong.len());
    let good = request(&client.client_id, right.expose_secret());

    // The store lookup alone, a hit against a miss, interleaved the same way.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut l_miss, mut l_hit) = (Vec::new(), Vec::new());
    for _ in 0..n / 2 {
        let first_miss = rng.coin();
        for k in 0..2 {
            let miss = (k == 0) == first_miss;
            let id = if miss { &unknown_id } else { &client.client_id };
            let start = Instant::now();
            let found = Raw(&store).get_client(id).await.unwrap();
            let us = start.elapsed().as_nanos() as f64 / 1000.0;
            assert_eq!(found.is_none(), miss);
            if miss {
                l_miss.push(us)
            } else {
                l_hit.push(us)
            }
        }
    }
    let (m, h) = (stats(&mut l_miss), stats(&mut l_hit));
    println!(
        "store.get_client alone, p50/mean (us): miss {:.2}/{:.2}, hit {:.2}/{:.2}",
        m.p[1], m.mean, h.p[1], h.mean
    );

    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut buf = Vec::with_capacity(4096);
    let (st, _) = exchange(&mut s, &good, &mut buf).await;
    assert_eq!(st, 200, "the right secret works");
    let (_, body_unknown) = exchange(&mut s, &unknown, &mut buf).await;
    let (_, body_wrong) = exchange(&mut s, &wrong, &mut buf).await;
    assert_eq!(body_unknown, body_wrong, "identical answers");

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let warmup = (n / 10).max(200);
    let (mut t_unknown, mut t_wrong) = (Vec::with_capacity(n / 2), Vec::with_capacity(n / 2));
    for i in 0..(warmup + n) / 2 {
        // Each pair: one of each kind, in random order.
        let first_unknown = rng.coin();
        for k in 0..2 {
            let is_unknown = (k == 0) == first_unknown;
            let req = if is_unknown { &unknown } else { &wrong };
            let start = Instant::now();
            let (status, _) = exchange(&mut s, req, &mut buf).await;
            let us = start.elapsed().as_nanos() as f64 / 1000.0;
            assert_eq!(status, 401);
            if i >= warmup / 2 {
                if is_unknown {
                    t_unknown.push(us)
                } else {
                    t_wrong.push(us)
                }
            }
        }
    }
    let a = stats(&mut t_unknown);
    let b = stats(&mut t_wrong);
    println!(
        "store: {}   requests: {} measured ({} warm-up), interleaved at random, one keep-alive connection",
        auth_broker_server::redact_url(&url),
        a.n + b.n,
        warmup
    );
    println!(
        "{:<22}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}{:>9}   (microseconds)",
        "", "p10", "p50", "p90", "p99", "p99.9", "mean", "sd"
    );
    for (name, s) in [("unknown client", &a), ("known id, wrong secret", &b)] {
        println!(
            "{name:<22}{:>9.1}{:>9.1}{:>9.1}{:>9.1}{:>9.1}{:>9.1}{:>9.1}",
            s.p[0], s.p[1], s.p[2], s.p[3], s.p[4], s.mean, s.sd
        );
    }
    let diff: Vec<f64> = a.p.iter().zip(b.p).map(|(x, y)| x - y).collect();
    println!(
        "{:<22}{:>9.1}{:>9.1}{:>9.1}{:>9.1}{:>9.1}{:>9.1}",
        "difference",
        diff[0],
        diff[1],
        diff[2],
        diff[3],
        diff[4],
        a.mean - b.mean
    );
    let se = (a.sd.powi(2) / a.n as f64 + b.sd.powi(2) / b.n as f64).sqrt();
    let t = (a.mean - b.mean) / se;
    let d = ks(&t_unknown, &t_wrong);
    // KS critical value at alpha = 0.05: 1.36 * sqrt((n+m)/(n*m)).
    let crit = 1.36 * ((a.n + b.n) as f64 / (a.n * b.n) as f64).sqrt();
    println!(
        "Welch t = {t:.2} (|t| < 1.96: no difference of means at the 5% level); mean difference {:.2} us +- {:.2} (95% CI)",
        a.mean - b.mean,
        1.96 * se
    );
    println!(
        "Kolmogorov-Smirnov D = {d:.4} (5% critical value {crit:.4}): {}",
        if d < crit {
            "the distributions are indistinguishable"
        } else {
            "the distributions differ"
        }
    );
}
