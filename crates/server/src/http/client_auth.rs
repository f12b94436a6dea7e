//! What the form endpoints share (token, introspection, revocation): reading a
//! bounded form body, and client authentication (RFC 6749 §2.3.1) with failures that
//! look the same whatever their cause, rate limited, logged and counted by reason.

use super::error::{AUTH_FAILED, ApiError};
use crate::AppState;
use crate::mtls::PeerChain;
use crate::secret;
use crate::store::ClientRecord;
use auth_broker_proto::admin::AuthMethod;
use auth_broker_proto::{
    BasicCredentials, BasicError, ClientSecret, ErrorCode, FORM_CONTENT_TYPE, Form,
};
use axum::body::Body;
use axum::http::{HeaderMap, header};
use std::net::SocketAddr;
use std::sync::Arc;

/// The most a form body may be (the contract's 64 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// A refused request: the answer, and the reason it is logged and counted
/// under (`auth_broker_auth_failures_total{reason}`). For failed credentials the
/// reason is precise (`unknown_client`, `wrong_secret`, `disabled_client`) although
/// the answer is the same for all three; the public metrics merge them
/// ([`crate::metrics::auth_failure`]).
#[derive(Debug)]
pub(crate) struct Refused {
    pub error: ApiError,
    pub reason: &'static str,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        let reason = match &error {
            ApiError::BadRequest { code, .. } => match code {
                ErrorCode::InvalidRequest => "invalid_request",
                ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
                ErrorCode::InvalidScope => "invalid_scope",
                ErrorCode::InvalidTarget => "invalid_target",
                _ => "bad_request",
            },
            ApiError::InvalidClient { .. } => "missing_or_unsupported_client_authentication",
            ApiError::TooManyFailures { .. } => "rate_limited",
            ApiError::QuotaExceeded { .. } => "quota_exceeded",
            ApiError::PayloadTooLarge { .. } => "body_too_large",
            ApiError::BodyTimeout { .. } => "body_timeout",
            ApiError::Unavailable => "store_unavailable",
            _ => "internal",
        };
        Self { error, reason }
    }
}

pub(crate) fn refused(reason: &'static str, error: ApiError) -> Refused {
    Refused { error, reason }
}

/// How the client authenticated (RFC 6749 §2.3.1, RFC 7523 §2.2).
enum Credentials {
    Basic(BasicCredentials),
    Post {
        id: String,
        secret: ClientSecret,
    },
    /// `private_key_jwt`: a JWT signed with one of the client's keys, and the body's
    /// `client_id` when it has one (RFC 7521 §4.2: optional, but then the same).
    /// `tls_client_auth` or `self_signed_tls_client_auth` (RFC 8705 §2): the body's
    /// `client_id` and the certificate of the connection.
    Certificate {
        id: String,
    },
    Assertion {
        token: String,
        client_id: Option<String>,
    },
}

async fn read_body(
    app: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<bytes::Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(ApiError::PayloadTooLarge { limit: MAX_BODY });
    }
    match tokio::time::timeout(
        app.config.body_timeout,
        axum::body::to_bytes(body, MAX_BODY),
    )
    .await
    {
        Err(_) => Err(ApiError::BodyTimeout {
            secs: app.config.body_timeout.as_secs(),
        }),
        Ok(Err(e)) => {
            // `to_bytes` fails on the length limit or on a broken connection.
            let inner = e.into_inner();
            if inner.is::<http_body_util::LengthLimitError>() {
                Err(ApiError::PayloadTooLarge { limit: MAX_BODY })
            } else {
                Err(ApiError::invalid_request(format!(
                    "the request body could not be read: {inner}"
                )))
            }
        }
        Ok(Ok(b)) => Ok(b),
    }
}

