//! Why a SAML response was refused: one variant per check, each with a short fixed reason for
//! the audit trail. The reason never quotes the response, so an attacker's text (or a user's
//! assertion) never reaches the logs through it.

/// A refused SAML response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.reason())]
pub enum SamlRefusal {
    /// Larger than any genuine response; refused before decoding.
    TooLarge,
    /// Not base64, not UTF-8, not well-formed XML, or not a SAML `Response`.
    Malformed,
    /// A document type declaration: SAML has none, and entities are an attack surface.
    Doctype,
    /// A comment, CDATA section or processing instruction: canonicalisation drops or rewrites
    /// them, so the signature would still verify while a reader could see another value.
    Markup,
    /// Not exactly one `Assertion` in the whole document (signature wrapping).
    AssertionCount,
    /// An `EncryptedAssertion`: this SP publishes no encryption key.
    Encrypted,
    /// Neither the response nor the assertion carries a signature.
    Unsigned,
    /// A signature that does not verify with the IdP's certificate, or that does not cover
    /// the assertion.
    Signature,
    /// The response's `Destination` is not this SP's ACS URL.
    Destination,
    /// The bearer confirmation's `Recipient` is not this SP's ACS URL.
    Recipient,
    /// The assertion's `Audience` is not this SP's entity id.
    Audience,
    /// Past `NotOnOrAfter` (with the allowed skew), or issued too long ago.
    Expired,
    /// Before `NotBefore` (with the allowed skew).
    NotYetValid,
    /// No `InResponseTo`: a response this SP did not ask for (IdP-initiated).
    Unsolicited,
    /// `InResponseTo` names another request than the one pending for this browser.
    InResponseTo,
    /// The response or the assertion was issued by another entity than the IdP.
    Issuer,
    /// A status other than success.
    Status,
    /// No usable bearer subject confirmation.
    SubjectConfirmation,
    /// No `NameID` (or no single value of the name attribute) to name the user by.
    NoSubject,
    /// This assertion was used already.
    Replayed,
}

impl SamlRefusal {
    /// The fixed reason, for the audit trail and the log.
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooLarge => "SAML response too large",
            Self::Malformed => "SAML response malformed",
            Self::Doctype => "SAML response has a document type declaration",
            Self::Markup => "SAML response has a comment, CDATA or processing instruction",
            Self::AssertionCount => "SAML response does not hold exactly one assertion",
            Self::Encrypted => "SAML assertion encrypted",
            Self::Unsigned => "SAML response not signed",
            Self::Signature => "SAML signature not valid for the IdP certificate",
            Self::Destination => "SAML response destination is not this ACS",
            Self::Recipient => "SAML assertion recipient is not this ACS",
            Self::Audience => "SAML assertion audience is not this SP",
            Self::Expired => "SAML assertion expired",
            Self::NotYetValid => "SAML assertion not yet valid",
            Self::Unsolicited => "SAML response not solicited",
            Self::InResponseTo => "SAML response answers another request",
            Self::Issuer => "SAML issuer is not the IdP",
            Self::Status => "SAML response status is not success",
            Self::SubjectConfirmation => "SAML assertion has no usable bearer confirmation",
            Self::NoSubject => "SAML assertion names no subject",
            Self::Replayed => "SAML assertion replayed",
        }
    }
}
