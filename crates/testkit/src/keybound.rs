//! A fake authorization server and API for key-bound clients: `private_key_jwt` client
//! assertions (RFC 7523), DPoP proofs and nonces (RFC 9449), and mutual TLS (RFC 8705).
//!
//! Everything the client sends is verified with the `jsonwebtoken` crate, an
//! implementation independent of the client's own signing, and recorded, so a test can
//! check claims, `jti` uniqueness and what each replay carried. Refusals use the
//! standard error codes with a description naming the fault, as a real server would.

use crate::tls::{Leaf, TestCa};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::ThumbprintHash;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// A client key made by the test, independently of the client crate: its PEM (PKCS#8)
/// to give the client, and what verifies its signatures.
pub struct ClientKey {
    pub pem: String,
    pub alg: Algorithm,
    pub decoding: DecodingKey,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey").field("alg", &self.alg).finish()
    }
}

impl ClientKey {
    /// A new key for `alg` (ES256, EdDSA, RS256 or PS256), made with rcgen.
    pub fn generate(alg: Algorithm) -> Self {
        let sig = match alg {
            Algorithm::ES256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Algorithm::EdDSA => &rcgen::PKCS_ED25519,
            Algorithm::RS256 | Algorithm::PS256 => &rcgen::PKCS_RSA_SHA256,
            other => panic!("no test keys for {other:?}"),
        };
        let kp = rcgen::KeyPair::generate_for(sig).unwrap();
        let raw = kp.public_key_raw();
        let decoding = match alg {
            Algorithm::ES256 => DecodingKey::from_ec_der(raw),
            Algorithm::EdDSA => DecodingKey::from_ed_der(raw),
            _ => DecodingKey::from_rsa_der(raw),
        };
        Self {
            pem: kp.serialize_pem(),
            alg,
            decoding,
        }
    }
}

/// A DPoP key made with `jsonwebtoken`, independently of the client crate: it signs
/// proofs (RFC 9449 §4.2) for tests of the broker and the guard.
pub struct ProofKey {
    encoding: jsonwebtoken::EncodingKey,
    pub jwk: jsonwebtoken::jwk::Jwk,
}

impl Default for ProofKey {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ProofKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofKey")
            .field("jkt", &self.jkt())
            .finish()
    }
}

impl ProofKey {
    /// A DPoP token bound to this key, from `b`'s token endpoint for the client `id`.
    pub async fn token_from(
        &self,
        b: &crate::TestBroker,
        id: &str,
        secret: &auth_broker_proto::ClientSecret,
    ) -> String {
        let v: Value = b
            .http
            .post(b.token_url())
            .basic_auth(id, Some(secret.expose_secret()))
            .header("DPoP", self.proof("POST", &b.token_url(), None))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["token_type"], "DPoP", "{v}");
        v["access_token"].as_str().unwrap().to_owned()
    }

    pub fn new() -> Self {
        let key = ClientKey::generate(Algorithm::ES256);
        let body: String = key
            .pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        let encoding = jsonwebtoken::EncodingKey::from_ec_der(&der);
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, Algorithm::ES256).unwrap();
        Self { encoding, jwk }
    }

    pub fn jkt(&self) -> String {
        self.jwk.thumbprint(ThumbprintHash::SHA256)
    }

    /// A proof of `method url`, for `token` when given.
    pub fn proof(&self, method: &str, url: &str, token: Option<&str>) -> String {
        self.proof_with_nonce(method, url, token, None)
    }

    /// A proof of `method url` with the server's `nonce` (RFC 9449 §8).
    pub fn proof_with_nonce(
        &self,
        method: &str,
        url: &str,
        token: Option<&str>,
        nonce: Option<&str>,
    ) -> String {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let mut h = jsonwebtoken::Header::new(Algorithm::ES256);
        h.typ = Some("dpop+jwt".into());
        h.jwk = Some(self.jwk.clone());
        let mut claims = json!({
            "jti": format!("p-{}-{}", now(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
            "htm": method, "htu": url, "iat": now(),
        });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        if let Some(t) = token {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, t.as_bytes());
            claims["ath"] = json!(URL_SAFE_NO_PAD.encode(digest));
        }
        jsonwebtoken::encode(&h, &claims, &self.encoding).unwrap()
    }
}