/// RFC 6749 §4.4.2: the body is `application/x-www-form-urlencoded`. Matched as a
/// media type, so parameters such as `charset` are fine.
fn check_content_type(headers: &HeaderMap, body: &[u8]) -> Result<(), ApiError> {
    let looks_json = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[');
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::invalid_request(format!(
            "the request has no Content-Type; send the body as {FORM_CONTENT_TYPE}: grant_type=client_credentials"
        )));
    };
    let received = String::from_utf8_lossy(value.as_bytes());
    let essence = received
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == FORM_CONTENT_TYPE {
        if looks_json {
            return Err(ApiError::invalid_request(format!(
                "the body is JSON although Content-Type says {FORM_CONTENT_TYPE}; send the form body grant_type=client_credentials instead"
            )));
        }
        return Ok(());
    }
    let shown = auth_broker_proto::escaped(&received);
    if essence == "application/json" || essence.ends_with("+json") {
        return Err(ApiError::invalid_request(format!(
            "the body is JSON (Content-Type '{shown}'); the token endpoint takes a form body: Content-Type {FORM_CONTENT_TYPE} and grant_type=client_credentials"
        )));
    }
    Err(ApiError::invalid_request(format!(
        "wrong Content-Type '{shown}'; the token endpoint takes {FORM_CONTENT_TYPE} (body: grant_type=client_credentials)"
    )))
}

/// Finds the client's credentials: Basic (`client_secret_basic`) or the body
/// (`client_secret_post`), never both (RFC 6749 §2.3: one method per request).
fn credentials(
    headers: &HeaderMap,
    form: &Form,
    has_certificate: bool,
) -> Result<Credentials, ApiError> {
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    let header = auth.next();
    if auth.next().is_some() {
        return Err(ApiError::invalid_request(
            "the request has more than one Authorization header; send one",
        ));
    }
    // RFC 6749 §3.1: a parameter without a value is treated as omitted.
    let body_id = form.get_nonempty("client_id");
    let body_secret = form.get_nonempty("client_secret");
    let assertion_type = form.get_nonempty("client_assertion_type");
    let assertion = form.get_nonempty("client_assertion");
    if assertion_type.is_some() || assertion.is_some() {
        return assertion_credentials(
            header.is_some(),
            body_id,
            body_secret,
            assertion_type,
            assertion,
        );
    }
    match header {
        Some(value) => {
            let basic = BasicCredentials::parse(value.as_bytes()).map_err(|e| match e {
                BasicError::NotBasic { .. } | BasicError::NoScheme => {
                    ApiError::invalid_client(e.to_string())
                }
                _ => ApiError::invalid_request(e.to_string()),
            })?;
            if body_secret.is_some() {
                return Err(ApiError::invalid_request(
                    "client credentials are in both the Authorization header and the body (client_secret); use one method: Basic (preferred) or client_id and client_secret in the body",
                ));
            }
            if let Some(id) = body_id
                && id != basic.client_id()
                && Some(id) != basic.raw_client_id()
            {
                return Err(ApiError::invalid_request(
                    "the body's client_id differs from the one in the Authorization header; send one client_id",
                ));
            }
            Ok(Credentials::Basic(basic))
        }
        None => match (body_id, body_secret) {
            (Some(id), Some(secret)) => Ok(Credentials::Post {
                id: id.to_owned(),
                secret: ClientSecret::new(secret),
            }),
            // RFC 8705 §2: a client id and a certificate on the connection.
            (Some(id), None) if has_certificate => {
                Ok(Credentials::Certificate { id: id.to_owned() })
            }
            (Some(_), _) => Err(ApiError::invalid_client(
                "the body has a client_id but no client_secret (nor a TLS client certificate, for tls_client_auth); send Authorization: Basic base64(client_id:client_secret), or client_secret in the body",
            )),
            // No client authentication was included: `invalid_client` (RFC 6749 §5.2).
            (None, Some(_)) => Err(ApiError::invalid_client(
                "the body has a client_secret but no client_id; send Authorization: Basic base64(client_id:client_secret), or client_id in the body",
            )),
            (None, None) => Err(ApiError::invalid_client(
                "no client authentication: send Authorization: Basic base64(client_id:client_secret)",
            )),
        },
    }
}

