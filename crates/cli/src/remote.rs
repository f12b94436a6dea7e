//! The admin API (`/admin/v1`, INTERFACE §6) as `--admin-url` reaches it: a token from
//! the broker's own token endpoint through the client side's token manager, one
//! request per operation, and every refusal (RFC 9457 problem details) turned into the
//! message the same refusal gives against the database, so the commands print the
//! same either way.

use crate::client_side::call::usage;
use crate::client_side::{ClientArgs, TokenRequestArgs, with_tls_hint, with_tls_hint_from};
use auth_broker_client::TokenManager;
use auth_broker_client::error::causes;
use auth_broker_proto::AuthorizationServerMetadata;
use auth_broker_proto::admin::Problem;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use std::time::Duration;

/// How long one admin request may take, connection included. Generous: a key rotation
/// makes an RSA key when asked for RS256 (a second or two on a small machine).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of an unexpected answer an error message shows.
const SHOWN_BODY: usize = 300;

/// What to do about a `401` from the admin API. Each command fetches a new token, so
/// an expired one is not the cause; a token from elsewhere or for another audience is.
const ADVICE_401: &str = "the admin API takes only this broker's tokens for its issuer: leave out --token-url (the token endpoint and the issuer are then read from the broker), and give the client no --audience or the issuer among its audiences";

/// A connection to one broker's admin API, as one client of it.
pub struct AdminApi {
    /// The broker's base URL, ending in `/`.
    base: Url,
    http: reqwest::Client,
    tokens: TokenManager,
    client_id: String,
    /// Why a token request failed, said before what the token endpoint answered.
    token_context: String,
}

/// `Debug` without the token manager's insides (the credentials are in its config).
impl std::fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminApi")
            .field("base", &self.base.as_str())
            .field("client_id", &self.client_id)
            .field("token_url", &self.tokens.config().token_url)
            .finish_non_exhaustive()
    }
}

/// The broker's base URL from `--admin-url`: `http` or `https`, without credentials,
/// query or fragment. A trailing `/`, and a trailing `/admin/v1` (the API's own URL),
/// are accepted and dropped; any other path is kept, for a broker behind a proxy
/// under a prefix (`https://gw.example.com/auth`).
pub fn base_url(text: &str) -> anyhow::Result<Url> {
    let bad = |why: String| {
        usage(format!(
            "--admin-url '{text}' {why}; give the broker's base URL, e.g. http://127.0.0.1:8080"
        ))
    };
    let mut url = Url::parse(text).map_err(|e| bad(format!("is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("is not http:// or https://".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "holds credentials; give them as --client-id and --client-secret".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("has a query or fragment".into()));
    }
    let path = url.path().trim_end_matches('/');
    let path = path.strip_suffix("/admin/v1").unwrap_or(path).to_owned();
    url.set_path(&format!("{path}/"));
    Ok(url)
}

impl AdminApi {
    /// Reaches the broker at `admin_url` as the client of `client`. Its token URL is
    /// `--token-url` when given, else the `token_endpoint` of the broker's RFC 8414
    /// metadata (`/.well-known/oauth-authorization-server`); the token is fetched on
    /// the first request.
    ///
    /// The token asks for no scope, which the broker answers with all of the client's
    /// scopes: asking for `admin:write` would fail for a client that has only
    /// `admin:read` even for reads, and asking for `admin:read` would fail for one with
    /// only `admin:write` (which implies it at the API, not at the token endpoint). So
    /// the API, not the token request, decides, with a `403` that names the scope
    /// missing. The token carries the client's other scopes too, but it lives only in
    /// this process, for this broker. With the metadata, the token asks for the
    /// issuer as its audience (the only one the admin API takes), so a client whose
    /// audiences list the issuer after another gets the right one.
    pub async fn connect(admin_url: &str, client: &ClientArgs) -> anyhow::Result<Self> {
        let base = base_url(admin_url)?;
        // The client certificate (mutual TLS), when one is set, goes to the admin API
        // too: a broker that binds tokens to certificates checks it there.
        let identity = client.identity()?;
        let http = client.http_client(
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(REQUEST_TIMEOUT),
            identity.as_ref(),
        )?;
        let mut client = client.clone();
        let request = match &client.token_url {
            Some(_) => TokenRequestArgs::default(),
            None => {
                let metadata = discover(&http, &base).await?;
                client.token_url = Some(metadata.token_endpoint);
                TokenRequestArgs {
                    scope: None,
                    audience: Some(metadata.issuer),
                }
            }
        };
        let tokens = client.manager(&request)?;
        let client_id = client.client_id.unwrap_or_default();
        let token_context = match &request.audience {
            Some(issuer) => format!(
                "cannot get a token for the admin API as client '{client_id}' for the audience '{issuer}' (the broker's issuer, the only audience the admin API takes)"
            ),
            None => format!("cannot get a token for the admin API as client '{client_id}'"),
        };
        Ok(Self {
            base,
            http,
            tokens,
            client_id,
            token_context,
        })
    }

    /// The URL of `segments` under `/admin/v1/`, each percent-encoded as one segment.
    pub fn url(&self, segments: &[&str]) -> Url {
        under(&self.base, ["admin", "v1"].iter().chain(segments))
    }

    /// One request, with a JSON body when given (`content_type` is
    /// `application/json` or, for a merge patch, `application/merge-patch+json`); the
    /// answer as `T`.
    pub async fn request<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<(&'static str, &serde_json::Value)>,
    ) -> anyhow::Result<T> {
        let (status, bytes) = self.exchange(method.clone(), url.clone(), body).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{method} {url} answered {status} with a body that is not the JSON this command expects ({e}): {}; is --admin-url a broker of this version?",
                shown(&bytes)
            )
        })
    }

    /// `DELETE`, answered `204`.
    pub async fn delete(&self, url: Url) -> anyhow::Result<()> {
        self.exchange(Method::DELETE, url, None).await.map(|_| ())
    }

    /// Sends one request with the token; a success's status and body, or the error
    /// the answer means.
    async fn exchange(
        &self,
        method: Method,
        url: Url,
        body: Option<(&'static str, &serde_json::Value)>,
    ) -> anyhow::Result<(StatusCode, Vec<u8>)> {
        let token = self.tokens.token().await.map_err(|e| {
            with_tls_hint(anyhow::Error::new(e).context(self.token_context.clone()))
        })?;
        let mut req = self
            .http
            .request(method.clone(), url.clone())
            .header(AUTHORIZATION, token.authorization().clone());
        if let Some((content_type, value)) = body {
            req = req
                .header(CONTENT_TYPE, content_type)
                .body(serde_json::to_vec(value)?);
        }
        let (status, location, bytes) = fetch(req, &format!("the admin API at {url}")).await?;
        if status.is_success() {
            return Ok((status, bytes));
        }
        if status.is_redirection() {
            anyhow::bail!(
                "{method} {url} answered {status} redirecting to {}; admin requests do not follow redirects, so the token never goes to another address: give the broker's final address as --admin-url",
                location.as_deref().unwrap_or("(no Location header)")
            );
        }
        match serde_json::from_slice::<Problem>(&bytes) {
            Ok(problem) => Err(self.refusal(status, &problem)),
            Err(_) => Err(anyhow::anyhow!(
                "{method} {url} answered {status}: {}; is --admin-url the broker's base URL (e.g. http://127.0.0.1:8080)?",
                shown(&bytes)
            )),
        }
    }

    /// The message of a refusal: the problem's detail, then each bad field the detail
    /// does not already name (this broker's details name them all, as the CLI does
    /// against the database; another's may only summarize). For `401` and `403`, what
    /// to do as well.
    fn refusal(&self, status: StatusCode, problem: &Problem) -> anyhow::Error {
        let mut message = problem.detail.clone();
        for e in &problem.errors {
            if !message.contains(&e.message) {
                message.push_str(&format!("; {}: {}", e.field, e.message));
            }
        }
        let id = &self.client_id;
        match status {
            StatusCode::UNAUTHORIZED => anyhow::anyhow!(
                "the admin API refused the token of client '{id}' ({status}): {message}; {ADVICE_401}"
            ),
            StatusCode::FORBIDDEN => anyhow::anyhow!(
                "client '{id}' may not do this ({status}): {message}; admin:read is enough for list, show, keys list and audit, admin:write allows every command (each command fetches a new token, so the next one has the scope as soon as the client has it)"
            ),
            _ => anyhow::Error::msg(message),
        }
    }
}

