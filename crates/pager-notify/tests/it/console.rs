//! The console channel, routing between channels, settings checks, masking and `Secret`.

use std::time::Duration;

use pager_fakes::smtp::SmtpServer;
use pager_fakes::twilio::{FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN};
use pager_notify::{
    mask, Method, Notifier, NotifyConfigError, NotifySettings, Secret, SmtpSettings, SmtpTls,
    TwilioSettings,
};

use crate::page;

fn console_only() -> Notifier {
    Notifier::new(NotifySettings {
        twilio: None,
        smtp: None,
        console: true,
    })
    .expect("console only")
}

#[tokio::test]
async fn console_prints_every_method() {
    let notifier = console_only();
    for (id, method, address) in [
        (21, Method::Sms, "+15551234567"),
        (22, Method::Voice, "+15551234567"),
        (23, Method::Email, "alice@example.com"),
    ] {
        let sent = notifier
            .send(&page(id, method, address))
            .await
            .expect("printed");
        assert_eq!(sent.provider_id, format!("console-{id}"));
    }
}

#[tokio::test]
async fn a_method_without_a_channel_is_a_permanent_error() {
    let smtp = SmtpServer::start().expect("smtp");
    let notifier = Notifier::new(NotifySettings {
        twilio: None,
        smtp: Some(smtp.settings()),
        console: false,
    })
    .expect("smtp only");
    assert!(notifier.can_send(Method::Email));
    assert!(!notifier.can_send(Method::Sms));
    let err = notifier
        .send(&page(24, Method::Sms, "+15551234567"))
        .await
        .expect_err("no sms channel");
    assert!(!err.retryable);
    assert!(!err.in_doubt);
    assert_eq!(err.message, "no SMS channel configured");
}

#[tokio::test]
async fn a_missing_provider_falls_back_to_the_console() {
    let twilio = FakeTwilio::start(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN).await;
    let notifier = Notifier::new(NotifySettings {
        twilio: Some(twilio.settings()),
        smtp: None,
        console: true,
    })
    .expect("twilio and console");
    let sent = notifier
        .send(&page(25, Method::Email, "alice@example.com"))
        .await
        .expect("console");
    assert_eq!(sent.provider_id, "console-25");
    let sent = notifier
        .send(&page(26, Method::Sms, "+15551234567"))
        .await
        .expect("twilio");
    assert_eq!(sent.provider_id, twilio.messages()[0].sid);
}

fn twilio_settings() -> TwilioSettings {
    TwilioSettings {
        base_url: TwilioSettings::DEFAULT_BASE_URL.to_owned(),
        account_sid: TEST_ACCOUNT_SID.to_owned(),
        auth_token: Secret::new("token"),
        from: Some("+15005550006".to_owned()),
        messaging_service_sid: None,
        timeout: Duration::from_secs(10),
    }
}

fn with_twilio(settings: TwilioSettings) -> Result<Notifier, NotifyConfigError> {
    Notifier::new(NotifySettings {
        twilio: Some(settings),
        smtp: None,
        console: false,
    })
}

#[test]
fn settings_are_checked() {
    assert!(matches!(
        Notifier::new(NotifySettings::default()),
        Err(NotifyConfigError::NoChannel)
    ));
    assert!(with_twilio(twilio_settings()).is_ok());
    assert!(with_twilio(TwilioSettings {
        base_url: TwilioSettings::regional_base_url("dublin", "ie1"),
        ..twilio_settings()
    })
    .is_ok());
    assert!(matches!(
        with_twilio(TwilioSettings {
            account_sid: "SK00000000000000000000000000000001".into(),
            ..twilio_settings()
        }),
        Err(NotifyConfigError::TwilioAccountSid { .. })
    ));
    assert!(matches!(
        with_twilio(TwilioSettings {
            from: None,
            ..twilio_settings()
        }),
        Err(NotifyConfigError::TwilioNoSender)
    ));
    assert!(matches!(
        with_twilio(TwilioSettings {
            base_url: "http://api.twilio.com".into(),
            ..twilio_settings()
        }),
        Err(NotifyConfigError::TwilioBaseUrl { .. })
    ));
    assert!(matches!(
        with_twilio(TwilioSettings {
            timeout: Duration::ZERO,
            ..twilio_settings()
        }),
        Err(NotifyConfigError::ZeroTimeout { .. })
    ));
    let smtp = SmtpSettings {
        host: "smtp.example.com".into(),
        port: 465,
        tls: SmtpTls::Tls,
        username: Some("pagerd".into()),
        password: Some(Secret::new("pw")),
        from: "Pager <pagerd@example.com>".into(),
        timeout: Duration::from_secs(10),
    };
    let with_smtp = |smtp: SmtpSettings| {
        Notifier::new(NotifySettings {
            twilio: None,
            smtp: Some(smtp),
            console: false,
        })
    };
    assert!(with_smtp(smtp.clone()).is_ok());
    assert!(with_smtp(SmtpSettings {
        tls: SmtpTls::StartTls,
        port: 587,
        ..smtp.clone()
    })
    .is_ok());
    assert!(matches!(
        with_smtp(SmtpSettings {
            from: "pagerd".into(),
            ..smtp.clone()
        }),
        Err(NotifyConfigError::SmtpFrom { .. })
    ));
    assert!(matches!(
        with_smtp(SmtpSettings {
            password: None,
            ..smtp
        }),
        Err(NotifyConfigError::SmtpCredentials)
    ));
}

#[test]
fn masking() {
    assert_eq!(mask::phone("+15551234567"), "+1*******4567");
    assert_eq!(mask::email("alice@example.com"), "a****@example.com");
    assert_eq!(mask::address("+15551234567"), "+1*******4567");
    assert_eq!(mask::address("alice@example.com"), "a****@example.com");
    assert_eq!(
        mask::phone("whatsapp:+15551234567"),
        "whatsapp:+1*******4567"
    );
}

#[test]
fn secrets_stay_redacted() {
    let secret = Secret::new("hunter2");
    assert_eq!(format!("{secret:?}"), "[redacted]");
    assert_eq!(format!("{secret}"), "[redacted]");
    assert_eq!(secret.expose(), "hunter2");

    let settings = TwilioSettings {
        auth_token: Secret::new("hunter2"),
        ..twilio_settings()
    };
    let debug = format!("{settings:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("[redacted]"), "{debug}");

    let parsed: Secret = serde_json::from_str("\"from-config\"").expect("a string");
    assert_eq!(parsed.expose(), "from-config");
    assert!(serde_json::from_str::<Secret>("42").is_err());
}