/// `private_key_jwt` (RFC 7521 §4.2): both assertion parameters, and no other method
/// beside them (RFC 6749 §2.3: one method per request).
fn assertion_credentials(
    has_header: bool,
    body_id: Option<&str>,
    body_secret: Option<&str>,
    assertion_type: Option<&str>,
    assertion: Option<&str>,
) -> Result<Credentials, ApiError> {
    use auth_broker_jwt::assertion::ASSERTION_TYPE;
    if has_header || body_secret.is_some() {
        return Err(ApiError::invalid_request(
            "the request authenticates twice: a client_assertion and also a secret (Authorization or client_secret); use one method",
        ));
    }
    match (assertion_type, assertion) {
        (Some(ASSERTION_TYPE), Some(token)) => Ok(Credentials::Assertion {
            token: token.to_owned(),
            client_id: body_id.map(str::to_owned),
        }),
        (Some(other), Some(_)) => Err(ApiError::invalid_client(format!(
            "client_assertion_type '{}' is not supported; send client_assertion_type={ASSERTION_TYPE} with a JWT client_assertion (RFC 7523 §2.2)",
            auth_broker_proto::escaped(other)
        ))),
        (None, _) => Err(ApiError::invalid_request(format!(
            "the body has a client_assertion but no client_assertion_type; add client_assertion_type={ASSERTION_TYPE} (RFC 7521 §4.2)"
        ))),
        (Some(_), None) => Err(ApiError::invalid_request(
            "the body has a client_assertion_type but no client_assertion; add the signed JWT as client_assertion (RFC 7521 §4.2)",
        )),
    }
}

