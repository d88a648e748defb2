//! A tiny webhook server standing in for the daemon's Twilio endpoints: it records every request
//! (checking its `X-Twilio-Signature`) and answers with fixed TwiML.
//!
//! | path | answer |
//! |---|---|
//! | `/voice/answer` | a `<Gather>` of 1 digit to the relative `ack?d=7`, then "No key pressed. Goodbye." |
//! | `/voice/ack` | "Acknowledged. Goodbye." and hang up |
//! | `/voice/fallback` | "Fallback speaking." |
//! | `/voice/broken` | 500 |
//! | `/voice/loop` | a `<Redirect>` to itself |
//! | `/status` | 204 |
//! | `/sms` | a `<Message>` reply if the signature is valid, else 403 |

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use pager_fakes::twilio::TEST_AUTH_TOKEN;
use pager_notify::signature;
use pager_notify::twiml::Twiml;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const PROMPT: &str = "Disk full on db1 & db2. Press 1 to acknowledge.";
pub const NO_KEY: &str = "No key pressed. Goodbye.";
pub const ACKNOWLEDGED: &str = "Acknowledged. Goodbye.";
pub const FALLBACK: &str = "Fallback speaking.";
pub const SMS_REPLY: &str = "Got it <3";

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: Method,
    pub path: String,
    /// The full URL as requested, what the signature covers.
    pub url: String,
    pub params: Vec<(String, String)>,
    pub signature_ok: bool,
}

impl Hit {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct Hooks {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    server: JoinHandle<()>,
}

impl Hooks {
    pub async fn start() -> Hooks {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let recorded = hits.clone();
        let router = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let hits = recorded.clone();
                async move { answer(addr, hits, method, uri, headers, body) }
            },
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Hooks { addr, hits, server }
    }

    /// `http://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("lock").clone()
    }

    pub fn hits_to(&self, path: &str) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|hit| hit.path == path)
            .collect()
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn answer(
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let url = format!("http://{addr}{uri}");
    let params: Vec<(String, String)> =
        reqwest::Url::parse(&format!("http://x/?{}", String::from_utf8_lossy(&body)))
            .expect("url")
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    let header = headers
        .get(signature::HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let signature_ok = signature::verify(&[TEST_AUTH_TOKEN], &url, &params, header);
    let path = uri.path().to_owned();
    hits.lock().expect("lock").push(Hit {
        method,
        path: path.clone(),
        url: url.clone(),
        params,
        signature_ok,
    });
    let twiml = |doc: String| ([("content-type", "text/xml")], doc).into_response();
    match path.as_str() {
        "/voice/answer" => twiml(
            Twiml::new()
                .gather(1, "ack?d=7", 5, &[PROMPT])
                .say(NO_KEY)
                .hangup()
                .build(),
        ),
        "/voice/ack" => twiml(Twiml::new().say(ACKNOWLEDGED).hangup().build()),
        "/voice/fallback" => twiml(Twiml::new().say(FALLBACK).build()),
        "/voice/loop" => twiml(Twiml::new().say("again").redirect(&url).build()),
        "/voice/broken" => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "/status" => StatusCode::NO_CONTENT.into_response(),
        "/sms" if signature_ok => twiml(Twiml::new().message(SMS_REPLY).build()),
        "/sms" => StatusCode::FORBIDDEN.into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