/// How the fake behaves.
#[derive(Debug)]
pub struct Options {
    /// The client's id and key: assertions must be signed by it. Without it, the
    /// token endpoint takes any Basic secret or, over TLS, a client certificate.
    pub client: Option<(String, ClientKey)>,
    /// The token endpoint wants this nonce in DPoP proofs (`400 use_dpop_nonce` and
    /// `DPoP-Nonce` otherwise).
    pub token_nonce: Option<String>,
    /// The API wants this nonce in DPoP proofs (`401` with `WWW-Authenticate: DPoP
    /// error="use_dpop_nonce"` and `DPoP-Nonce` otherwise).
    pub api_nonce: Option<String>,
    /// `token_type` of a token issued with a proof (DPoP normally; `bearer` plays a
    /// server without DPoP).
    pub dpop_token_type: &'static str,
    /// Bind a token issued with a proof to the key even when `dpop_token_type` says
    /// `bearer` (a server that binds but answers the wrong type).
    pub bind_bearer: bool,
    /// `expires_in` of the tokens.
    pub expires_in: u64,
    /// Serve https with a certificate of this CA, and require client certificates
    /// signed by it.
    pub mtls: Option<Arc<TestCa>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            client: None,
            token_nonce: None,
            api_nonce: None,
            dpop_token_type: "DPoP",
            bind_bearer: false,
            expires_in: 3600,
            mtls: None,
        }
    }
}

/// What the fake saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Claims of every verified client assertion, in order.
    pub assertions: Vec<Value>,
    /// Headers (decoded JSON) of every verified client assertion.
    pub assertion_headers: Vec<Value>,
    /// Claims of every verified DPoP proof at the token endpoint.
    pub token_proofs: Vec<Value>,
    /// Claims of every verified DPoP proof at the API.
    pub api_proofs: Vec<Value>,
    /// `Authorization` of every API request, as sent.
    pub api_authorization: Vec<String>,
    /// Every token request's form body, as sent.
    pub token_bodies: Vec<String>,
    /// Every refusal, `error: description`.
    pub refusals: Vec<String>,
    /// The client certificate of each token request over TLS (DER), when one came.
    pub token_peer_certs: Vec<Option<Vec<u8>>>,
    /// The client certificate of each API request over TLS (DER), when one came.
    pub api_peer_certs: Vec<Option<Vec<u8>>>,
}

struct Shared {
    opts: Options,
    base: String,
    seen: Mutex<Seen>,
    jtis: Mutex<HashSet<String>>,
    /// Issued token -> the thumbprint it is bound to.
    tokens: Mutex<HashMap<String, Option<String>>>,
    /// Tokens the API refuses (`401 invalid_token`), e.g. to force a refresh.
    refused: Mutex<HashSet<String>>,
    issued: Mutex<u64>,
}

/// The client certificate of the connection, over TLS.
#[derive(Clone)]
struct PeerCert(Option<Vec<u8>>);

/// A running fake: the token endpoint at `/token`, the API under `/api/`.
pub struct KeyBoundServer {
    pub base: String,
    /// The server certificate (for `--ca-file`) and a client certificate the server
    /// accepts, when it serves mutual TLS.
    pub tls: Option<MtlsFiles>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// A CA and a client certificate it issued, for mutual TLS.
#[derive(Debug)]
pub struct MtlsFiles {
    pub ca: Arc<TestCa>,
    pub client: Leaf,
}

impl std::fmt::Debug for KeyBoundServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyBoundServer")
            .field("base", &self.base)
            .finish()
    }
}

