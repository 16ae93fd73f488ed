//! One HTTP/1.1 keep-alive connection of the load generator, and the request it repeats.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::LoadError;

/// The request every connection sends, prepared once: each send clones reference-counted
/// bytes and a few header values, nothing is re-serialised.
#[derive(Clone, Debug)]
pub struct RequestTemplate {
    pub addr: SocketAddr,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl RequestTemplate {
    /// A JSON POST to `path` on `addr`, with `Authorization: Bearer <key>` when given.
    pub fn json_post(
        addr: SocketAddr,
        path: &str,
        key: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Self, LoadError> {
        let mut headers = vec![
            (http::header::HOST, header_value(&addr.to_string())?),
            (
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ];
        if let Some(key) = key {
            headers.push((
                http::header::AUTHORIZATION,
                header_value(&format!("Bearer {key}"))?,
            ));
        }
        Ok(RequestTemplate {
            addr,
            path: path.to_string(),
            headers,
            body: Bytes::from(body),
        })
    }

    fn build(&self) -> Result<Request<Full<Bytes>>, LoadError> {
        let mut request = Request::builder().method(Method::POST).uri(&self.path);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        request
            .body(Full::new(self.body.clone()))
            .map_err(|e| LoadError::Request(e.to_string()))
    }
}

fn header_value(text: &str) -> Result<HeaderValue, LoadError> {
    HeaderValue::from_str(text).map_err(|e| LoadError::Request(e.to_string()))
}

/// An open connection; its I/O runs in a task of its own, as hyper's connection API wants.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> Result<Self, LoadError> {
        let stream = TcpStream::connect(addr).await?;
        // Requests are small and latency is what is measured: no Nagle delay.
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // A broken connection shows up as an error of the next send, where it is counted.
            let _ = connection.await;
        });
        Ok(Connection { sender })
    }

    /// Sends the request and reads the whole answer; returns its status.
    pub async fn send(&mut self, template: &RequestTemplate) -> Result<StatusCode, LoadError> {
        self.sender.ready().await?;
        let response = self.sender.send_request(template.build()?).await?;
        let status = response.status();
        response.into_body().collect().await?;
        Ok(status)
    }
}