/// Authenticates a `private_key_jwt` client (RFC 7523 §2.2, §3): the assertion's
/// issuer names the client, one of its registered keys must have signed it, its
/// claims must be for this broker and current, and its `jti` must be new. Refusals
/// are `invalid_client` with the fault in the description (RFC 7521 §4.2.1), rate
/// limited like wrong secrets. Whether an id is a `private_key_jwt` client is told
/// (its keys are public and it proves itself by signing); an unknown id, a client
/// of another method and a client in no state to be told more get one answer;
/// "disabled" is said only to the holder of a valid assertion.
async fn authenticate_assertion(
    app: &AppState,
    peer: SocketAddr,
    token: &str,
    client_id: Option<&str>,
) -> Result<Arc<ClientRecord>, Refused> {
    use auth_broker_jwt::assertion::{AssertionFault, peek_issuer};
    let now = app.clock.now_secs();
    let mut counted: Option<Arc<ClientRecord>> = None;
    // The id the failure limit counts under: the assertion's issuer when it has one
    // (a client id, known or not, as for secrets), else the body's client_id.
    let mut claimed = client_id.map(str::to_owned);
    /// A refusal and its reason, or the store failing (`503`, not the client's fault).
    enum Fail {
        Store(crate::store::StoreError),
        Fault(&'static str, AssertionFault),
    }
    let fault = |reason, f| Fail::Fault(reason, f);
    let verdict: Result<Arc<ClientRecord>, Fail> = async {
        let peeked = peek_issuer(token).map_err(|f| fault("assertion_malformed", f))?;
        let iss = peeked.issuer();
        claimed = Some(iss.to_owned());
        if let Some(id) = client_id
            && id != iss
        {
            return Err(fault(
                "assertion_malformed",
                AssertionFault::ClientIdMismatch {
                    client_id: auth_broker_proto::Untrusted::new(id),
                    iss: auth_broker_proto::Untrusted::new(iss),
                },
            ));
        }
        let client = app
            .store
            .get_client_for_auth(iss, secret::DUMMY_HASH)
            .await
            .map_err(Fail::Store)?
            .filter(|c| c.auth_method == AuthMethod::PrivateKeyJwt.as_str());
        let Some(client) = client else {
            return Err(fault(
                "assertion_unknown_client",
                AssertionFault::UnknownClient(auth_broker_proto::Untrusted::new(iss)),
            ));
        };
        counted = Some(client.clone());
        let keys = app
            .client_keys
            .keys_for(&client, peeked.kid(), now)
            .await
            .map_err(|e| {
                fault(
                    "assertion_keys_unavailable",
                    AssertionFault::KeysUnavailable(auth_broker_proto::Untrusted::new(&e.0)),
                )
            })?;
        let accepted = peeked
            .judge(&keys, &app.assertion_policy, now)
            .map_err(|f| fault("assertion_rejected", f))?;
        // Kept past `exp` by the leeway, for as long as the assertion is accepted.
        let until = accepted.exp.saturating_add(app.assertion_policy.leeway);
        let first = app
            .store
            .use_assertion_jti(&client.id, &accepted.jti, until)
            .await
            .map_err(Fail::Store)?;
        if !first {
            return Err(fault(
                "assertion_replayed",
                AssertionFault::Replayed(auth_broker_proto::Untrusted::new(&accepted.jti)),
            ));
        }
        if !client.enabled {
            return Err(fault("assertion_disabled_client", AssertionFault::Disabled));
        }
        Ok(client)
    }
    .await;
    let (reason, fault) = match verdict {
        Ok(c) => return Ok(c),
        Err(Fail::Store(e)) => {
            tracing::warn!(error = %e, "store failure while checking a client assertion");
            return Err(Refused::from(ApiError::from(e)));
        }
        Err(Fail::Fault(reason, f)) => (reason, f),
    };
    if let Some(c) = &counted {
        app.usage.count(&c.id, now, crate::usage::Outcome::Failed);
    }
    let claimed = claimed.as_deref().unwrap_or_default();
    tracing::info!(client_id = %auth_broker_proto::escaped(claimed), reason, %fault, "client assertion refused");
    Err(counted_failure(
        app,
        claimed,
        peer,
        reason,
        fault.to_string(),
    ))
}

/// Checks the credentials against the store. Every failure (unknown id, wrong
/// secret, disabled client) gives the same answer after the same work; failures are
/// rate limited, successes never are.
async fn authenticate(
    app: &AppState,
    peer: SocketAddr,
    creds: &Credentials,
    chain: Option<&PeerChain>,
) -> Result<Arc<ClientRecord>, Refused> {
    let now = app.clock.now_secs();
    let (ids, secrets): (Vec<&str>, Vec<&ClientSecret>) = match creds {
        Credentials::Basic(b) => (
            std::iter::once(b.client_id())
                .chain(b.raw_client_id())
                .collect(),
            std::iter::once(b.client_secret())
                .chain(b.raw_client_secret())
                .collect(),
        ),
        Credentials::Post { id, secret } => (vec![id.as_str()], vec![secret]),
        // Boxed, as every path a secret-based request does not take: an await's
        // future is stored inside the caller's, so an unboxed rare path would make
        // every token request's future (moved and copied as a whole) that much larger.
        Credentials::Assertion { token, client_id } => {
            return Box::pin(authenticate_assertion(
                app,
                peer,
                token,
                client_id.as_deref(),
            ))
            .await;
        }
        Credentials::Certificate { id } => {
            return Box::pin(authenticate_certificate(app, peer, id, chain)).await;
        }
    };
    // An unknown id and a wrong secret must take the same time (no enumeration).
    // Every reading of the id is looked up (no early exit on a hit), each lookup
    // reads and decodes one row either way (`get_client_for_auth`), and each secret
    // costs one hash and two compares either way: with the current and the previous
    // secret of a known client (a dummy when it has none in its grace period), with
    // the stand-in's dummy hash and a dummy for an unknown one. `examples/auth_timing.rs` measures it.
    let mut client = None;
    for id in &ids {
        let found = app
            .store
            .get_client_for_auth(id, secret::DUMMY_HASH)
            .await
            .map_err(ApiError::from)?;
        if client.is_none() {
            client = found;
        }
    }
    let current = client
        .as_ref()
        .map_or(secret::DUMMY_HASH, |c| c.secret_hash.as_str());
    // A secret past its `client_secret_expires_at` (RFC 7591 §3.2.1) is compared all
    // the same (the same work), and then does not count.
    let expired = client
        .as_ref()
        .is_some_and(|c| c.secret_expires_at != 0 && c.secret_expires_at <= now);
    let previous = client.as_ref().and_then(|c| {
        c.previous_secret_hash
            .as_deref()
            .filter(|_| c.previous_secret_expires_at.is_some_and(|t| t > now))
    });
    // `|` rather than `||`: both hashes are always checked, so timing does not tell
    // whether a secret matched the current or the previous one.
    let (mut current_ok, mut previous_ok) = (false, false);
    for s in &secrets {
        // One hash, two compares, whether or not there is a previous secret (the
        // dummy stands in for it): the same work either way.
        let presented = secret::PresentedSecret::new(s);
        current_ok |= presented.matches(current);
        previous_ok |=
            presented.matches(previous.unwrap_or(secret::DUMMY_HASH)) & previous.is_some();
    }
    // A client of another method (private_key_jwt) has no secret anyone knows;
    // refused even so, whatever was sent.
    let secret_allowed = client.as_ref().is_some_and(|c| {
        c.auth_method
            .parse::<AuthMethod>()
            .is_ok_and(AuthMethod::uses_secret)
    });
    let reason = match &client {
        None => "unknown_client",
        Some(_) if !secret_allowed => "secret_not_allowed",
        Some(c) => match (current_ok && !expired, previous_ok, c.enabled) {
            (true, _, true) | (_, true, true) => return Ok(c.clone()),
            (true, _, false) | (_, true, false) => "disabled_client",
            (false, false, _) if current_ok => "secret_expired",
            (false, false, _) => "wrong_secret",
        },
    };
    if let Some(c) = &client {
        app.usage.count(&c.id, now, crate::usage::Outcome::Failed);
    }
    let claimed = ids.first().copied().unwrap_or_default();
    // The claimed id is attacker-controlled: logged escaped and cut short, so it
    // cannot forge log lines or flood the log.
    tracing::info!(client_id = %auth_broker_proto::escaped(claimed), reason, "client authentication failed");
    Err(counted_failure(app, claimed, peer, reason, AUTH_FAILED))
}

/// The parameters of client authentication in a form body (RFC 6749 §2.3.1, RFC
/// 7521 §4.2).
pub(crate) const CLIENT_PARAMS: [&str; 4] = [
    "client_id",
    "client_secret",
    "client_assertion_type",
    "client_assertion",
];

/// Reads the body of a form endpoint: bounded in size and time, the right media
/// type, strictly parsed. Only the `recognized` parameters are kept; the others are
/// ignored, even repeated (RFC 6749 §3.2).
pub(crate) async fn read_form(
    app: &AppState,
    headers: &HeaderMap,
    body: Body,
    recognized: &[&str],
) -> Result<Form, Refused> {
    let body = read_body(app, headers, body).await?;
    check_content_type(headers, &body)?;
    Form::parse_recognized(&body, recognized)
        .map_err(|e| refused("malformed_form", ApiError::invalid_request(e.to_string())))
}

/// Authenticates the client of a form request (Basic or body credentials).
pub(crate) async fn authenticate_client(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    form: &Form,
    chain: Option<&PeerChain>,
) -> Result<Arc<ClientRecord>, Refused> {
    let creds = credentials(headers, form, chain.is_some())?;
    authenticate(app, peer, &creds, chain).await
}

/// Authenticates a mutual TLS client (RFC 8705 §2) by the certificate of the
/// connection: for `tls_client_auth`, one issued by the configured CA whose subject
/// is the registered DN (§2.1); for `self_signed_tls_client_auth`, one of the
/// certificates (`x5c`) in the client's JWK Set (§2.2). Refusals are `invalid_client`
/// with the fault in the description, rate limited like wrong secrets; as for
/// `private_key_jwt`, whether an id is such a client is told, and "disabled" only to
/// the holder of the right certificate.
async fn authenticate_certificate(
    app: &AppState,
    peer: SocketAddr,
    id: &str,
    chain: Option<&PeerChain>,
) -> Result<Arc<ClientRecord>, Refused> {
    let now = app.clock.now_secs();
    let client = app
        .store
        .get_client_for_auth(id, secret::DUMMY_HASH)
        .await
        .map_err(ApiError::from)?
        .filter(|c| {
            c.auth_method == AuthMethod::TlsClientAuth.as_str()
                || c.auth_method == AuthMethod::SelfSignedTlsClientAuth.as_str()
        });
    let verdict: Result<(), (&'static str, String)> = async {
        let Some(client) = &client else {
            return Err((
                "certificate_unknown_client",
                format!(
                    "no client '{}' authenticates with a TLS client certificate (tls_client_auth or self_signed_tls_client_auth); check client_id, or send the client's secret or assertion",
                    auth_broker_proto::escaped(id)
                ),
            ));
        };
        let Some(chain) = chain else {
            return Err(("certificate_missing", "no TLS client certificate".into()));
        };
        if client.auth_method == AuthMethod::TlsClientAuth.as_str() {
            let Some(ca) = &app.client_ca else {
                return Err((
                    "certificate_untrusted",
                    "this broker has no client CA configured (serve --tls-client-ca), so it cannot authenticate tls_client_auth clients".into(),
                ));
            };
            ca.verify(chain.certificates()).map_err(|why| {
                (
                    "certificate_untrusted",
                    format!(
                        "the TLS client certificate is not one the broker's client CA issued, or not valid now ({why}); tls_client_auth clients use a certificate of the CA given to serve --tls-client-ca"
                    ),
                )
            })?;
            let subject = crate::mtls::subject(chain.leaf().der()).map_err(|e| ("certificate_untrusted", e))?;
            let registered = client
                .tls_client_auth_subject_dn
                .as_deref()
                .map(crate::mtls::parse_dn)
                .transpose()
                .map_err(|e| ("certificate_subject_mismatch", format!("the client's registered tls_client_auth_subject_dn is malformed ({e}); fix it with auth-broker client update")))?;
            let Some(registered) = registered else {
                return Err((
                    "certificate_subject_mismatch",
                    "the client has no tls_client_auth_subject_dn registered; set it with auth-broker client update ID --tls-subject-dn DN".into(),
                ));
            };
            if !crate::mtls::dn_matches(&subject, &registered) {
                return Err((
                    "certificate_subject_mismatch",
                    format!(
                        "the TLS client certificate's subject is '{}', but this client is registered with tls_client_auth_subject_dn '{}' (RFC 8705 §2.1.2)",
                        auth_broker_proto::escaped(&crate::mtls::dn_string(&subject)).max_chars(300),
                        auth_broker_proto::escaped(client.tls_client_auth_subject_dn.as_deref().unwrap_or_default()).max_chars(300)
                    ),
                ));
            }
        } else {
            let x5t = chain.leaf().thumbprint();
            let keys = app
                .client_keys
                .keys_for(client, None, now)
                .await
                .map_err(|e| ("certificate_keys_unavailable", format!("the client's jwks_uri cannot be fetched now ({}); retry shortly", auth_broker_proto::escaped(&e.0).max_chars(300))))?;
            if !keys.has_certificate(x5t) {
                return Err((
                    "certificate_not_registered",
                    format!(
                        "the TLS client certificate (x5t#S256 {x5t}) is not among the {} certificate(s) in the client's JWK Set; register it as the x5c of a key in jwks or jwks_uri (RFC 8705 §2.2)",
                        keys.certificate_count()
                    ),
                ));
            }
        }
        if !client.enabled {
            return Err(("certificate_disabled_client", "the client is disabled; an operator can enable it (auth-broker client enable ID)".into()));
        }
        Ok(())
    }
    .await;
    let (reason, description) = match (verdict, client) {
        (Ok(()), Some(c)) => return Ok(c),
        (Err(e), Some(c)) => {
            app.usage.count(&c.id, now, crate::usage::Outcome::Failed);
            e
        }
        (Err(e), None) => e,
        (Ok(()), None) => ("certificate_unknown_client", AUTH_FAILED.to_owned()),
    };
    tracing::info!(client_id = %auth_broker_proto::escaped(id), reason, description, "client certificate refused");
    Err(counted_failure(app, id, peer, reason, description))
}

/// A failed client authentication, counted by the failure limit under the claimed
/// id and the peer's address: `invalid_client` with `description`, or `429` once
/// the limit is reached.
fn counted_failure(
    app: &AppState,
    claimed: &str,
    peer: SocketAddr,
    reason: &'static str,
    description: impl Into<std::borrow::Cow<'static, str>>,
) -> Refused {
    match app.limiter.record_failure(claimed, peer.ip()) {
        Some(wait) => refused(
            "rate_limited",
            ApiError::TooManyFailures {
                retry_after_secs: wait.as_secs().max(1),
            },
        ),
        None => refused(reason, ApiError::invalid_client(description)),
    }
}

/// Counts and logs a refusal under its reason and returns the answer.
pub(crate) fn finish(endpoint: &'static str, peer: SocketAddr, r: Refused) -> ApiError {
    crate::metrics::auth_failure(r.reason);
    tracing::info!(%peer, endpoint, reason = r.reason, error = ?r.error, "request refused");
    r.error
}
