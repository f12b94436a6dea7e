//! `client`, `keys` and `audit` with `--admin-url`: the same script of commands run
//! against the store and through a running broker's admin API prints the same, once
//! what must differ (generated ids, secrets, times, key ids, who made a change) is
//! normalized; and the README's "Managing clients over HTTP" runs as written.

use crate::common::{BIN, Serve, cli_json, command, outcome};
use auth_broker_testkit::{Backend, FreshStore};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// The operator the store path records (`cli:USER@HOST`); `USER` is set for it.
const USER: &str = "remote-cli-test";

/// One run of the script: against the store, or through the admin API as `ops`.
struct Target<'a> {
    dir: &'a Path,
    /// `AUTH_BROKER_*` variables for every command.
    env: Vec<(&'static str, String)>,
}

impl Target<'_> {
    /// Runs the binary with this target's variables and no others of the test's
    /// environment; exit code, stdout, stderr.
    fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> (i32, String, String) {
        outcome(
            command(BIN)
                .current_dir(self.dir)
                .env("USER", USER)
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .args(args),
        )
    }

    /// Runs `args`, which must exit with `code` and say each of `said` on stderr; its
    /// stdout.
    fn expect(&self, args: &[&str], code: i32, said: &[&str]) -> String {
        let (got, out, err) = self.run(args);
        assert_eq!(got, code, "{args:?}: {err}");
        for s in said {
            assert!(err.contains(s), "{args:?}: '{s}' not in: {err}");
        }
        out
    }
}

/// The script: every command of `client`, `keys` and `audit`, in text and `--json`,
/// and refusals of each kind (unknown id, duplicate name, bad settings, bad usage).
/// `$A` and `$B` stand for the ids the first two commands print.
#[rustfmt::skip]
const SCRIPT: &[&[&str]] = &[
    &[
        "client", "create", "--name", "billing",
        "--scope", "invoices:read invoices:write",
        "--audience", "https://api.example.com", "--audience", "https://files.example.com",
        "--token-ttl", "900", "--tokens-per-minute", "60",
        "--claim", "tenant=\"acme\"", "--claim", "tier=2",
        "--contact", "ops@example.com", "--description", "the billing system",
        "--secret-expires-in", "90d",
    ],
    &["client", "create", "--name", "portal", "--auth-method", "client_secret_post", "--json"],
    &["client", "list"],
    &["client", "list", "--json"],
    &["client", "show", "$A"],
    &["client", "show", "$A", "--json"],
    &[
        "client", "update", "$A", "--scope", "invoices:read", "--token-ttl", "default",
        "--claim", "tier=null", "--audience", "https://api.example.com",
    ],
    &[
        "client", "update", "$B", "--name", "portal-2", "--contact", "a@example.com",
        "--contact", "b@example.com", "--tokens-per-minute", "5", "--json",
    ],
    &["client", "disable", "$A"],
    &["client", "disable", "$B", "--json"],
    &["client", "list"],
    &["client", "enable", "$A"],
    &["client", "enable", "$B", "--json"],
    &["client", "rotate-secret", "$A", "--grace", "60"],
    &["client", "rotate-secret", "$B", "--json"],
    &["client", "revoke-tokens", "$A"],
    &["client", "revoke-tokens", "$B", "--json"],
    &["client", "show", "$A"],
    &["client", "show", "$A", "--json"],
    &["keys", "list"],
    &["keys", "list", "--json"],
    &["keys", "rotate"],
    &["keys", "rotate", "--json"],
    &["keys", "list"],
    &["audit"],
    &["audit", "--client", "$A", "--json"],
    &["audit", "--action", "client.update", "--limit", "1", "--json"],
    &["audit", "--since", "2000-01-01T00:00:00Z", "--limit", "3"],
    // Refusals.
    &["client", "show", "00000000000000000000000000000000"],
    &["client", "show", ".."],
    &["client", "create", "--name", "billing"],
    &["client", "create", "--name", " ", "--token-ttl", "0", "--claim", "sub=\"x\""],
    &["client", "update", "$A", "--scope", "bad\"scope", "--tokens-per-minute", "0"],
    &["client", "update", "$A", "--name", "portal-2"],
    &["client", "update", "nope", "--description", "x"],
    &["client", "rotate-secret", "nope", "--grace", "5"],
    &["client", "revoke-tokens", "nope", "--json"],
    &["client", "delete", "nope"],
    &["client", "update", "$A"],
    &["client", "create", "--name", "x", "--token-ttl", "soon"],
    &["audit", "--since", "yesterday"],
    &["keys", "rotate", "--signing-alg", "HS256"],
    // The end.
    &["client", "delete", "$A"],
    &["client", "delete", "$B", "--json"],
    &["client", "list"],
    &["audit", "--limit", "4", "--json"],
];

