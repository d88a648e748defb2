//! A real SMTP server for tests: mailin-embedded's server, recording every mail it accepts.
//!
//! mailin-embedded serves forever on blocking threads and has no way to stop, so it listens on a
//! private loopback port, and the address tests use belongs to a small TCP relay in front of it:
//!
//! ```text
//! client ──▶ addr() (tokio relay, stoppable) ──▶ backend port (mailin-embedded threads)
//! ```
//!
//! The relay dials mailin from the client's own IP address (any 127.0.0.x is local), so each mail
//! records the address of the client that sent it ([`ReceivedMail::client_ip`]).
//!
//! [`SmtpServer::stop`] closes the relay's listener and cuts every session in progress, so the
//! port refuses connections, as a crashed relay would; [`SmtpServer::restart`] listens on the
//! same port again. The mailin threads (one acceptor, four sessions) outlive the `SmtpServer`,
//! idle on a port nobody knows, until the process exits.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use mailin_embedded::{response, Handler, Response, Server, SslConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::error::Elapsed;

use super::Board;
use pager_notify::settings::{SmtpSettings, SmtpTls};

/// The sender [`SmtpServer::settings`] configures.
pub const TEST_FROM: &str = "pagerd@pagerd.test";

/// One accepted mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The message as received after DATA (headers and body, CRLF line ends, dots unstuffed).
    pub data: Vec<u8>,
    pub received_at: SystemTime,
    /// When the client began the session this mail came in (`HELO`/`EHLO`; pagerd opens one
    /// session per mail), else its `MAIL FROM`.
    pub started_at: SystemTime,
    /// The IP address of the client that sent it (the relay keeps it).
    pub client_ip: Option<IpAddr>,
}

impl ReceivedMail {
    /// The message as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// The first header called `name` (any case), folded lines joined.
    pub fn header(&self, name: &str) -> Option<String> {
        let text = self.text();
        let head = text.split("\r\n\r\n").next().unwrap_or_default();
        let mut found: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(value) = found.as_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                continue;
            }
            if found.is_some() {
                break;
            }
            if let Some((key, value)) = line.split_once(':') {
                if key.trim().eq_ignore_ascii_case(name) {
                    found = Some(value.trim().to_owned());
                }
            }
        }
        found
    }
}

/// The server; see the module documentation.
#[derive(Debug)]
pub struct SmtpServer {
    board: Arc<Board<Mailbox>>,
    /// Where clients connect; kept across stop and restart.
    addr: SocketAddr,
    /// mailin-embedded's own port.
    backend: SocketAddr,
    /// The relay's accept loop while running. It owns the relayed sessions: aborting it closes
    /// the listener and every session. Locked only to put in or take out the handle.
    relay: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug, Default)]
struct Mailbox {
    mails: Vec<ReceivedMail>,
    /// Replies to give to the next DATA commands instead of accepting. (mailin keeps a session
    /// in its data state after an error reply to the final ".", so rejecting there would leave
    /// the client's QUIT unanswered; DATA is the last point where a rejection behaves.)
    replies: VecDeque<(u16, String)>,
}

/// mailin's handler: clones live one per session, so the mail being received is per session.
#[derive(Clone)]
struct Recorder {
    board: Arc<Board<Mailbox>>,
    current: Option<ReceivedMail>,
    /// The session's client, from `MAIL FROM`.
    client_ip: Option<IpAddr>,
    /// When the session's `HELO`/`EHLO`, else the current mail's `MAIL FROM`, arrived.
    started_at: Option<SystemTime>,
}

impl Handler for Recorder {
    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        self.started_at = Some(SystemTime::now());
        response::OK
    }

    fn mail(&mut self, ip: IpAddr, _domain: &str, _from: &str) -> Response {
        self.client_ip = Some(ip);
        self.started_at.get_or_insert_with(SystemTime::now);
        response::OK
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        if let Some((code, message)) = self.board.update(|mailbox| mailbox.replies.pop_front()) {
            return Response::custom(code, message);
        }
        self.current = Some(ReceivedMail {
            from: from.to_owned(),
            to: to.to_vec(),
            data: Vec::new(),
            received_at: SystemTime::now(),
            started_at: self.started_at.unwrap_or_else(SystemTime::now),
            client_ip: self.client_ip,
        });
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some(mail) = self.current.as_mut() {
            mail.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(mut mail) = self.current.take() {
            mail.received_at = SystemTime::now();
            self.board.update(|mailbox| mailbox.mails.push(mail));
        }
        response::OK
    }
}

