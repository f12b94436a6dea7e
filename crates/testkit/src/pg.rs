//! Which PostgreSQL server the tests use, and the throwaway cluster started when there
//! is none.
//!
//! `AUTH_BROKER_TEST_PG_URL` decides, once per test process:
//!
//! * unset (or empty): `postgres://postgres@127.0.0.1:5432/postgres` if it answers a
//!   `SELECT 1` within [`PROBE_TIMEOUT`]; otherwise a throwaway cluster (below). A
//!   server that is down, absent or refuses user `postgres` all count as "none", so
//!   `cargo test` works on a machine with PostgreSQL installed but not running.
//! * `throwaway`: always a throwaway cluster, even when 5432 answers (what the kit's
//!   own test uses to exercise the fallback without stopping the shared server).
//! * any other value: that server, and only that one. If it does not answer, every
//!   PostgreSQL test fails with a message naming the variable: someone asked for that
//!   server, and silently testing against another one would hide the mistake.
//!
//! # The throwaway cluster
//!
//! One per test process, started the first time a test needs PostgreSQL (a
//! [`OnceLock`]: the other threads wait for it) and shared by all its tests, each of
//! which still creates and drops its own database. Test binaries run as separate
//! processes, possibly in parallel (nextest), so each starts its own cluster on its
//! own free port: no cross-process locking or reference counting to get wrong, at the
//! price of about a second and a half per test binary that uses PostgreSQL.
//!
//! It is `initdb -A trust -U postgres` (plus `--no-sync`, and `fsync=off` in its
//! settings: nothing in it must survive a crash) in a fresh temporary directory, which
//! also holds its Unix socket and log, started by `pg_ctl` on `127.0.0.1` and a free
//! port. The binaries come from the `PATH`, else from the newest
//! `/usr/lib/postgresql/*/bin` (Debian keeps them off the `PATH`). PostgreSQL refuses
//! to run as root, so when the tests run as root the directory is handed to the
//! `postgres` user (`nobody` if there is none) and the binaries run as that user
//! through `setpriv` (or `runuser`).
//!
//! ## Stopping it
//!
//! The Rust test harness exits the process without running the destructors of
//! statics, and a test process may also die from a panic in another thread, a
//! `SIGKILL` from a timeout or a Ctrl-C, so nothing inside the process can be trusted
//! to stop the cluster. Instead, before anything else is created in the directory, the
//! kit starts a small supervisor, a `sh` script whose standard input is a pipe from the
//! test process. Nothing is ever written to it: the script only waits for end of file,
//! which the kernel delivers when the test process is gone, however it went (the write
//! end is close-on-exec, so no other child of the test process holds it open). Then it
//! runs `pg_ctl stop -m immediate` and removes the directory. The supervisor runs in
//! its own process group and ignores `SIGINT`/`SIGHUP`, so a Ctrl-C on the terminal
//! kills the tests but not the cleanup; `pg_ctl` detaches the server from the terminal
//! by itself. The one gap: a test process killed during the fraction of a second
//! between `pg_ctl start` and the server writing its PID file leaves a server whose
//! directory is gone; PostgreSQL notices its lock file missing and shuts down within
//! about a minute.

use std::ffi::OsStr;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The variable that chooses the server (see the module documentation).
pub const ENV: &str = "AUTH_BROKER_TEST_PG_URL";
/// The value of [`ENV`] that asks for a throwaway cluster even when 5432 answers.
pub const THROWAWAY: &str = "throwaway";
/// The server tried when [`ENV`] is unset.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// How long the probe of a server may take: long enough for a loaded machine, short
/// enough that a firewalled address does not stall the first test for long.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Where Debian and Ubuntu install each PostgreSQL version's binaries.
const DEBIAN_LIB: &str = "/usr/lib/postgresql";

/// The server this test process uses.
#[derive(Debug)]
struct PgServer {
    url: String,
    cluster: Option<Throwaway>,
}

static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();

