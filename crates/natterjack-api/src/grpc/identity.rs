//! Who a client certificate names.
//!
//! The principal is the SAN URI `natterjack:user:NAME` (what `natterjack certs issue-client`
//! writes). A certificate without such a URI falls back to its subject common name, so
//! certificates from an existing PKI work when their CN is the username. More than one
//! `natterjack:user:` URI is ambiguous and refused.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The URI scheme prefix that names a user.
pub const USER_URI_PREFIX: &str = "natterjack:user:";

/// The username a (chain-verified) client certificate names, or why it names none.
pub fn principal_name(cert_der: &[u8]) -> Result<String, &'static str> {
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(|_| "unreadable certificate")?;
    let mut named = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name
                && let Some(user) = uri.strip_prefix(USER_URI_PREFIX)
            {
                named.push(user.to_owned());
            }
        }
    }
    match named.len() {
        1 => return Ok(named.remove(0)),
        0 => {}
        _ => return Err("the certificate names more than one user"),
    }
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .ok_or("the certificate names no user")
}
