//! Email through `Notifier` (lettre) into the fake SMTP server (mailin-embedded).

use pager_fakes::smtp::{SmtpServer, TEST_FROM};
use pager_notify::{Method, Notifier, NotifySettings, Page, SendError, Sent, SmtpSettings};

use crate::{page, WAIT};

const TO: &str = "alice@example.com";

fn server() -> SmtpServer {
    SmtpServer::start().expect("start fake smtp")
}

#[test]
fn starting_outside_a_runtime_is_an_error_not_a_panic() {
    assert!(SmtpServer::start().is_err());
}

fn notifier(settings: SmtpSettings) -> Notifier {
    Notifier::new(NotifySettings {
        twilio: None,
        smtp: Some(settings),
        console: false,
    })
    .expect("valid settings")
}

fn email(id: u64) -> Page {
    Page {
        html: Some("<p>db1: <b>/var at 99%</b></p>".to_owned()),
        ..page(id, Method::Email, TO)
    }
}

async fn send(notifier: &Notifier, page: &Page) -> Result<Sent, SendError> {
    notifier.send(page).await
}

#[tokio::test]
async fn email_is_delivered_with_subject_and_both_parts() {
    let smtp = server();
    let page = email(1);
    let sent = send(&notifier(smtp.settings()), &page).await.expect("sent");

    let mails = smtp.wait_for_mails(1, WAIT).await.expect("delivered");
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.from, TEST_FROM);
    assert_eq!(mail.to, [TO]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some(page.subject.as_str())
    );
    assert_eq!(
        mail.header("Message-ID").as_deref(),
        Some(sent.provider_id.as_str())
    );
    assert!(
        sent.provider_id.starts_with("<pagerd.1."),
        "{}",
        sent.provider_id
    );
    assert!(
        sent.provider_id.ends_with("@pagerd.test>"),
        "{}",
        sent.provider_id
    );
    let content_type = mail.header("Content-Type").unwrap_or_default();
    assert!(
        content_type.starts_with("multipart/alternative"),
        "{content_type}"
    );
    let text = mail.text();
    assert!(text.contains("Content-Type: text/plain"), "{text}");
    assert!(text.contains("Content-Type: text/html"), "{text}");
    assert!(text.contains(&page.text), "{text}");
    assert!(text.contains("<p>db1: <b>/var at 99%</b></p>"), "{text}");
}

#[tokio::test]
async fn email_without_html_is_plain_text() {
    let smtp = server();
    let page = page(2, Method::Email, TO);
    send(&notifier(smtp.settings()), &page).await.expect("sent");
    let mail = &smtp.wait_for_mails(1, WAIT).await.expect("delivered")[0];
    let content_type = mail.header("Content-Type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(mail.text().contains(&page.text));
}

#[tokio::test]
async fn every_attempt_gets_its_own_message_id() {
    let smtp = server();
    let notifier = notifier(smtp.settings());
    let first = send(&notifier, &email(3)).await.expect("sent");
    let second = send(&notifier, &email(3)).await.expect("sent");
    assert_ne!(first.provider_id, second.provider_id);
    assert_eq!(smtp.wait_for_mails(2, WAIT).await.expect("both").len(), 2);
}

#[tokio::test]
async fn relay_down_is_retryable_then_recovers_on_the_same_port() {
    let smtp = server();
    let notifier = notifier(smtp.settings());
    let addr = smtp.addr();

    smtp.stop().await;
    assert!(!smtp.is_running());
    let err = send(&notifier, &email(4)).await.expect_err("relay down");
    assert!(err.retryable, "{err}");
    assert!(!err.in_doubt, "connection refused cannot have sent: {err}");

    smtp.restart().await.expect("restart");
    assert_eq!(smtp.addr(), addr);
    send(&notifier, &email(4))
        .await
        .expect("sent after restart");
    assert_eq!(
        smtp.wait_for_mails(1, WAIT).await.expect("delivered").len(),
        1
    );
}

#[tokio::test]
async fn transient_reply_is_retryable_and_permanent_is_not() {
    let smtp = server();
    let notifier = notifier(smtp.settings());

    smtp.reject_next(1, 451, "Try again later");
    let err = send(&notifier, &email(5)).await.expect_err("451");
    assert!(err.retryable && !err.in_doubt, "{err}");
    assert_eq!(err.code, Some(451));

    smtp.reject_next(1, 550, "No such user");
    let err = send(&notifier, &email(5)).await.expect_err("550");
    assert!(!err.retryable, "{err}");
    assert_eq!(err.code, Some(550));

    assert!(smtp.mails().is_empty());
    send(&notifier, &email(5)).await.expect("accepted");
}

#[tokio::test]
async fn bad_recipient_is_permanent_without_a_connection() {
    let smtp = server();
    let err = send(
        &notifier(smtp.settings()),
        &page(6, Method::Email, "not an address"),
    )
    .await
    .expect_err("bad address");
    assert!(!err.retryable);
}

#[tokio::test]
async fn each_mail_records_its_client_address() {
    let smtp = server();
    // Through a relay that dials the server from 127.0.0.9, as a client on that address would.
    let source: std::net::IpAddr = "127.0.0.9".parse().expect("ip");
    let front = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let front_addr = front.local_addr().expect("addr");
    let to = smtp.addr();
    tokio::spawn(async move {
        let (mut client, _) = front.accept().await.expect("accept");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.bind((source, 0).into()).expect("bind the source");
        let mut server = socket.connect(to).await.expect("connect");
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    });
    let settings = SmtpSettings {
        port: front_addr.port(),
        ..smtp.settings()
    };
    send(&notifier(settings), &email(3)).await.expect("sent");
    let mails = smtp.wait_for_mails(1, WAIT).await.expect("delivered");
    assert_eq!(mails[0].client_ip, Some(source));
}
