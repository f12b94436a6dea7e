//! What every request is held to before routing: RFC 9112 §3.2's `Host` rules, and
//! which caller-supplied `X-Request-Id` the broker adopts.

use super::error::ApiError;
use axum::extract::Request;
use axum::http::{Version, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use std::future::Ready;
use std::task::{Context, Poll};

/// The longest caller-supplied request id adopted.
const MAX_REQUEST_ID: usize = 128;

/// Whether a caller's request id is one the broker adopts: what common tracing and
/// gateway ids are made of (UUIDs, ULIDs, hex and base64 trace ids, `a.b:c/d`),
/// nothing else. An id goes into every log line of its request and back to the
/// caller in the answer, so quotes, spaces, `;`, non-ASCII (and controls, which
/// hyper already refuses) could forge log fields or lines, and a long one would
/// bloat every line.
pub(super) fn adoptable(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(b))
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
/// HTTP/1.1 request message that lacks a Host header field and to any request
/// message that contains more than one Host header field line". Two `Host`s are how
/// request smuggling through a proxy that reads the other one starts. HTTP/1.0 needs
/// none.
#[derive(Clone, Copy, Debug, Default)]
pub struct HostCheckLayer;

impl<S> tower::Layer<S> for HostCheckLayer {
    type Service = HostCheck<S>;

    fn layer(&self, inner: S) -> HostCheck<S> {
        HostCheck { inner }
    }
}

/// See [`HostCheckLayer`].
#[derive(Clone, Debug)]
pub struct HostCheck<S> {
    inner: S,
}

impl<S> tower::Service<Request> for HostCheck<S>
where
    S: tower::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<S::Future, Ready<Result<Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let mut hosts = req.headers().get_all(header::HOST).iter();
        let fault = match (hosts.next(), hosts.next()) {
            (Some(_), Some(_)) => {
                Some("the request has more than one Host header (RFC 9112 section 3.2); send one")
            }
            (None, _) if req.version() == Version::HTTP_11 => {
                Some("the HTTP/1.1 request has no Host header (RFC 9112 section 3.2); send one")
            }
            _ => None,
        };
        match fault {
            None => Either::Left(self.inner.call(req)),
            Some(description) => Either::Right(std::future::ready(Ok(ApiError::invalid_request(
                description,
            )
            .into_response()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::adoptable;

    #[test]
    fn request_ids_of_common_shapes_are_adopted() {
        for ok in [
            "7f8e0c2a-1b3d-4e5f-8a9b-0c1d2e3f4a5b",
            "01HZX3Y4QW",
            "Root=1-5759e988",
            "a.b:c/d+e_f",
        ] {
            assert!(adoptable(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "a b", "a\"b", "a;b", "a\tb", "é", "a\\b", "<script>"] {
            assert!(!adoptable(bad.as_bytes()), "{bad}");
        }
        assert!(adoptable("x".repeat(128).as_bytes()));
        assert!(!adoptable("x".repeat(129).as_bytes()));
    }
}
