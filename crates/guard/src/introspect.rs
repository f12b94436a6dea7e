//! RFC 7662 token introspection, for opaque tokens (or to see revocations at once).

use auth_broker_proto::{ClientSecret, IntrospectionResponse};
use serde::Deserialize;
use serde_json::Value;

pub(crate) struct Introspector {
    http: reqwest::Client,
    pub(crate) endpoint: String,
    /// `Basic base64(form(client_id):form(secret))` (RFC 6749 §2.3.1), built once.
    authorization: String,
}

/// The Basic header holds the client secret (base64 is no protection), so `Debug`
/// leaves it out.
impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("endpoint", &self.endpoint)
            .field("authorization", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl Introspector {
    pub(crate) fn new(
        http: reqwest::Client,
        endpoint: String,
        client_id: &str,
        secret: &ClientSecret,
    ) -> Self {
        Self {
            http,
            endpoint,
            authorization: auth_broker_proto::basic::header_value(client_id, secret, true),
        }
    }

    /// The endpoint's answer: `Ok(None)` for an inactive token, `Ok(Some(members))`
    /// for an active one (read as the broker writes it, [`IntrospectionResponse`],
    /// and kept whole for the claim checks and the handler), `Err` when the endpoint
    /// cannot be asked or answers something else.
    pub(crate) async fn introspect(&self, token: &str) -> Result<Option<Value>, String> {
        let body = auth_broker_proto::form::serialize([
            ("token", token),
            ("token_type_hint", "access_token"),
        ]);
        let resp = self
            .http
            .post(&self.endpoint)
            .header(http::header::AUTHORIZATION, &self.authorization)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "the introspection endpoint {} is unreachable: {e}",
                    self.endpoint
                )
            })?;
        let status = resp.status();
        if status == http::StatusCode::UNAUTHORIZED {
            return Err(format!(
                "the introspection endpoint {} refused this API's client credentials (401); check the guard's introspection client id and secret",
                self.endpoint
            ));
        }
        if !status.is_success() {
            return Err(format!(
                "the introspection endpoint {} answered HTTP {status}",
                self.endpoint
            ));
        }
        let v: Value = resp.json().await.map_err(|e| {
            format!(
                "the introspection endpoint {} answered something that is not JSON: {e}",
                self.endpoint
            )
        })?;
        match IntrospectionResponse::deserialize(&v) {
            Ok(answer) if answer.active => Ok(Some(v)),
            Ok(_) => Ok(None),
            Err(e) => Err(format!(
                "the introspection endpoint {} answered JSON that is not an RFC 7662 §2.2 response ({e})",
                self.endpoint
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn debug_hides_the_client_secret() {
        let secret = "abs_introspection-secret-value";
        let i = Introspector::new(
            reqwest::Client::new(),
            "http://127.0.0.1:1/auth-broker/introspect".into(),
            "api",
            &ClientSecret::new(secret),
        );
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("api:{secret}"));
        let d = format!("{i:?}");
        assert!(d.contains("introspect"), "{d}");
        for s in [secret, &secret[4..], basic.as_str(), &basic[8..]] {
            assert!(!d.contains(s), "{d}");
        }
    }
}
