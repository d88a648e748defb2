//! Integration tests against the fakes on loopback: one binary, one module per channel.

mod console;
mod hooks;
mod inbound;
mod lookup;
mod smtp;
mod spec;
mod twilio;
mod voice;

use std::time::Duration;

use pager_notify::{Method, Page};

/// Long enough for a loaded 2-core CI machine; only reached when a test fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn page(delivery_id: u64, method: Method, address: &str) -> Page {
    Page {
        delivery_id,
        method,
        address: address.to_owned(),
        subject: "[pagerd] db1 disk full".to_owned(),
        text: "db1: /var at 99% & rising. Runbook: https://wiki.example/disk".to_owned(),
        html: None,
        voice: None,
    }
}
