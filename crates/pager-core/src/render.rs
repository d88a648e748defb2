//! The words of a page, per channel. Pure: the dispatcher sends what this says.

use crate::delivery::Delivery;
use crate::incident::Incident;
use crate::oncall::ContactKind;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageText {
    pub subject: String,
    pub text: String,
}

/// Render the page for `delivery` of `incident`.
pub fn page(incident: &Incident, delivery: &Delivery) -> PageText {
    let sev = incident.severity.as_str().to_uppercase();
    let subject = format!(
        "[pagerd] #{} {} {}: {}",
        incident.id, sev, incident.service, incident.summary
    );
    let runbook = if incident.runbook_url.is_empty() {
        String::new()
    } else {
        format!(" Runbook: {}", incident.runbook_url)
    };
    let text = match delivery.method {
        ContactKind::Sms => format!(
            "{subject}.{runbook} Ack: pagerctl incident ack {}",
            incident.id
        ),
        ContactKind::Voice => format!(
            "pagerd alert. Incident {}. Service {}. Severity {}. {}.",
            incident.id,
            incident.service,
            incident.severity.as_str(),
            incident.summary
        ),
        ContactKind::Email => {
            let mut t = format!(
                "Incident #{id} on service {svc} is {status}.\n\nSummary:  {sum}\nSeverity: {sev}\nUrgency:  {urg}\nSource:   {src}\nDedup key: {key}\n",
                id = incident.id,
                svc = incident.service,
                status = incident.status.as_str(),
                sum = incident.summary,
                sev = incident.severity.as_str(),
                urg = incident.urgency.as_str(),
                src = incident.source,
                key = incident.dedup_key,
            );
            if !incident.runbook_url.is_empty() {
                t.push_str(&format!("Runbook:  {}\n", incident.runbook_url));
            }
            if !incident.custom_details.is_empty() {
                t.push_str("\nDetails:\n");
                for (k, v) in &incident.custom_details {
                    t.push_str(&format!("  {k}: {v}\n"));
                }
            }
            t.push_str(&format!(
                "\nAcknowledge: pagerctl incident ack {}\n",
                incident.id
            ));
            t
        }
    };
    PageText { subject, text }
}