/// Decides (once per process) and returns the server, or panics with why there is
/// none: every PostgreSQL test then fails with the same message, and a failed start is
/// not retried by each of them.
fn server() -> &'static PgServer {
    let resolved = SERVER.get_or_init(|| {
        // On a thread of its own: the probe runs its own Tokio runtime, which may not be
        // started from inside the test's runtime.
        let setting = std::env::var(ENV).ok();
        std::thread::spawn(move || resolve(setting.as_deref(), DEFAULT_URL))
            .join()
            .unwrap_or_else(|_| Err("choosing the PostgreSQL server panicked".into()))
    });
    match resolved {
        Ok(server) => server,
        Err(e) => panic!("{e}"),
    }
}

/// The URL of the server PostgreSQL tests create their databases on (its `postgres`
/// database, as superuser `postgres`).
pub fn admin_url() -> String {
    server().url.clone()
}

/// The server's TCP address, for tests that put a proxy in front of it.
pub fn server_addr() -> SocketAddr {
    let url = admin_url();
    let config: tokio_postgres::Config = url.parse().expect("the PostgreSQL URL parses");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => panic!("{url} names no TCP host"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    (host.as_str(), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("{url}: cannot resolve {host}"))
}

/// The directory of the throwaway cluster this process started, if it started one
/// (its data directory is `data/` inside): for the kit's own test of the cleanup.
pub fn throwaway_dir() -> Option<&'static Path> {
    server().cluster.as_ref().map(|c| c.root.as_path())
}

/// The decision for a value of [`ENV`]; `default_url` is [`DEFAULT_URL`] but for the
/// unit test of the fallback, which cannot make the shared server at 5432 go away.
fn resolve(setting: Option<&str>, default_url: &str) -> Result<PgServer, String> {
    let shared = |url: &str| PgServer {
        url: url.to_owned(),
        cluster: None,
    };
    match setting.map(str::trim) {
        None | Some("") => match probe(default_url) {
            Ok(()) => Ok(shared(default_url)),
            Err(why) => throwaway()
                .map_err(|e| format!("no PostgreSQL answers at {default_url} ({why}), and {e}")),
        },
        Some(THROWAWAY) => throwaway().map_err(|e| format!("{ENV}={THROWAWAY}, but {e}")),
        Some(url) => probe(url).map(|()| shared(url)).map_err(|e| {
            format!(
                "{ENV} is set to {}, which does not answer: {e}. The PostgreSQL tests need \
                 a server there with trust authentication for user postgres; or unset {ENV} \
                 (127.0.0.1:5432 if it answers, else a throwaway cluster), or set it to \
                 `{THROWAWAY}`",
                auth_broker_server::redact_url(url)
            )
        }),
    }
}

fn throwaway() -> Result<PgServer, String> {
    Throwaway::start().map(|c| PgServer {
        url: c.url(),
        cluster: Some(c),
    })
}

/// Connects and runs `SELECT 1`, within [`PROBE_TIMEOUT`].
fn probe(url: &str) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let attempt = async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client.simple_query("SELECT 1").await.map(drop)
        };
        match tokio::time::timeout(PROBE_TIMEOUT, attempt).await {
            Ok(r) => r.map_err(|e| with_causes(&e)),
            Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
        }
    })
}

/// An error and its causes (tokio-postgres's own text is only "error connecting to
/// server"; the cause says refused, timed out or authentication failed).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

/// A PostgreSQL cluster of this test process's own (see the module documentation).
#[derive(Debug)]
struct Throwaway {
    /// The temporary directory: `data/`, `log`, the Unix socket.
    root: PathBuf,
    port: u16,
    /// Never used, only kept: its standard input is the pipe whose closing, at the
    /// process's exit, tells it to stop the cluster. (Dropping it closes the pipe too,
    /// so a dropped `Throwaway` is stopped as well: what the unit test relies on.)
    _supervisor: Child,
}

/// Waits for its standard input to close, then stops the cluster and removes its
/// directory. `$1` is the directory, `$2` the data directory, the rest the command
/// that runs `pg_ctl` (with `setpriv ...` in front when running as root).
const SUPERVISOR: &str = r#"
root=$1; data=$2; shift 2
trap '' HUP INT
while read -r _; do :; done
"$@" stop -D "$data" -m immediate -w >/dev/null 2>&1
rm -rf "$root"
"#;

/// How many free ports to try: another process may take the one picked before the
/// server binds it.
const PORT_ATTEMPTS: usize = 3;

