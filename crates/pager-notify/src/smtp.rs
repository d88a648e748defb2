//! Email through an SMTP relay with lettre: one connection per page (no pool, so a relay that
//! went down and came back is simply reconnected), bounded by one timeout.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::error::{NotifyConfigError, SendError};
use crate::settings::{SmtpSettings, SmtpTls};
use crate::{error_chain, mask, random_hex, Page, Sent};

#[derive(Debug)]
pub(crate) struct SmtpClient {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Right-hand side of our Message-IDs: the sender's domain.
    id_domain: String,
    timeout: Duration,
}

impl SmtpClient {
    pub(crate) fn new(settings: &SmtpSettings) -> Result<SmtpClient, NotifyConfigError> {
        if settings.host.trim().is_empty() {
            return Err(NotifyConfigError::SmtpHost);
        }
        if settings.timeout.is_zero() {
            return Err(NotifyConfigError::ZeroTimeout { what: "smtp" });
        }
        let from: Mailbox =
            settings
                .from
                .parse()
                .map_err(|source| NotifyConfigError::SmtpFrom {
                    from: settings.from.clone(),
                    source,
                })?;
        let tls_error = |source| NotifyConfigError::SmtpTls {
            host: settings.host.clone(),
            source,
        };
        let tls = match settings.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls => {
                Tls::Required(TlsParameters::new(settings.host.clone()).map_err(tls_error)?)
            }
            SmtpTls::Tls => {
                Tls::Wrapper(TlsParameters::new(settings.host.clone()).map_err(tls_error)?)
            }
        };
        let mut builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.as_str())
                .port(settings.port)
                .tls(tls)
                .timeout(Some(settings.timeout));
        match (&settings.username, &settings.password) {
            (Some(user), Some(password)) => {
                builder = builder
                    .credentials(Credentials::new(user.clone(), password.expose().to_owned()));
            }
            (None, None) => {}
            _ => return Err(NotifyConfigError::SmtpCredentials),
        }
        let id_domain = from.email.domain().to_owned();
        Ok(SmtpClient {
            transport: builder.build(),
            from,
            id_domain,
            timeout: settings.timeout,
        })
    }

    /// Send one email and return its Message-ID. Not idempotent: each attempt gets a new
    /// Message-ID, so a retry after an in-doubt error may deliver the page twice.
    pub(crate) async fn send(&self, page: &Page) -> Result<Sent, SendError> {
        let to: Mailbox = page.address.parse().map_err(|err| {
            SendError::permanent(format!(
                "{} is not an email address: {err}",
                mask::email(&page.address)
            ))
        })?;
        // Unique per attempt, never per delivery: receivers drop mail whose Message-ID they have
        // seen, and a reused delivery id (a rebuilt cluster) must not silence a new page.
        let message_id = format!(
            "<pagerd.{}.{}@{}>",
            page.delivery_id,
            random_hex(24),
            self.id_domain
        );
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(page.subject.as_str())
            .message_id(Some(message_id.clone()));
        let built = match &page.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                page.text.clone(),
                html.clone(),
            )),
            None => builder.singlepart(SinglePart::plain(page.text.clone())),
        };
        let message =
            built.map_err(|err| SendError::permanent(format!("build the email: {err}")))?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_response)) => Ok(Sent {
                provider_id: message_id,
            }),
            Ok(Err(err)) => Err(classify(&err)),
            Err(_elapsed) => Err(SendError::in_doubt(format!(
                "the SMTP relay did not finish within {:?}: the mail may have been accepted",
                self.timeout
            ))),
        }
    }
}

fn classify(err: &lettre::transport::smtp::Error) -> SendError {
    let code = err.status().map(|code| i64::from(u16::from(code)));
    let message = format!("smtp: {}", error_chain(err));
    let mut out = if err.is_permanent() || err.is_client() || err.is_tls() {
        // 5xx reply, a message the relay cannot take (e.g. 8-bit without 8BITMIME), TLS setup.
        SendError::permanent(message)
    } else if err.is_transient() || never_connected(err) {
        // A 4xx reply, or no session at all: certainly not accepted.
        SendError::retryable(message)
    } else {
        // The connection broke or timed out mid-session, perhaps after the final ".".
        SendError::in_doubt(message)
    };
    out.code = code;
    out
}

/// lettre's connect and TLS-handshake failures are its `Kind::Connection`, which it does not
/// expose; its `Debug` does. Should that change, the error counts as in doubt, the safe side.
fn never_connected(err: &lettre::transport::smtp::Error) -> bool {
    if format!("{err:?}").starts_with("lettre::transport::smtp::Error { kind: Connection") {
        return true;
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        source = cause.source();
    }
    false
}
