//! The in-process client of a proxy: one HTTP request over a socket pair the proxy serves.
//!
//! The request takes exactly the path a cell's does (absolute-form, judged by
//! [`request::judge`](crate::request::judge), checked against the policy, recorded), so the
//! WASM cell's `http_fetch` has no policy of its own to get wrong.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;

/// Hands socket pairs to a proxy started with
/// [`Proxy::start_in_process`](crate::Proxy::start_in_process).
#[derive(Clone, Debug)]
pub struct Connector {
    tx: tokio::sync::mpsc::UnboundedSender<std::os::unix::net::UnixStream>,
}

/// A response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a fetch produced no response for the guest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchFailure {
    /// The proxy refused (its denial code and message).
    #[error("refused ({code}): {message}")]
    Refused { code: String, message: String },
    /// Allowed, but the upstream failed (the proxy's 502).
    #[error("the upstream failed: {0}")]
    Upstream(String),
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    /// The proxy is gone (the run is over).
    #[error("the proxy is not running")]
    Closed,
}

impl Connector {
    pub(crate) fn new(
        tx: tokio::sync::mpsc::UnboundedSender<std::os::unix::net::UnixStream>,
    ) -> Self {
        Self { tx }
    }

    /// Sends `method url` with `body` through the proxy and reads the response body, at most
    /// `max_body` bytes. Must run inside a tokio runtime.
    pub async fn fetch(
        &self,
        method: &str,
        url: &str,
        body: Vec<u8>,
        max_body: usize,
    ) -> Result<Fetched, FetchFailure> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| FetchFailure::BadRequest(format!("{method:?} is not an HTTP method")))?;
        if method == Method::CONNECT {
            return Err(FetchFailure::BadRequest(
                "CONNECT is not a request http_fetch makes".into(),
            ));
        }
        let uri: Uri = url
            .parse()
            .map_err(|e| FetchFailure::BadRequest(format!("{url:?}: {e}")))?;
        let authority = uri
            .authority()
            .ok_or_else(|| FetchFailure::BadRequest(format!("{url:?} has no host")))?
            .to_string();
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONNECTION, "close")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| FetchFailure::BadRequest(e.to_string()))?;
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| FetchFailure::Upstream(format!("socket pair: {e}")))?;
        self.tx.send(theirs).map_err(|_| FetchFailure::Closed)?;
        ours.set_nonblocking(true)
            .map_err(|e| FetchFailure::Upstream(e.to_string()))?;
        let stream = tokio::net::UnixStream::from_std(ours)
            .map_err(|e| FetchFailure::Upstream(e.to_string()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| FetchFailure::Upstream(e.to_string()))?;
        let driver = tokio::spawn(conn);
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| FetchFailure::Upstream(e.to_string()))?;
        let status = response.status().as_u16();
        let denial = response
            .headers()
            .get("x-skillcell-denial")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = Limited::new(response.into_body(), max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    FetchFailure::TooLarge(max_body)
                } else {
                    FetchFailure::Upstream(e.to_string())
                }
            })?
            .to_bytes()
            .to_vec();
        driver.abort();
        match denial {
            Some(code) if code == "upstream_failed" => Err(FetchFailure::Upstream(
                String::from_utf8_lossy(&body).trim_end().to_owned(),
            )),
            Some(code) => Err(FetchFailure::Refused {
                code,
                message: String::from_utf8_lossy(&body).trim_end().to_owned(),
            }),
            None => Ok(Fetched { status, body }),
        }
    }
}
