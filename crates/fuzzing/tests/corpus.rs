//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz
//! targets' bodies, so `cargo test` on stable catches a regression on any input the
//! fuzzer once found interesting, and the crash reproducers kept beside them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use auth_broker_fuzzing::TARGETS;
use std::path::PathBuf;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn replay(target: &str) -> usize {
    let (_, run) = TARGETS.iter().find(|(t, _)| *t == target).unwrap();
    let dir = corpus_dir(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
        n += 1;
    }
    assert!(n > 0, "{target}: the corpus at {} is empty", dir.display());
    n
}

#[test]
fn every_target_has_a_corpus_and_a_file() {
    for (t, _) in TARGETS {
        assert!(corpus_dir(t).is_dir(), "no corpus for {t}");
        let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/fuzz_targets")
            .join(format!("{t}.rs"));
        assert!(file.is_file(), "no fuzz target file for {t}");
    }
}

macro_rules! replay_tests {
    ($($t:ident),*) => {$(
        #[test]
        fn $t() {
            let n = replay(stringify!($t));
            eprintln!("{}: {n} inputs replayed", stringify!($t));
        }
    )*};
}

replay_tests!(
    basic_header,
    bearer_header,
    form_body,
    jwks_document,
    token_judgement,
    token_response
);

/// The target's invariants hold on the inputs they were written for, so a replay
/// passing means something: a good token is accepted (with and without the
/// audience check, in both encodings of an ES256 signature), a tampered one refused.
#[test]
fn the_fixture_judges_real_tokens() {
    use auth_broker_fuzzing::fixture::{self, AUDIENCE, ISSUER, NOW};
    use auth_broker_fuzzing::token_judgement::judge;
    let f = fixture::fixture();
    for key in &f.signing {
        let payload = serde_json::json!({
            "iss": ISSUER, "sub": "c", "client_id": "c", "aud": AUDIENCE,
            "iat": NOW, "exp": NOW + 60, "jti": "j", "scope": "a b"
        });
        let token = fixture::sign(key, None, &serde_json::to_vec(&payload).unwrap());
        for with_audience in [false, true] {
            let v = judge(&token, with_audience).unwrap();
            assert_eq!(v.claims.client_id, "c");
            assert_eq!(v.claims.scopes().collect::<Vec<_>>(), ["a", "b"]);
        }
        let input = [&[6u8][..], token.as_bytes()].concat();
        auth_broker_fuzzing::token_judgement::run(&input);

        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert!(judge(&tampered, false).is_err());
    }
    assert!(judge("abc", false).is_err());
}