impl Drop for KeyBoundServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl KeyBoundServer {
    pub async fn start(opts: Options) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let scheme = if opts.mtls.is_some() { "https" } else { "http" };
        let base = format!("{scheme}://{addr}");
        let tls = opts.mtls.clone();
        let shared = Arc::new(Shared {
            opts,
            base: base.clone(),
            seen: Mutex::default(),
            jtis: Mutex::default(),
            tokens: Mutex::default(),
            refused: Mutex::default(),
            issued: Mutex::new(0),
        });
        let app = axum::Router::new()
            .route("/token", axum::routing::post(token))
            .route("/api/{*rest}", axum::routing::any(api))
            .with_state(shared.clone());
        let (task, tls) = match tls {
            None => (
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                }),
                None,
            ),
            Some(ca) => {
                let server_cert = ca.leaf("key-bound fake");
                let client = ca.leaf("key-bound client");
                let acceptor = acceptor(&ca, &server_cert);
                (
                    tokio::spawn(serve_tls(listener, acceptor, app)),
                    Some(MtlsFiles { ca, client }),
                )
            }
        };
        Self {
            base,
            tls,
            shared,
            task,
        }
    }

    /// The token endpoint.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.base)
    }

    /// An API URL.
    pub fn api(&self, path_and_query: &str) -> String {
        format!(
            "{}/api/{}",
            self.base,
            path_and_query.trim_start_matches('/')
        )
    }

    /// What the fake saw so far.
    pub fn seen(&self) -> Seen {
        self.shared.seen.lock().unwrap().clone()
    }

    /// The API refuses `token` from now on (as if revoked).
    pub fn refuse(&self, token: &str) {
        self.shared.refused.lock().unwrap().insert(token.to_owned());
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> u64 {
        *self.shared.issued.lock().unwrap()
    }
}

fn acceptor(ca: &TestCa, leaf: &Leaf) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![leaf.der.clone()], key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Serves `app` over TLS, each connection with its client certificate as an extension.
async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: axum::Router,
) {
    while let Ok((tcp, _)) = listener.accept().await {
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            // A client without an acceptable certificate fails here.
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let peer = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.to_vec());
            let svc = hyper_util::service::TowerToHyperService::new(
                app.layer(axum::Extension(PeerCert(peer))),
            );
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
        });
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The JSON of a compact JWS's header.
fn header_json(jws: &str) -> Value {
    jws.split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// base64url of SHA-256, with aws-lc-rs (not the client's code).
pub fn sha256_b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data))
}

/// A verified DPoP proof: its claims and the thumbprint of its key.
#[derive(Debug, Clone)]
pub struct Proof {
    pub claims: Value,
    pub jkt: String,
}

/// Verifies a DPoP proof as RFC 9449 §4.3 says: `typ`, an asymmetric `alg`, the public
/// `jwk` (no private member) that verifies the signature, `htm`, `htu` (compared
/// without query and fragment), `iat` within 60 s, a `jti`; `ath` when `access_token`
/// is given; `nonce` when one is wanted. `Err` names the fault.
pub fn verify_proof(
    proof: &str,
    htm: &str,
    htu: &str,
    access_token: Option<&str>,
) -> Result<Proof, String> {
    let raw_header = header_json(proof);
    if raw_header["jwk"].get("d").is_some() {
        return Err("the jwk holds a private key".into());
    }
    let header = jsonwebtoken::decode_header(proof).map_err(|e| format!("header: {e}"))?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err(format!("typ is {:?}, not dpop+jwt", header.typ));
    }
    let jwk = header.jwk.ok_or("no jwk in the header")?;
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("jwk: {e}"))?;
    let mut v = Validation::new(header.alg);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(proof, &key, &v)
        .map_err(|e| format!("signature: {e}"))?
        .claims;
    let want_htu = htu.split(['?', '#']).next().unwrap_or(htu);
    if claims["htm"] != htm {
        return Err(format!("htm {} is not {htm}", claims["htm"]));
    }
    if claims["htu"] != want_htu {
        return Err(format!("htu {} is not {want_htu}", claims["htu"]));
    }
    let iat = claims["iat"].as_i64().ok_or("no iat")?;
    if (iat - now()).abs() > 60 {
        return Err(format!("iat {iat} is {} s off", iat - now()));
    }
    if claims["jti"].as_str().is_none_or(|j| j.len() < 16) {
        return Err("no jti (or a short one)".into());
    }
    match access_token {
        Some(t) if claims["ath"] != sha256_b64(t.as_bytes()) => {
            return Err(format!("ath {} is not the token's hash", claims["ath"]));
        }
        None if claims.get("ath").is_some() => return Err("ath on a token request".into()),
        _ => {}
    }
    Ok(Proof {
        jkt: jwk.thumbprint(ThumbprintHash::SHA256),
        claims,
    })
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [("cache-control", "no-store")],
        axum::Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

