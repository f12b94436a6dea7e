//! `Debug` of every secret-bearing type the broker has is redacted (issue 7): a
//! `{:?}` in a log line or a panic message must not carry a client secret, a private
//! key, an access token or a database password.

use auth_broker_proto::{AccessToken, BasicCredentials, ClientSecret, Form, TokenResponse};
use auth_broker_server::admin::{Actor, Admin, NewClient};
use auth_broker_server::clock::SystemClock;
use auth_broker_server::testing::{KeyRecord, Raw, SigningKey};
use auth_broker_server::{Config, Server, SigningAlg, Store};
use auth_broker_testkit::{Backend, FreshStore};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use std::sync::Arc;

/// The forms a private key could take in a `Debug` output: hex, base64 (both
/// alphabets) and `Vec<u8>`'s own `48, 130, ...` list, of every 12-byte window of
/// its PKCS#8 DER that is not public (the DER also holds the public key, which the
/// key ring's verifiers may print).
fn private_forms(rec: &KeyRecord) -> Vec<String> {
    let jwk: serde_json::Value = serde_json::from_str(&rec.public_jwk).unwrap();
    let part = |m: &str| {
        jwk[m]
            .as_str()
            .map(|v| URL_SAFE_NO_PAD.decode(v).unwrap())
            .unwrap_or_default()
    };
    let mut point = vec![4u8];
    point.extend(part("x"));
    point.extend(part("y"));
    let public = [point, part("x"), part("n"), part("e")];
    let der = &rec.private_key;
    let mut forms = Vec::new();
    for w in der.windows(12).step_by(4) {
        if public
            .iter()
            .any(|p| p.len() >= w.len() && p.windows(w.len()).any(|pw| pw == w))
        {
            continue;
        }
        forms.push(w.iter().map(|x| format!("{x:02x}")).collect());
        forms.push(STANDARD.encode(w));
        forms.push(URL_SAFE_NO_PAD.encode(w));
        let list = format!("{w:?}");
        forms.push(list[1..list.len() - 1].to_owned());
    }
    assert!(
        forms.len() >= 4 * 4,
        "{} windows for {}",
        forms.len() / 4,
        rec.alg
    );
    forms
}

fn assert_hidden(what: &str, debug: &str, secrets: &[String]) {
    assert!(!debug.is_empty(), "{what}: empty Debug");
    for s in secrets {
        assert!(!debug.contains(s.as_str()), "{what} shows {s:?}: {debug}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_of_every_secret_bearing_type_is_redacted() {
    // Wire types.
    let secret = "abs_Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWpr";
    let s = ClientSecret::new(secret);
    let basic = BasicCredentials::parse(
        auth_broker_proto::basic::header_value("client-1", &s, true).as_bytes(),
    )
    .unwrap();
    let form = Form::parse(
        format!("grant_type=client_credentials&client_id=c&client_secret={secret}").as_bytes(),
    )
    .unwrap();
    let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl";
    let resp = TokenResponse {
        access_token: AccessToken::new(token),
        expires_in: Some(3599),
        scope: Some(String::new()),
        token_type: "bearer".into(),
    };
    let secrets = [
        secret.to_owned(),
        secret[4..].to_owned(),
        token.to_owned(),
        "c2lnbmF0dXJlc2lnbmF0dXJl".to_owned(),
    ];
    for (what, d) in [
        ("ClientSecret", format!("{s:?} {s:#?}")),
        ("AccessToken", format!("{:?}", resp.access_token)),
        ("BasicCredentials", format!("{basic:?} {basic:#?}")),
        ("Form", format!("{form:?}")),
        ("TokenResponse", format!("{resp:?} {resp:#?}")),
    ] {
        assert_hidden(what, &d, &secrets);
    }
    // A JWS split for verification holds the whole token.
    let jwt = auth_broker_jwt::parse(token).unwrap();
    assert_hidden("Unverified", &format!("{jwt:?}"), &secrets);

    // Signing keys, as generated, stored and loaded.
    for alg in SigningAlg::ALL {
        let rec = SigningKey::generate(alg, 0).unwrap();
        let key = SigningKey::from_record(&rec).unwrap();
        let forms = private_forms(&rec);
        assert_hidden("KeyRecord", &format!("{rec:?} {rec:#?}"), &forms);
        assert_hidden("SigningKey", &format!("{key:?} {key:#?}"), &forms);
    }

    // A whole broker on PostgreSQL reached with a password in its URL: the server
    // (config, store, key ring, limiter), a client record, an issued token.
    let fresh = FreshStore::new(Backend::Postgres).await;
    let password = "pw-5ecret-in-url";
    // Trust authentication ignores the password, so this URL connects.
    let url = fresh
        .url
        .replacen("postgres@", &format!("postgres:{password}@"), 1);
    assert!(url.contains(password));
    let store = Store::open(&url).await.unwrap();
    assert_hidden("Store", &format!("{store:?}"), &[password.to_owned()]);
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    assert_hidden("Config", &format!("{config:?}"), &[password.to_owned()]);
    let (client, client_secret) = Admin::new(store.clone(), Arc::new(SystemClock))
        .create_client(
            &Actor::cli(),
            &NewClient {
                name: "app".into(),
                scope: "read".into(),
                audience: None,
            },
        )
        .await
        .unwrap();
    let client = Raw(&store)
        .get_client(&client.client_id)
        .await
        .unwrap()
        .unwrap();
    let server = Server::bind(config, store.clone(), Arc::new(SystemClock))
        .await
        .unwrap();
    let issued = server
        .state()
        .sign_token(&client.id, "aud", &client.scopes)
        .unwrap();
    let sig = issued.token.rsplit('.').next().unwrap().to_owned();
    let mut secrets = vec![
        password.to_owned(),
        client_secret.expose_secret().to_owned(),
        client_secret.expose_secret()[4..].to_owned(),
        client.secret_hash.clone(),
        issued.token.clone(),
        sig,
    ];
    for rec in Raw(&store).list_keys().await.unwrap() {
        secrets.extend(private_forms(&rec));
    }
    for (what, d) in [
        ("ClientRecord", format!("{client:#?}")),
        ("Issued", format!("{issued:?}")),
        ("Server", format!("{server:?} {server:#?}")),
    ] {
        assert_hidden(what, &d, &secrets);
    }
    // The check itself works: these do show what was hidden above.
    assert!(format!("{:?}", issued.token).contains(&issued.token));
    assert!(format!("{:?}", fresh.url).contains("ab_test_"));
}
