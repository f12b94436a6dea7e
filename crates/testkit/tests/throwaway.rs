//! The throwaway PostgreSQL cluster, for real: a child test process with
//! `AUTH_BROKER_TEST_PG_URL=throwaway` (the fallback forced, whatever answers at 5432)
//! stores and reads through it, and once that process has exited neither the server
//! nor its directory is left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_broker_testkit::{Backend, FreshStore, pg};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Marks the lines the child prints for its parent.
const TAG: &str = "throwaway-test:";

#[test]
fn a_throwaway_cluster_serves_the_tests_and_is_gone_when_they_exit() {
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_stores_through_the_throwaway_cluster",
            "--nocapture",
        ])
        .env(pg::ENV, pg::THROWAWAY)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    let field = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(TAG)?.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} from the child:\n{stdout}\n{stderr}"))
            .to_owned()
    };
    let dir = PathBuf::from(field("dir="));
    let pid: u32 = field("postmaster=").parse().unwrap();
    let port: u16 = field("port=").parse().unwrap();
    eprintln!(
        "child with a throwaway cluster: {:?} in all (the cluster's start: {})",
        started.elapsed(),
        field("start=")
    );

    // The supervisor cleans up just after the child's exit: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = [
            (dir.exists(), "its directory"),
            (alive(pid), "its postmaster"),
            (
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
                "its port",
            ),
        ];
        let left: Vec<_> = left.iter().filter(|(l, _)| *l).map(|(_, w)| *w).collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the throwaway cluster in {} outlived its test process: {left:?}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a process runs (a zombie, dead but not yet reaped by whoever adopted it,
/// does not count).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// Run by the test above in a child process, with the fallback forced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by a_throwaway_cluster_serves_the_tests_and_is_gone_when_they_exit, in a child process"]
async fn child_stores_through_the_throwaway_cluster() {
    assert_eq!(
        std::env::var(pg::ENV).as_deref(),
        Ok(pg::THROWAWAY),
        "run with {}={}",
        pg::ENV,
        pg::THROWAWAY
    );
    let t = Instant::now();
    // Two tests' worth at once: they share one cluster, each with its own database.
    let (a, b) = tokio::join!(
        FreshStore::new(Backend::Postgres),
        FreshStore::new(Backend::Postgres)
    );
    let start = t.elapsed();
    let dir: &Path = pg::throwaway_dir().expect("a throwaway cluster was started");
    let port = pg::server_addr().port();
    assert_ne!(port, 5432);
    assert_ne!(a.url, b.url);
    for fresh in [&a, &b] {
        assert!(
            fresh.url.contains(&format!("127.0.0.1:{port}/")),
            "{}",
            fresh.url
        );
        let admin = auth_broker_server::admin::Admin::new(
            fresh.open().await,
            std::sync::Arc::new(auth_broker_server::clock::SystemClock),
        );
        let (client, _) = admin
            .create_client(
                &auth_broker_server::admin::Actor::cli(),
                &auth_broker_server::admin::NewClient {
                    name: "n".into(),
                    scope: "s".into(),
                    audience: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            admin
                .client(&client.client_id)
                .await
                .unwrap()
                .settings
                .client_name,
            "n"
        );
    }
    let pid = std::fs::read_to_string(dir.join("data/postmaster.pid")).unwrap();
    let pid = pid.lines().next().unwrap();
    println!("{TAG} dir={}", dir.display());
    println!("{TAG} postmaster={pid}");
    println!("{TAG} port={port}");
    println!("{TAG} start={start:?}");
}