impl Shared {
    fn refuse(&self, status: StatusCode, error: &str, description: &str) -> Response {
        self.seen
            .lock()
            .unwrap()
            .refusals
            .push(format!("{error}: {description}"));
        oauth_error(status, error, description)
    }

    /// A `jti` never seen before, across assertions and proofs.
    fn fresh_jti(&self, claims: &Value) -> bool {
        let jti = claims["jti"].as_str().unwrap_or_default().to_owned();
        self.jtis.lock().unwrap().insert(jti)
    }

    /// Verifies a client assertion (RFC 7523 §3) signed by the configured key.
    fn verify_assertion(&self, form: &auth_broker_proto::Form) -> Result<String, String> {
        let Some((client_id, key)) = &self.opts.client else {
            return Err("no client has a key here".into());
        };
        if form.get("client_assertion_type")
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return Err("client_assertion_type is not jwt-bearer".into());
        }
        let assertion = form.get("client_assertion").ok_or("no client_assertion")?;
        let token_url = format!("{}/token", self.base);
        let mut v = Validation::new(key.alg);
        v.set_audience(&[&token_url]);
        v.set_issuer(&[client_id]);
        v.sub = Some(client_id.clone());
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        v.leeway = 5;
        let data =
            jsonwebtoken::decode::<Value>(assertion, &key.decoding, &v).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                        "the client assertion has expired (exp)".to_owned()
                    }
                    jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                        format!("the client assertion's aud is not {token_url}")
                    }
                    _ => format!("the client assertion's signature or claims: {e}"),
                }
            })?;
        let c = data.claims;
        let (iat, exp) = (c["iat"].as_i64(), c["exp"].as_i64());
        let (Some(iat), Some(exp)) = (iat, exp) else {
            return Err("the client assertion lacks iat or exp".into());
        };
        if exp - iat > 300 || exp - now() > 305 {
            return Err("the client assertion's exp is more than 5 minutes ahead".into());
        }
        if !self.fresh_jti(&c) {
            return Err("the client assertion's jti was used before".into());
        }
        let mut seen = self.seen.lock().unwrap();
        seen.assertions.push(c);
        seen.assertion_headers.push(header_json(assertion));
        Ok(client_id.clone())
    }

    fn issue(&self, jkt: Option<String>) -> String {
        let mut n = self.issued.lock().unwrap();
        *n += 1;
        let token = format!("tok-{n}");
        self.tokens.lock().unwrap().insert(token.clone(), jkt);
        token
    }
}

async fn token(
    State(s): State<Arc<Shared>>,
    peer: Option<axum::Extension<PeerCert>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    {
        let mut seen = s.seen.lock().unwrap();
        seen.token_bodies.push(body.clone());
        if s.opts.mtls.is_some() {
            seen.token_peer_certs
                .push(peer.as_ref().and_then(|p| p.0.0.clone()));
        }
    }
    let Ok(form) = auth_broker_proto::Form::parse(body.as_bytes()) else {
        return s.refuse(StatusCode::BAD_REQUEST, "invalid_request", "bad form");
    };
    // Client authentication.
    if form.get("client_assertion").is_some() {
        if let Err(e) = s.verify_assertion(&form) {
            return s.refuse(StatusCode::UNAUTHORIZED, "invalid_client", &e);
        }
    } else if s.opts.mtls.is_some() {
        if form.get("client_id").is_none() || peer.is_none_or(|p| p.0.0.is_none()) {
            return s.refuse(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "tls_client_auth: client_id and a client certificate",
            );
        }
    } else if !headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Basic "))
    {
        return s.refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "no client authentication",
        );
    }
    // DPoP.
    let mut jkt = None;
    let mut nonce_header = None;
    if let Some(proof) = headers.get("dpop").and_then(|v| v.to_str().ok()) {
        let p = match verify_proof(proof, "POST", &format!("{}/token", s.base), None) {
            Ok(p) => p,
            Err(e) => return s.refuse(StatusCode::BAD_REQUEST, "invalid_dpop_proof", &e),
        };
        if !s.fresh_jti(&p.claims) {
            return s.refuse(
                StatusCode::BAD_REQUEST,
                "invalid_dpop_proof",
                "the proof's jti was used before",
            );
        }
        if let Some(want) = &s.opts.token_nonce {
            nonce_header = Some(want.clone());
            if p.claims["nonce"] != want.as_str() {
                let r = s.refuse(
                    StatusCode::BAD_REQUEST,
                    "use_dpop_nonce",
                    "Authorization server requires nonce in DPoP proof",
                );
                return with_nonce(r, want);
            }
        }
        s.seen.lock().unwrap().token_proofs.push(p.claims);
        jkt = Some(p.jkt);
    }
    let token_type = if jkt.is_some() {
        s.opts.dpop_token_type
    } else {
        "bearer"
    };
    let bound = jkt.filter(|_| token_type.eq_ignore_ascii_case("dpop") || s.opts.bind_bearer);
    let access_token = s.issue(bound);
    let r = (
        [("cache-control", "no-store")],
        axum::Json(json!({
            "access_token": access_token,
            "token_type": token_type,
            "expires_in": s.opts.expires_in,
            "scope": "",
        })),
    )
        .into_response();
    match nonce_header {
        Some(n) => with_nonce(r, &n),
        None => r,
    }
}

