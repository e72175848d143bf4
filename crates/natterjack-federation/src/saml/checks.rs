//! The checks this SP makes on top of samael's, on the envelope (refusals only) and on the
//! assertion samael returned after verifying the signature. They run against the `now` the
//! caller passes (the process's clock port), where samael reads the wall clock itself.
//!
//! Stricter than samael in these points: a `Destination`, a success `Status`, `Conditions`
//! with an audience restriction, and an assertion `Issuer` are required (samael checks each
//! only when present); every `AudienceRestriction` must name this SP (samael accepts any
//! one); the assertion must be the one element named `Assertion` in the raw document.

use super::refusal::SamlRefusal;
use super::shape::Shape;
use chrono::{DateTime, Utc};
use natterjack_core::domain::Timestamp;
use samael::schema::Assertion;

const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// What the checks compare against.
#[derive(Debug, Clone)]
pub(crate) struct Expected<'a> {
    pub(crate) acs_url: &'a str,
    pub(crate) entity_id: &'a str,
    pub(crate) idp: &'a str,
    pub(crate) request_id: &'a str,
    pub(crate) now: Timestamp,
    /// Allowed clock difference, in microseconds.
    pub(crate) skew: i64,
    /// How long after its `IssueInstant` an assertion is still taken, in microseconds.
    pub(crate) max_age: i64,
}

/// The envelope of the raw response: where it was sent, what it answers, its status.
pub(crate) fn envelope(shape: &Shape, expected: &Expected<'_>) -> Result<(), SamlRefusal> {
    if expected.request_id.is_empty() {
        return Err(SamlRefusal::Unsolicited);
    }
    match shape.in_response_to.as_deref() {
        None | Some("") => return Err(SamlRefusal::Unsolicited),
        Some(id) if id != expected.request_id => return Err(SamlRefusal::InResponseTo),
        Some(_) => {}
    }
    if shape.destination.as_deref() != Some(expected.acs_url) {
        return Err(SamlRefusal::Destination);
    }
    if shape.status.as_deref() != Some(STATUS_SUCCESS) {
        return Err(SamlRefusal::Status);
    }
    if !shape.signed {
        return Err(SamlRefusal::Unsigned);
    }
    Ok(())
}

fn micros(t: &DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The verified assertion; returns until when it would be accepted (for replay memory).
pub(crate) fn assertion(
    assertion: &Assertion,
    shape: &Shape,
    expected: &Expected<'_>,
) -> Result<Timestamp, SamlRefusal> {
    // The reduced document's assertion is the raw document's only one.
    if shape.assertion_id.as_deref() != Some(assertion.id.as_str()) {
        return Err(SamlRefusal::AssertionCount);
    }
    if assertion.issuer.value.as_deref() != Some(expected.idp) {
        return Err(SamlRefusal::Issuer);
    }
    let now = expected.now.micros();
    let issued = micros(&assertion.issue_instant);
    if issued > now.saturating_add(expected.skew) {
        return Err(SamlRefusal::NotYetValid);
    }
    if now.saturating_sub(expected.skew) > issued.saturating_add(expected.max_age) {
        return Err(SamlRefusal::Expired);
    }
    let conditions = assertion.conditions.as_ref().ok_or(SamlRefusal::Audience)?;
    within(
        conditions.not_before.as_ref(),
        conditions.not_on_or_after.as_ref(),
        now,
        expected.skew,
    )?;
    let restrictions = conditions
        .audience_restrictions
        .as_deref()
        .filter(|r| !r.is_empty())
        .ok_or(SamlRefusal::Audience)?;
    if !restrictions
        .iter()
        .all(|r| r.audience.iter().any(|a| a == expected.entity_id))
    {
        return Err(SamlRefusal::Audience);
    }
    let confirmation_until = bearer(assertion, expected)?;
    let until = conditions
        .not_on_or_after
        .as_ref()
        .map(micros)
        .unwrap_or(i64::MIN)
        .max(confirmation_until)
        .saturating_add(expected.skew);
    Ok(Timestamp::from_micros(until))
}

/// `NotBefore` and `NotOnOrAfter`, each widened by the skew.
fn within(
    not_before: Option<&DateTime<Utc>>,
    not_on_or_after: Option<&DateTime<Utc>>,
    now: i64,
    skew: i64,
) -> Result<(), SamlRefusal> {
    if let Some(nb) = not_before
        && now.saturating_add(skew) < micros(nb)
    {
        return Err(SamlRefusal::NotYetValid);
    }
    if let Some(noa) = not_on_or_after
        && now.saturating_sub(skew) >= micros(noa)
    {
        return Err(SamlRefusal::Expired);
    }
    Ok(())
}

/// A bearer subject confirmation for this ACS, answering this request, still valid;
/// returns its `NotOnOrAfter`. The first failure explains a refusal.
fn bearer(assertion: &Assertion, expected: &Expected<'_>) -> Result<i64, SamlRefusal> {
    let now = expected.now.micros();
    let mut refusal = SamlRefusal::SubjectConfirmation;
    let confirmations = assertion
        .subject
        .as_ref()
        .and_then(|s| s.subject_confirmations.as_deref())
        .unwrap_or_default();
    for confirmation in confirmations {
        if confirmation.method.as_deref() != Some(BEARER) {
            continue;
        }
        let Some(data) = &confirmation.subject_confirmation_data else {
            continue;
        };
        let Some(noa) = &data.not_on_or_after else {
            continue;
        };
        let failure = if data.recipient.as_deref() != Some(expected.acs_url) {
            Some(SamlRefusal::Recipient)
        } else if data.in_response_to.as_deref() != Some(expected.request_id) {
            Some(SamlRefusal::InResponseTo)
        } else {
            within(data.not_before.as_ref(), Some(noa), now, expected.skew).err()
        };
        match failure {
            None => return Ok(micros(noa)),
            Some(f) if refusal == SamlRefusal::SubjectConfirmation => refusal = f,
            Some(_) => {}
        }
    }
    Err(refusal)
}
