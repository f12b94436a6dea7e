//! Tokens verify in third-party libraries using only the metadata and JWKS (RFC 9068,
//! RFC 8414), and a third-party OAuth client completes the exchange.

use crate::on_both_stores;
use auth_broker_server::Config;
use auth_broker_server::SigningAlg;
use auth_broker_testkit::{Backend, TestBroker};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

on_both_stores!(
    tokens_verify_with_jsonwebtoken_for_every_alg,
    the_oauth2_crate_gets_a_token
);

/// The claims of a token, without checking anything (for asserting on them).
pub fn claims_unverified(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn tokens_verify_with_jsonwebtoken_for_every_alg(backend: Backend) {
    for (alg, jwt_alg) in [
        (SigningAlg::Es256, Algorithm::ES256),
        (SigningAlg::EdDsa, Algorithm::EdDSA),
        (SigningAlg::Rs256, Algorithm::RS256),
    ] {
        let config = Config {
            signing_alg: alg,
            issuer: Some("https://auth.example.com".into()),
            ..Config::default()
        };
        let b = TestBroker::start_config(backend, config).await;
        let (id, secret) = b.create_client("c", "read", None).await;
        let token = b.token(&id, &secret).await;

        // Discover everything from the metadata, as a resource server would.
        let meta: Value = b.get_json("/.well-known/oauth-authorization-server").await;
        assert_eq!(meta["issuer"], "https://auth.example.com");
        assert_eq!(
            meta["token_endpoint"],
            "https://auth.example.com/auth-broker/request-token"
        );
        let jwks_uri = meta["jwks_uri"].as_str().unwrap();
        assert_eq!(jwks_uri, "https://auth.example.com/.well-known/jwks.json");
        // The issuer is public; the test reaches the same path on the bound address.
        let path = jwks_uri.strip_prefix("https://auth.example.com").unwrap();
        let jwks: JwkSet = b.get_json(path).await;

        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, jwt_alg);
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let kid = header.kid.unwrap();
        let jwk = jwks
            .find(&kid)
            .unwrap_or_else(|| panic!("{alg}: kid {kid} in the JWKS"));
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let mut v = Validation::new(jwt_alg);
        v.set_issuer(&["https://auth.example.com"]);
        v.set_audience(&["https://auth.example.com"]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Value>(&token, &key, &v)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        let c = data.claims;
        assert_eq!(c["sub"], id.as_str());
        assert_eq!(c["client_id"], id.as_str());
        assert_eq!(c["scope"], "read");
        assert!(c["jti"].as_str().unwrap().len() >= 16);
        assert_eq!(
            c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(),
            3600
        );
        // A tampered token does not verify.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&serde_json::json!({"sub": "admin"})).unwrap());
        assert!(jsonwebtoken::decode::<Value>(&parts.join("."), &key, &v).is_err());
    }
}

async fn the_oauth2_crate_gets_a_token(backend: Backend) {
    use oauth2::basic::BasicClient;
    use oauth2::{ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
    let b = TestBroker::start(backend).await;
    // A secret with characters §2.3.1 encodes, which oauth2-rs does.
    b.insert_client("svc/1", "p@ss:w/rd+=%", "read write").await;
    let client = BasicClient::new(ClientId::new("svc/1".into()))
        .set_client_secret(ClientSecret::new("p@ss:w/rd+=%".into()))
        .set_token_uri(TokenUrl::new(b.token_url()).unwrap());
    // oauth2's own reqwest (it is on 0.12), as an integrator using the crate would.
    let http = oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new("read".into()))
        .request_async(&http)
        .await
        .unwrap();
    let e = token.expires_in().unwrap().as_secs();
    assert!(e == 3599 || e == 3600, "{e}");
    assert_eq!(
        token
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        Some(vec!["read".to_owned()])
    );
    assert_eq!(
        claims_unverified(token.access_token().secret())["sub"],
        "svc/1"
    );

    // And its error type reports our RFC 6749 error.
    let bad = BasicClient::new(ClientId::new("svc/1".into()))
        .set_client_secret(ClientSecret::new("nope".into()))
        .set_token_uri(TokenUrl::new(b.token_url()).unwrap());
    let err = bad
        .exchange_client_credentials()
        .request_async(&http)
        .await
        .unwrap_err();
    match err {
        oauth2::RequestTokenError::ServerResponse(r) => {
            assert_eq!(
                r.error(),
                &oauth2::basic::BasicErrorResponseType::InvalidClient
            );
        }
        other => panic!("expected invalid_client, got {other:?}"),
    }
}