impl SmtpServer {
    /// Start mailin-embedded and the relay on `127.0.0.1`, each on a port the OS picks. Call
    /// it inside a tokio runtime (the relay is a task of it); outside one it returns an error.
    pub fn start() -> io::Result<SmtpServer> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let board = Arc::new(Board::new(Mailbox::default()));
        let backend_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        let backend = backend_listener.local_addr()?;
        let mut server = Server::new(Recorder {
            board: board.clone(),
            current: None,
            client_ip: None,
            started_at: None,
        });
        server
            .with_name("fake-smtp.pagerd.test")
            .with_ssl(SslConfig::None)
            .map_err(|err| io::Error::other(err.to_string()))?
            .with_num_threads(64)
            .with_tcp_listener(backend_listener);
        std::thread::Builder::new()
            .name("fake-smtp".to_owned())
            .spawn(move || {
                if let Err(err) = server.serve() {
                    tracing::error!(cause = %err, "fake SMTP server stopped");
                }
            })?;
        let front = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        let addr = front.local_addr()?;
        let relay_task = spawn_relay(&runtime, front, backend)?;
        Ok(SmtpServer {
            board,
            addr,
            backend,
            relay: Mutex::new(Some(relay_task)),
        })
    }

    /// Where to connect (the same after [`SmtpServer::restart`]).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Settings that reach this server: plain SMTP, no credentials, `From` [`TEST_FROM`], 5 s.
    pub fn settings(&self) -> SmtpSettings {
        SmtpSettings {
            host: self.addr.ip().to_string(),
            port: self.addr.port(),
            tls: SmtpTls::None,
            username: None,
            password: None,
            from: TEST_FROM.to_owned(),
            timeout: Duration::from_secs(5),
        }
    }

    /// Every mail accepted so far, oldest first.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        self.board.lock().mails.clone()
    }

    /// Wait until at least `n` mails were accepted; returns all of them.
    pub async fn wait_for_mails(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedMail>, Elapsed> {
        self.board
            .wait(timeout, |m| (m.mails.len() >= n).then(|| m.mails.clone()))
            .await
    }

    /// Answer the next `n` DATA commands with `code message` (e.g. 451 or 550) instead of
    /// taking the mail.
    pub fn reject_next(&self, n: usize, code: u16, message: impl Into<String>) {
        let message = message.into();
        self.board.update(|m| {
            m.replies.extend(std::iter::repeat((code, message)).take(n));
        });
    }

    pub fn is_running(&self) -> bool {
        self.relay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Close the port and cut every session in progress. When this returns, connecting fails.
    pub async fn stop(&self) {
        let relay = self
            .relay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(relay) = relay {
            relay.abort();
            // Returns once the task is dropped, i.e. the listener and sessions are closed.
            let _ = relay.await;
        }
    }

    /// Listen again on the same port after [`SmtpServer::stop`]; nothing if running.
    pub async fn restart(&self) -> io::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let runtime = tokio::runtime::Handle::current();
        let front = std::net::TcpListener::bind(self.addr)?;
        let relay_task = spawn_relay(&runtime, front, self.backend)?;
        let mut slot = self.relay.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            // A concurrent restart won; keep its relay.
            Some(_) => relay_task.abort(),
            None => *slot = Some(relay_task),
        }
        Ok(())
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(relay) = self
            .relay
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            relay.abort();
        }
    }
}

/// Run [`relay`] on `runtime` with a listener bound by std (which needs no runtime context).
fn spawn_relay(
    runtime: &tokio::runtime::Handle,
    front: std::net::TcpListener,
    backend: SocketAddr,
) -> io::Result<JoinHandle<()>> {
    front.set_nonblocking(true)?;
    let _context = runtime.enter();
    let front = TcpListener::from_std(front)?;
    Ok(runtime.spawn(relay(front, backend)))
}

/// Connect to `backend` from `ip` (port chosen by the OS), or from wherever the OS picks if
/// that address cannot be bound.
async fn connect_from(ip: IpAddr, backend: SocketAddr) -> io::Result<TcpStream> {
    let socket = match backend {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if socket.bind(SocketAddr::new(ip, 0)).is_err() {
        return TcpStream::connect(backend).await;
    }
    socket.connect(backend).await
}

/// Accept on `front` and pipe each connection to mailin at `backend`, from the client's IP.
async fn relay(front: TcpListener, backend: SocketAddr) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = front.accept() => {
                if let Ok((mut client, peer)) = accepted {
                    sessions.spawn(async move {
                        if let Ok(mut server) = connect_from(peer.ip(), backend).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                }
            }
            Some(_finished) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_found_and_unfolded() {
        let mail = ReceivedMail {
            from: String::new(),
            to: Vec::new(),
            data: b"Subject: a\r\n long one\r\nFrom: x@y\r\n\r\nSubject: body\r\n".to_vec(),
            received_at: SystemTime::now(),
            started_at: SystemTime::now(),
            client_ip: None,
        };
        assert_eq!(mail.header("subject").as_deref(), Some("a long one"));
        assert_eq!(mail.header("FROM").as_deref(), Some("x@y"));
        assert_eq!(mail.header("To"), None);
    }
}