/// A `serve` on a fresh store with an `ops` client (admin:write, made on the store),
/// the script run against `target` (the store, or the API as `ops`), and what it
/// printed, normalized.
fn transcript(store: &str, remote: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[("AUTH_BROKER_DATABASE_URL", store)], &[]);
    let ops = cli_json(
        dir.path(),
        store,
        &[
            "client",
            "create",
            "--name",
            "ops",
            "--scope",
            "admin:write",
            "--json",
        ],
    );
    let ops_id = ops["client_id"].as_str().unwrap().to_owned();
    let env = if remote {
        vec![
            ("AUTH_BROKER_ADMIN_URL", serve.base.clone()),
            ("AUTH_BROKER_CLIENT_ID", ops_id.clone()),
            (
                "AUTH_BROKER_CLIENT_SECRET",
                ops["client_secret"].as_str().unwrap().to_owned(),
            ),
        ]
    } else {
        vec![("AUTH_BROKER_DATABASE_URL", store.to_owned())]
    };
    let target = Target {
        dir: dir.path(),
        env,
    };
    let mut vars: Vec<(&str, String)> = Vec::new();
    let mut out = String::new();
    for step in SCRIPT {
        let args: Vec<String> = step
            .iter()
            .map(|a| {
                vars.iter()
                    .find(|(k, _)| k == a)
                    .map_or_else(|| (*a).to_owned(), |(_, v)| v.clone())
            })
            .collect();
        if step.starts_with(&["client", "create"]) || step.starts_with(&["client", "rotate-secret"])
        {
            // Clients are listed by creation time (whole seconds), then by id, which
            // is random; and a rotation records the second the secret was issued in
            // the audit trail only when it differs from the previous one. A new second
            // for each keeps both runs the same however fast each one is.
            next_second();
        }
        let (code, stdout, stderr) = target.run(&args);
        if step.starts_with(&["client", "create"]) && code == 0 {
            let var = if vars.is_empty() { "$A" } else { "$B" };
            vars.push((var, created_id(&stdout)));
        }
        out.push_str(&format!(
            "$ auth-broker {}\nexit {code}\n{}{}\n",
            step.join(" "),
            json_normalized(&stdout),
            stderr
        ));
    }
    drop(serve);
    let actors = [format!("client:{ops_id}"), format!("cli:{USER}@{}", host())];
    normalized(&out, &actors)
}

/// Waits until the wall clock's second changes.
fn next_second() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_nanos(
        1_000_000_000 - u64::from(now.subsec_nanos()) + 1_000_000,
    ));
}

/// The id `client create` printed, as text or JSON.
fn created_id(stdout: &str) -> String {
    match serde_json::from_str::<Value>(stdout) {
        Ok(v) => v["client_id"].as_str().unwrap().to_owned(),
        Err(_) => stdout
            .lines()
            .find_map(|l| l.strip_prefix("client_id:"))
            .unwrap()
            .trim()
            .to_owned(),
    }
}

/// This host's name, as the store path's actor names it.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// JSON output with the request facts only an HTTP change has (`request_id`, `peer`)
/// blanked; other output as it is.
fn json_normalized(stdout: &str) -> String {
    fn blank(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    if k == "request_id" || k == "peer" {
                        *v = Value::Null;
                    } else {
                        blank(v);
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(blank),
            _ => {}
        }
    }
    match serde_json::from_str::<Value>(stdout) {
        Ok(mut v) => {
            blank(&mut v);
            serde_json::to_string_pretty(&v).unwrap() + "\n"
        }
        Err(_) => stdout.to_owned(),
    }
}

/// `text` with what differs between two runs replaced: each actor in `actors` by
/// `<ADMIN>`; RFC 3339 times by `<TIME>` and Unix times by `<T>`; client ids (32
/// hex digits), key ids (43 base64url characters) and secrets (`abs_...`) by
/// `<ID1>`, `<KID1>`, `<SECRET1>` in order of first appearance, so that the same id
/// in the same places still compares equal; runs of spaces by one (the actor column's
/// padding).
fn normalized(text: &str, actors: &[String]) -> String {
    let mut text = text.to_owned();
    for a in actors {
        text = text.replace(a.as_str(), "<ADMIN>");
    }
    let chars: Vec<char> = text.chars().collect();
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut counts = [0usize; 3];
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if let Some(len) = rfc3339_at(&chars[i..]) {
            out.push_str("<TIME>");
            i += len;
            continue;
        }
        let word_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if !word_char(chars[i]) {
            if !(chars[i] == ' ' && out.ends_with(' ')) {
                out.push(chars[i]);
            }
            i += 1;
            continue;
        }
        let end = (i..chars.len())
            .find(|&j| !word_char(chars[j]))
            .unwrap_or(chars.len());
        let word: String = chars[i..end].iter().collect();
        i = end;
        let kind = if word.starts_with("abs_") {
            Some((0, "SECRET"))
        } else if word.len() == 32 && word.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
            Some((1, "ID"))
        } else if word.len() == 43 {
            Some((2, "KID"))
        } else {
            None
        };
        match kind {
            Some((k, name)) => {
                let placeholder = match seen.iter().find(|(w, _)| *w == word) {
                    Some((_, p)) => p.clone(),
                    None => {
                        counts[k] += 1;
                        let p = format!("<{name}{}>", counts[k]);
                        seen.push((word, p.clone()));
                        p
                    }
                };
                out.push_str(&placeholder);
            }
            None if word.len() == 10 && word.chars().all(|c| c.is_ascii_digit()) => {
                out.push_str("<T>");
            }
            None => out.push_str(&word),
        }
    }
    out
}

