//! A token endpoint that misbehaves on demand, for the client side's fault tests:
//! down (connection refused), accepting and never answering, answering late, stalling
//! mid-body, or answering garbage. It speaks just enough HTTP/1.1 over a raw socket to
//! send exactly the bytes a test asks for (a framework would refuse to send a
//! truncated body or a lying `Content-Length`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the endpoint does with the next requests.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// `200` with a valid token response: `access_token` is `tok-N` (N counts requests).
    Token { expires_in: u64 },
    /// Nothing listens on the port: connections are refused.
    Down,
    /// Accepts the connection, reads the request, never answers.
    Blackhole,
    /// Answers as `then` after `after`.
    Late {
        after: Duration,
        then: Box<Behaviour>,
    },
    /// Sends a `200` status line and headers announcing a body, then nothing more.
    StallMidBody,
    /// Sends exactly this status, content type, extra headers and body (a lying body
    /// included).
    Raw {
        status: u16,
        content_type: &'static str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
}

impl Behaviour {
    /// A raw answer.
    pub fn raw(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self::Raw {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// A raw answer with this header too (`Location`, `Retry-After`, ...).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Self::Raw { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }
}

#[derive(Debug)]
struct Shared {
    behaviour: Mutex<Behaviour>,
    requests: AtomicUsize,
    tokens: AtomicUsize,
}

/// A misbehaving token endpoint on a fixed `127.0.0.1` port.
#[derive(Debug)]
pub struct FlakyEndpoint {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl FlakyEndpoint {
    /// Starts listening on a free port with this behaviour.
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ep = Self {
            addr,
            shared: Arc::new(Shared {
                behaviour: Mutex::new(Behaviour::Down),
                requests: AtomicUsize::new(0),
                tokens: AtomicUsize::new(0),
            }),
            accept: Mutex::new(None),
            conns: Arc::default(),
        };
        ep.listen(listener);
        ep.set(behaviour).await;
        ep
    }

    /// The token URL.
    pub fn url(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Requests received (read completely) so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Changes the behaviour. `Down` closes the listening socket (and every open
    /// connection); anything else listens again on the same port.
    pub async fn set(&self, behaviour: Behaviour) {
        let down = matches!(behaviour, Behaviour::Down);
        *self.shared.behaviour.lock().unwrap() = behaviour;
        if down {
            if let Some(a) = self.accept.lock().unwrap().take() {
                a.abort();
            }
            for c in self.conns.lock().unwrap().drain(..) {
                c.abort();
            }
            // The aborted accept task drops the listener at its next poll; wait until the
            // port really refuses.
            for _ in 0..200 {
                if TcpStream::connect(self.addr).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            panic!("the port kept accepting after the endpoint went down");
        } else if self.accept.lock().unwrap().is_none() {
            // The port was ours a moment ago; retry briefly in case the old socket
            // is still being torn down.
            let mut tries = 0;
            let listener = loop {
                match TcpListener::bind(self.addr).await {
                    Ok(l) => break l,
                    Err(_) if tries < 200 => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(e) => panic!("cannot listen on {} again: {e}", self.addr),
                }
            };
            self.listen(listener);
        }
    }

    fn listen(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let conns = self.conns.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let c = tokio::spawn(serve(stream, shared.clone()));
                let mut conns = conns.lock().unwrap();
                conns.retain(|h| !h.is_finished());
                conns.push(c.abort_handle());
            }
        });
        *self.accept.lock().unwrap() = Some(task);
    }
}

impl Drop for FlakyEndpoint {
    fn drop(&mut self) {
        if let Some(a) = self.accept.lock().unwrap().take() {
            a.abort();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

/// Reads one request (headers, then `Content-Length` bytes of body); `false` at EOF.
async fn read_request(stream: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    true
}

async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    while read_request(&mut stream).await {
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let mut behaviour = shared.behaviour.lock().unwrap().clone();
        loop {
            match behaviour {
                Behaviour::Late { after, then } => {
                    tokio::time::sleep(after).await;
                    behaviour = *then;
                }
                Behaviour::Down | Behaviour::Blackhole => {
                    std::future::pending::<()>().await;
                }
                Behaviour::StallMidBody => {
                    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{\"access_token\":";
                    let _ = stream.write_all(head.as_bytes()).await;
                    std::future::pending::<()>().await;
                }
                Behaviour::Token { expires_in } => {
                    let n = shared.tokens.fetch_add(1, Ordering::SeqCst) + 1;
                    let body = format!(
                        r#"{{"access_token":"tok-{n}","token_type":"bearer","expires_in":{expires_in}}}"#
                    );
                    if respond(&mut stream, 200, "application/json", &[], body.as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                    break;
                }
                Behaviour::Raw {
                    status,
                    content_type,
                    ref headers,
                    ref body,
                } => {
                    if respond(&mut stream, status, content_type, headers, body)
                        .await
                        .is_err()
                    {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

async fn respond(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\ncache-control: no-store\r\n{extra}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await
}
