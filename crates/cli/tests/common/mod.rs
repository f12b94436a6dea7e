//! Helpers shared by the test binaries that drive the real `auth-broker` binary:
//! run a command, start `serve` and read the address it prints, stop or kill it.
// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_auth-broker");

pub fn cli(dir: &Path, db: &str, args: &[&str]) -> (i32, String, String) {
    outcome(
        Command::new(BIN)
            .current_dir(dir)
            .env("AUTH_BROKER_DATABASE_URL", db)
            .env_remove("AUTH_BROKER_LOG")
            .args(args),
    )
}

/// `program` with none of the `AUTH_BROKER_*` settings (nor the `RUST_LOG` level) of
/// the environment the tests run in.
pub fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars() {
        if k.starts_with("AUTH_BROKER_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs `cmd` to its end: exit code, stdout, stderr.
pub fn outcome(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn cli_json(dir: &Path, db: &str, args: &[&str]) -> Value {
    let (code, out, err) = cli(dir, db, args);
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
}

/// The lines a child writes to stdout, as they come, read by a thread of their own.
pub fn line_channel(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A running `serve`; stopped with SIGTERM on drop.
pub struct Serve {
    pub child: Child,
    pub lines: Vec<String>,
    pub base: String,
}

impl Serve {
    pub fn start(dir: &Path, envs: &[(&str, &str)], args: &[&str]) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(dir)
            .env_remove("AUTH_BROKER_DATABASE_URL")
            .env("AUTH_BROKER_LOG", "warn")
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let rx = line_channel(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        let demo = args.contains(&"--demo");
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("serve printed its banner");
            lines.push(line.clone());
            let done = if demo {
                line.contains("token-info") && line.contains("curl")
            } else {
                line.contains("token endpoint:")
            };
            if done {
                break;
            }
        }
        let base = lines[0]
            .strip_prefix("auth-broker listening on ")
            .expect("first line names the address")
            .to_owned();
        Self { child, lines, base }
    }

    pub fn stop(mut self) -> i32 {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        std::mem::forget(self);
        code
    }

    /// SIGKILL (what `Child::kill` sends on Unix): no shutdown code runs, as in a crash
    /// or an OOM kill.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "killed, not exited: {status}");
        std::mem::forget(self);
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn token_status(base: &str, id: &str, secret: &str) -> (u16, Value) {
    raw_http::post(base, id, secret)
}

/// A tiny synchronous token request over a raw socket, so these tests need no async runtime.
pub mod raw_http {
    use base64::Engine;
    use serde_json::Value;
    use std::io::{Read, Write};

    /// `GET url` (plain http), its status and body.
    #[allow(dead_code)] // not every test binary that includes this module uses it
    pub fn get(url: &str) -> (u16, String) {
        let rest = url.trim_start_matches("http://");
        let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
            if path.is_empty() { "/" } else { path }
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status: u16 = out[9..12].parse().unwrap();
        let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        (status, body.to_owned())
    }

    pub fn post(base: &str, id: &str, secret: &str) -> (u16, Value) {
        let addr = base.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        let body = "grant_type=client_credentials";
        write!(
            s,
            "POST /auth-broker/request-token HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let status: u16 = out[9..12].parse().unwrap();
        let json = out.split("\r\n\r\n").nth(1).unwrap_or("{}");
        (status, serde_json::from_str(json).unwrap_or(Value::Null))
    }
}

/// Runs the binary off the async runtime's threads, with none of the
/// `AUTH_BROKER_*` settings of the environment the tests run in.
pub async fn run(envs: Vec<(&'static str, String)>, args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || outcome(command(BIN).envs(envs).args(args)))
        .await
        .unwrap()
}