/// `r` with a `DPoP-Nonce` header.
fn with_nonce(mut r: Response, nonce: &str) -> Response {
    r.headers_mut()
        .insert("dpop-nonce", HeaderValue::from_str(nonce).unwrap());
    r
}

fn api_refusal(s: &Shared, error: &str, description: &str) -> Response {
    s.seen
        .lock()
        .unwrap()
        .refusals
        .push(format!("{error}: {description}"));
    let mut r = (StatusCode::UNAUTHORIZED, description.to_owned()).into_response();
    r.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_str(&format!(
            r#"DPoP error="{error}", error_description="{description}", algs="ES256 EdDSA RS256 PS256""#
        ))
        .unwrap(),
    );
    r
}

async fn api(
    State(s): State<Arc<Shared>>,
    peer: Option<axum::Extension<PeerCert>>,
    req: Request,
) -> Response {
    let headers = req.headers().clone();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    {
        let mut seen = s.seen.lock().unwrap();
        seen.api_authorization.push(auth.clone());
        if s.opts.mtls.is_some() {
            seen.api_peer_certs
                .push(peer.as_ref().and_then(|p| p.0.0.clone()));
        }
    }
    let (scheme, token) = auth.split_once(' ').unwrap_or(("", ""));
    let bound = s.tokens.lock().unwrap().get(token).cloned();
    let Some(bound) = bound else {
        return api_refusal(&s, "invalid_token", "unknown token");
    };
    if s.refused.lock().unwrap().contains(token) {
        return api_refusal(&s, "invalid_token", "the token was revoked");
    }
    match (scheme, bound) {
        ("DPoP", Some(jkt)) => {
            let Some(proof) = headers.get("dpop").and_then(|v| v.to_str().ok()) else {
                return api_refusal(&s, "invalid_dpop_proof", "no DPoP proof");
            };
            let htu = format!("{}{}", s.base, req.uri().path());
            let p = match verify_proof(proof, req.method().as_str(), &htu, Some(token)) {
                Ok(p) => p,
                Err(e) => return api_refusal(&s, "invalid_dpop_proof", &e),
            };
            if p.jkt != jkt {
                return api_refusal(&s, "invalid_token", "the proof's key is not the token's");
            }
            if !s.fresh_jti(&p.claims) {
                return api_refusal(&s, "invalid_dpop_proof", "the proof's jti was used before");
            }
            if let Some(want) = &s.opts.api_nonce
                && p.claims["nonce"] != want.as_str()
            {
                let r = api_refusal(
                    &s,
                    "use_dpop_nonce",
                    "Resource server requires nonce in DPoP proof",
                );
                return with_nonce(r, want);
            }
            s.seen.lock().unwrap().api_proofs.push(p.claims);
        }
        ("Bearer", None) => {}
        ("Bearer", Some(_)) => {
            return api_refusal(
                &s,
                "invalid_token",
                "a DPoP-bound token presented as Bearer",
            );
        }
        _ => return api_refusal(&s, "invalid_token", "unknown scheme"),
    }
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    format!("ok {token} {}", String::from_utf8_lossy(&body)).into_response()
}