impl Throwaway {
    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start() -> Result<Self, String> {
        let path = std::env::var_os("PATH");
        let bin = find_bin_dir(path.as_deref(), Path::new(DEBIAN_LIB)).ok_or_else(no_binaries)?;
        let root = tempfile::Builder::new()
            .prefix("auth-broker-pg-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let run_as = RunAs::for_dir(root.path())?;
        let data = root.path().join("data");
        let pg_ctl = bin.join("pg_ctl");
        // From here on the supervisor owns the directory's removal, whatever happens.
        let supervisor = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("auth-broker-pg-supervisor")
            .arg(root.path())
            .arg(&data)
            .args(run_as.prefix())
            .arg(&pg_ctl)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start sh to supervise a throwaway cluster: {e}"))?;
        let root = root.keep();
        let mut cluster = Self {
            root,
            port: 0,
            _supervisor: supervisor,
        };
        run(run_as
            .command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C"])
            .arg("--no-sync"))?;
        let settings = format!(
            "\n# auth-broker-testkit: a throwaway cluster\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             max_connections = 200\nshared_buffers = 32MB\n",
            cluster.root.display()
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .and_then(|mut f| f.write_all(settings.as_bytes()))
            .map_err(|e| format!("cannot write the throwaway cluster's settings: {e}"))?;
        let log = cluster.root.join("log");
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            cluster.port = free_port()?;
            let started = run(run_as
                .command(&pg_ctl)
                .args(["start", "-w", "-s", "-t", "60", "-D"])
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .args(["-o", &format!("-p {}", cluster.port)]));
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            match started {
                Ok(()) => return Ok(cluster),
                Err(e) if log_text.contains("Address already in use") => last = e,
                Err(e) => return Err(format!("{e}\n{log_text}")),
            }
        }
        Err(format!(
            "the throwaway cluster found no free port in {PORT_ATTEMPTS} tries: {last}"
        ))
    }
}

fn no_binaries() -> String {
    format!(
        "PostgreSQL's binaries (initdb, pg_ctl) are neither on the PATH nor under \
         {DEBIAN_LIB}/*/bin, so no throwaway cluster can be started: install the \
         `postgresql` package (Debian/Ubuntu: apt-get install postgresql), or set {ENV} \
         to a server with trust authentication for user postgres"
    )
}

/// The directory holding both `initdb` and `pg_ctl`: the first on `path`, else the
/// newest version's `bin` under `lib` (`lib/<version>/bin`).
fn find_bin_dir(path: Option<&OsStr>, lib: &Path) -> Option<PathBuf> {
    let has_both =
        |dir: &Path| is_executable(&dir.join("initdb")) && is_executable(&dir.join("pg_ctl"));
    if let Some(dir) = path
        .into_iter()
        .flat_map(std::env::split_paths)
        .find(|d| has_both(d))
    {
        return Some(dir);
    }
    let mut versions: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir(lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            // "16", "9.6": compared as numbers, so 16 is newer than 9.6.
            let version = name.split('.').map(|p| p.parse().unwrap_or(0)).collect();
            (version, e.path().join("bin"))
        })
        .filter(|(_, bin)| has_both(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

/// Binds port 0 on 127.0.0.1 and returns what the kernel chose (free a moment ago).
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// Runs a command, its output captured, and turns a failure into its stderr.
fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Who runs PostgreSQL's binaries: this process's user, or, when that is root (which
/// PostgreSQL refuses), an unprivileged one through `setpriv` or `runuser`.
#[derive(Debug)]
enum RunAs {
    Me,
    Setpriv { uid: u32, gid: u32 },
    Runuser { user: String },
}

impl RunAs {
    /// Decides for a directory just created by this process (so owned by its
    /// effective user, which tells root apart without `libc`), and when root hands
    /// the directory to the unprivileged user.
    fn for_dir(dir: &Path) -> Result<Self, String> {
        let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
        if meta.uid() != 0 {
            return Ok(Self::Me);
        }
        let (user, uid, gid) = ["postgres", "nobody"]
            .into_iter()
            .find_map(|u| Some((u, id(u, "-u")?, id(u, "-g")?)))
            .ok_or("running as root, which PostgreSQL refuses, and there is no `postgres` or `nobody` user to run it as")?;
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(|e| format!("cannot hand {} to {user}: {e}", dir.display()))?;
        if Command::new("setpriv").arg("--version").output().is_ok() {
            Ok(Self::Setpriv { uid, gid })
        } else if Command::new("runuser").arg("--version").output().is_ok() {
            Ok(Self::Runuser { user: user.into() })
        } else {
            Err(
                "running as root, which PostgreSQL refuses, and neither setpriv nor runuser \
                 (util-linux) is there to run it as another user"
                    .into(),
            )
        }
    }

    /// The words to put before a PostgreSQL binary.
    fn prefix(&self) -> Vec<String> {
        match self {
            Self::Me => vec![],
            Self::Setpriv { uid, gid } => vec![
                "setpriv".into(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".into(),
            ],
            Self::Runuser { user } => {
                vec!["runuser".into(), "-u".into(), user.clone(), "--".into()]
            }
        }
    }

    fn command(&self, program: &Path) -> Command {
        let prefix = self.prefix();
        match prefix.split_first() {
            None => Command::new(program),
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(program);
                cmd
            }
        }
    }
}

/// `id -u USER` or `id -g USER`, if the user exists.
fn id(user: &str, which: &str) -> Option<u32> {
    let out = Command::new("id").args([which, user]).output().ok()?;
    out.status.success().then_some(())?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn fake_bin(dir: &Path, names: &[&str]) {
        std::fs::create_dir_all(dir).unwrap();
        for n in names {
            let p = dir.join(n);
            std::fs::write(&p, "").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    #[test]
    fn binaries_are_found_on_the_path_first_then_the_newest_debian_version() {
        let t = tempfile::tempdir().unwrap();
        let (on_path, half, lib) = (t.path().join("p"), t.path().join("h"), t.path().join("lib"));
        fake_bin(&half, &["initdb"]);
        fake_bin(&on_path, &["initdb", "pg_ctl"]);
        for v in ["9.6", "16", "15"] {
            fake_bin(&lib.join(v).join("bin"), &["initdb", "pg_ctl"]);
        }
        fake_bin(&lib.join("17").join("bin"), &["pg_ctl"]); // incomplete: skipped
        let path = std::env::join_paths([&half, &on_path]).unwrap();
        assert_eq!(find_bin_dir(Some(&path), &lib), Some(on_path));
        let path = std::env::join_paths([&half]).unwrap();
        assert_eq!(
            find_bin_dir(Some(&path), &lib),
            Some(lib.join("16").join("bin"))
        );
        assert_eq!(find_bin_dir(None, &t.path().join("none")), None);
    }

    #[test]
    fn without_binaries_the_message_names_the_package_and_the_variable() {
        let e = no_binaries();
        assert!(e.contains("`postgresql` package"), "{e}");
        assert!(e.contains(ENV), "{e}");
    }

    #[test]
    fn an_explicit_url_that_does_not_answer_is_an_error_not_a_fallback() {
        let e = resolve(
            Some("postgres://postgres:pw@127.0.0.1:1/postgres"),
            DEFAULT_URL,
        )
        .unwrap_err();
        assert!(e.contains(ENV) && e.contains("127.0.0.1:1"), "{e}");
        assert!(!e.contains("pw@"), "the password is redacted: {e}");
        assert!(e.contains("refused"), "the cause is given: {e}");
    }

    /// The issue's case: nothing answers at the default address (here port 1, since
    /// the shared server at 5432 must stay up), so a throwaway cluster is started; it
    /// serves, and once dropped it is stopped and its directory removed.
    #[test]
    fn unset_and_nothing_at_the_default_address_starts_a_throwaway_cluster() {
        let server = resolve(None, "postgres://postgres@127.0.0.1:1/postgres").unwrap();
        let cluster = server.cluster.as_ref().expect("a throwaway cluster");
        assert_eq!(server.url, cluster.url());
        probe(&server.url).unwrap();
        let dir = cluster.root.clone();
        assert!(dir.join("data/postmaster.pid").exists());
        drop(server);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while dir.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "{} stays",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