/// The length of an RFC 3339 UTC time (`2026-12-02T06:03:23Z`, `...:23.498Z`) at the
/// start of `s`, if one is there.
fn rfc3339_at(s: &[char]) -> Option<usize> {
    let shape = "dddd-dd-ddTdd:dd:dd";
    if s.len() < shape.len() + 1 {
        return None;
    }
    let fits = shape.chars().zip(s).all(|(p, c)| match p {
        'd' => c.is_ascii_digit(),
        p => p == *c,
    });
    if !fits {
        return None;
    }
    let mut n = shape.len();
    if s[n] == '.' {
        n += 1;
        while n < s.len() && s[n].is_ascii_digit() {
            n += 1;
        }
    }
    (s.get(n) == Some(&'Z')).then_some(n + 1)
}

fn same_output_against_the_store_and_over_http(backend: Backend) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (local_store, remote_store) = (
        rt.block_on(FreshStore::new(backend)),
        rt.block_on(FreshStore::new(backend)),
    );
    let local = transcript(&local_store.url, false);
    let remote = transcript(&remote_store.url, true);
    if local != remote {
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let (l, r) = (dir.join("local.transcript"), dir.join("remote.transcript"));
        std::fs::write(&l, &local).unwrap();
        std::fs::write(&r, &remote).unwrap();
        let diff = Command::new("diff")
            .arg("-u")
            .args([&l, &r])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        panic!("the store and the admin API print differently:\n{diff}");
    }
    // The comparison is only worth something if the script did what it says.
    for (what, needle) in [
        ("a created client", "name: billing"),
        ("a secret once", "client_secret: <SECRET1>"),
        (
            "a grace",
            "The old secret keeps working for 60 s (until <TIME>).",
        ),
        ("a key rotation", "New active ES256 key: <KID2>"),
        (
            "the operator in the audit trail",
            "<ADMIN> client.secret.rotate <ID2>",
        ),
        ("an unknown id", "error: no client with id '<ID4>'"),
        (
            "a duplicate name",
            "a client named 'billing' already exists",
        ),
        ("each bad field", "client_name: 1 to 200 characters"),
        (
            "each bad field",
            "access_token_ttl: between 1 and 2678400 seconds",
        ),
        ("each bad field", "extra_claims.sub: a registered claim"),
        ("bad usage", "exit 2\nerror: nothing to change"),
    ] {
        assert!(local.contains(needle), "{what}: '{needle}' not in\n{local}");
    }
    assert_eq!(
        local.matches("\nexit 1\n").count(),
        13,
        "the refusals fail (exit 1):\n{local}"
    );
}

#[test]
fn client_keys_and_audit_print_the_same_over_http_as_on_sqlite() {
    same_output_against_the_store_and_over_http(Backend::Sqlite);
}

#[test]
fn client_keys_and_audit_print_the_same_over_http_as_on_postgres() {
    same_output_against_the_store_and_over_http(Backend::Postgres);
}

