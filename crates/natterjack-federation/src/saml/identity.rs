//! Who a verified assertion names: the subject (NameID or the configured name attribute),
//! the groups, and whether they make an admin. Read only from the assertion samael returned,
//! which comes from the document reduced to what the IdP's signature covers.

use super::refusal::SamlRefusal;
use natterjack_core::domain::Timestamp;
use samael::schema::Assertion;

/// Longest subject or group name taken: a genuine one is far shorter, and the subject ends up
/// in links, logs and the audit trail.
const MAX_NAME: usize = 256;
/// Most groups taken from one assertion.
const MAX_GROUPS: usize = 256;

/// A user the IdP vouched for in a verified assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlIdentity {
    /// The IdP's entity id (the assertion's `Issuer`).
    pub idp: String,
    /// Who, for good: the single value of `name_attribute` when configured, else the
    /// `NameID`. Local accounts are linked by it.
    pub subject: String,
    /// The assertion's `NameID`, as written.
    pub name_id: String,
    /// The values of `groups_attribute` (empty without it).
    pub groups: Vec<String>,
    /// Whether `admin_group` is among `groups`.
    pub admin: bool,
    /// The assertion's `ID`, for one-time use ([`super::SeenAssertions`]).
    pub assertion_id: String,
    /// Until when the assertion would still be accepted (its latest `NotOnOrAfter` plus the
    /// skew): how long its id must be remembered to refuse a replay.
    pub valid_until: Timestamp,
}

/// Which attributes carry what, from the settings.
#[derive(Debug, Clone, Default)]
pub(crate) struct AttributeMap {
    pub(crate) name: Option<String>,
    pub(crate) groups: Option<String>,
    pub(crate) admin_group: Option<String>,
}

/// Reads the identity out of a verified, checked assertion.
pub(crate) fn read(
    assertion: &Assertion,
    map: &AttributeMap,
    idp: &str,
    valid_until: Timestamp,
) -> Result<SamlIdentity, SamlRefusal> {
    let name_id = assertion
        .subject
        .as_ref()
        .and_then(|s| s.name_id.as_ref())
        .map(|n| n.value.clone())
        .filter(|v| usable(v))
        .ok_or(SamlRefusal::NoSubject)?;
    let subject = match &map.name {
        None => name_id.clone(),
        Some(attribute) => match values(assertion, attribute).as_slice() {
            [one] if usable(one) => (*one).to_owned(),
            _ => return Err(SamlRefusal::NoSubject),
        },
    };
    let groups: Vec<String> = match &map.groups {
        None => Vec::new(),
        Some(attribute) => values(assertion, attribute)
            .into_iter()
            .filter(|g| usable(g))
            .take(MAX_GROUPS)
            .map(str::to_owned)
            .collect(),
    };
    let admin = map
        .admin_group
        .as_ref()
        .is_some_and(|admin| groups.iter().any(|g| g == admin));
    Ok(SamlIdentity {
        idp: idp.to_owned(),
        subject,
        name_id,
        groups,
        admin,
        assertion_id: assertion.id.clone(),
        valid_until,
    })
}

/// Non-empty, not too long, no control characters (a name goes into logs and links).
fn usable(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && !name.chars().any(char::is_control)
}

/// Every value of the attribute named `name` (by `Name`), across all attribute statements.
fn values<'a>(assertion: &'a Assertion, name: &str) -> Vec<&'a str> {
    assertion
        .attribute_statements
        .iter()
        .flatten()
        .flat_map(|s| &s.attributes)
        .filter(|a| a.name.as_deref() == Some(name))
        .flat_map(|a| &a.values)
        .filter_map(|v| v.value.as_deref())
        .collect()
}