/// The broker's RFC 8414 metadata, read from under `base`.
async fn discover(
    http: &reqwest::Client,
    base: &Url,
) -> anyhow::Result<AuthorizationServerMetadata> {
    let url = under(base, [".well-known", "oauth-authorization-server"]);
    let hint = "--admin-url must be the broker's base URL, where /.well-known/oauth-authorization-server is (or give the token endpoint as --token-url)";
    let what = format!("the broker's metadata at {url}");
    let (status, _, bytes) = fetch(http.get(url.clone()), &what).await?;
    if !status.is_success() {
        anyhow::bail!("{url} answered {status}: {}; {hint}", shown(&bytes));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{url} is not RFC 8414 metadata ({e}): {}; {hint}",
            shown(&bytes)
        )
    })
}

/// Sends `req` and reads the whole answer: its status, `Location` and body. A failure
/// names `what` was asked and every cause, with what to do about a refused certificate.
async fn fetch(
    req: reqwest::RequestBuilder,
    what: &str,
) -> anyhow::Result<(StatusCode, Option<String>, Vec<u8>)> {
    let resp = req.send().await.map_err(|e| {
        with_tls_hint_from(&e, anyhow::anyhow!("cannot reach {what}: {}", causes(&e)))
    })?;
    let status = resp.status();
    let location = resp
        .headers()
        .get(LOCATION)
        .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| anyhow::anyhow!("{what}: the answer broke off: {}", causes(&e)))?;
    Ok((status, location, bytes.to_vec()))
}

/// `base` with `segments` appended to its path, each percent-encoded as one segment.
fn under(base: &Url, segments: impl IntoIterator<Item = impl AsRef<str>>) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// The start of a body, as text on one line.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut s: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(SHOWN_BODY)
        .collect();
    if text.chars().count() > SHOWN_BODY {
        s.push_str("...");
    }
    if s.trim().is_empty() {
        "(an empty body)".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_url_is_the_base_with_or_without_a_slash_or_the_api_path() {
        for (given, base) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/"),
            ("http://127.0.0.1:8080/admin/v1", "http://127.0.0.1:8080/"),
            ("http://127.0.0.1:8080/admin/v1/", "http://127.0.0.1:8080/"),
            ("https://gw.example/auth", "https://gw.example/auth/"),
            (
                "https://gw.example/auth/admin/v1",
                "https://gw.example/auth/",
            ),
        ] {
            let url = base_url(given).unwrap_or_else(|e| panic!("{given}: {e}"));
            assert_eq!(url.as_str(), base, "{given}");
        }
        for bad in [
            "127.0.0.1:8080",
            "ftp://h/",
            "http://u:p@h/",
            "http://h/?x=1",
            "nonsense",
        ] {
            let e = base_url(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains("--admin-url"), "{bad}: {e}");
        }
    }
}