/// The README's "Managing clients over HTTP" lines, pasted into bash in order against
/// a real broker (its address for the README's 127.0.0.1:8080). Every curl gets
/// `--fail-with-body`, so an answer of 400 or more stops the script, as does any
/// failing line (`set -euo pipefail`); then the audit trail must hold each change the
/// lines made, by the README's admin client.
#[test]
fn the_readme_lines_for_the_admin_api_work_when_pasted() {
    assert!(
        Command::new("jq").arg("--version").output().is_ok(),
        "the README's lines need jq (apt-get install jq)"
    );
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let section = readme
        .split("\n## Managing clients over HTTP\n")
        .nth(1)
        .expect("the README has the section")
        .split("\n## ")
        .next()
        .unwrap();
    let lines = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("the section has a sh block");
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(dir.path(), &[], &[]);
    let script = format!(
        "set -euo pipefail\ncurl() {{ command curl --fail-with-body \"$@\"; }}\n{}\n",
        lines.replace("http://127.0.0.1:8080", &serve.base)
    );
    let path = format!(
        "{}:{}",
        Path::new(BIN).parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = command("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the README's lines failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("name:         portal"), "{stdout}");
    let events = cli_json(dir.path(), "sqlite://auth-broker.db", &["audit", "--json"]);
    let by_api: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"].as_str().unwrap().starts_with("client:"))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        by_api,
        [
            "client.create",
            "client.delete",
            "key.rotate",
            "client.tokens.revoke",
            "client.secret.rotate",
            "client.update",
            "client.create",
        ],
        "newest first: {events:#}"
    );
    assert_eq!(serve.stop(), 0);
}

/// What `--admin-url` refuses (exit 2) and the refusals that say what to do (exit 1):
/// with `serve` and the client-side commands it is no flag; with `--database` it is
/// ambiguous; a token the API refuses (a missing scope, another audience) and
/// credentials the token endpoint refuses each name the cause. The settings file
/// serves as well as the flags.
#[test]
fn the_remote_cli_refuses_what_makes_no_sense_and_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let store = "sqlite://auth-broker.db";
    let serve = Serve::start(dir.path(), &[], &[]);
    let base = serve.base.clone();
    let make = |name: &str, extra: &[&str]| {
        let mut args = vec!["client", "create", "--name", name, "--json"];
        args.extend_from_slice(extra);
        let v = cli_json(dir.path(), store, &args);
        (
            v["client_id"].as_str().unwrap().to_owned(),
            v["client_secret"].as_str().unwrap().to_owned(),
        )
    };
    let target = |env| Target {
        dir: dir.path(),
        env,
    };
    let as_client = |(id, secret): &(String, String)| {
        target(vec![
            ("AUTH_BROKER_ADMIN_URL", base.clone()),
            ("AUTH_BROKER_CLIENT_ID", id.clone()),
            ("AUTH_BROKER_CLIENT_SECRET", secret.clone()),
        ])
    };
    let reader = as_client(&make("auditor", &["--scope", "admin:read"]));
    let nobody = as_client(&make("app", &["--scope", "invoices:read"]));
    let elsewhere = as_client(&make(
        "elsewhere",
        &[
            "--scope",
            "admin:write",
            "--audience",
            "https://api.example.com",
        ],
    ));

    // No flag of serve or of the client side; not with --database; a URL it is.
    for args in [
        &["serve", "--admin-url", base.as_str()][..],
        &["token", "--admin-url", base.as_str()],
        &["client", "list", "--database", store],
        &["client", "list", "--admin-url", "ftp://example.com"],
    ] {
        reader.expect(args, 2, &["--admin-url"]);
    }
    target(vec![("AUTH_BROKER_ADMIN_URL", base.clone())]).expect(
        &["client", "list"],
        2,
        &["missing client_id, client_secret"],
    );

    // admin:read reads, with the API's URL as --admin-url too; a change needs admin:write.
    let api = format!("{base}/admin/v1/");
    let out = reader.expect(&["client", "list", "--admin-url", &api], 0, &[]);
    assert!(
        out.contains("auditor") && out.contains("elsewhere"),
        "{out}"
    );
    reader.expect(
        &["client", "create", "--name", "x"],
        1,
        &[
            "may not do this (403 Forbidden)",
            "'admin:write'",
            "admin:read is enough for list",
        ],
    );
    nobody.expect(&["keys", "list"], 1, &["'admin:read'"]);

    // The token is asked for the issuer: a client whose audiences lack it gets none,
    // and with --token-url (no audience asked) the API refuses the token it gets.
    elsewhere.expect(
        &["audit"],
        1,
        &["cannot get a token for the admin API", "invalid_target"],
    );
    let token_url = format!("{base}/auth-broker/request-token");
    elsewhere.expect(
        &["audit", "--token-url", &token_url],
        1,
        &["refused the token", "leave out --token-url"],
    );

    // Wrong credentials: the token endpoint's answer.
    reader.expect(
        &["client", "list", "--client-secret", "abs_wrong"],
        1,
        &["invalid_client"],
    );

    // Everything from the settings file.
    let (id, secret) = make("ops", &["--scope", "admin:write"]);
    let conf = dir.path().join("remote.toml");
    std::fs::write(
        &conf,
        format!("admin_url = \"{base}\"\nclient_id = \"{id}\"\nclient_secret = \"{secret}\"\n"),
    )
    .unwrap();
    let out = target(vec![("AUTH_BROKER_CONFIG", conf.display().to_string())]).expect(
        &["client", "create", "--name", "from-file"],
        0,
        &[],
    );
    assert!(out.contains("name:         from-file"), "{out}");
    let events = cli_json(dir.path(), store, &["audit", "--limit", "1", "--json"]);
    assert_eq!(events[0]["actor"], format!("client:{id}"), "{events}");
    assert_eq!(serve.stop(), 0);
}
