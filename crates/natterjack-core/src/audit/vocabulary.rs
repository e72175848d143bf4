//! The closed vocabularies of an audit record: how a request arrived, how its caller
//! authenticated, what was decided, and the status it was answered with. Each stores as the
//! same text it always has, so old records read back and the chain still verifies.

use std::fmt;

/// How a request reached the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// REST/JSON over HTTPS.
    Rest,
    /// gRPC over mutual TLS.
    Grpc,
    /// The operator's listeners: the admin socket and the metrics endpoint.
    Internal,
    /// The anomaly monitor and the disk-space probe, which record alerts of their own.
    Monitor,
    /// The browser console: HTML forms over HTTPS, under `/console/`.
    Console,
}

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// No credentials were presented (or none reached verification).
    None,
    /// HTTP Basic: a username and password.
    Basic,
    /// A client certificate verified by the TLS layer.
    Mtls,
    /// An OpenID Connect bearer token (on gRPC, the calling service's certificate is named
    /// in the record's reason).
    Bearer,
    /// The operator on the local admin socket.
    LocalOperator,
    /// A browser session of the console (opened by a form login or single sign-on); the
    /// record's reason names the session by the start of its key's hash.
    Session,
}

/// The class of a request's outcome, which the SIEM and the anomaly monitor count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// An intent record: the request has not been answered yet.
    Pending,
    /// The request succeeded.
    Allow,
    /// Refused because of who asked or how often: unauthenticated, forbidden, rate limited.
    Deny,
    /// Refused because of what was asked: malformed, invalid, not found, conflicting.
    Reject,
    /// The server failed.
    Error,
    /// An anomaly the monitor flagged: not a request's outcome.
    Alert,
}

/// The status a request was answered with, told apart by transport: an HTTP status code or a
/// gRPC status code. Both are stored as their number; the record's transport says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// An HTTP status code (REST and the internal HTTP listener).
    Http(u16),
    /// A gRPC status code (0 = OK).
    Grpc(u16),
}

macro_rules! spelled {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, so a published schema can be checked against the whole vocabulary.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The stored spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }

            /// Parses the stored spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($ty::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

spelled!(Transport { Rest => "rest", Grpc => "grpc", Internal => "internal", Monitor => "monitor", Console => "console" });
spelled!(AuthMethod { None => "none", Basic => "basic", Mtls => "mtls", Bearer => "bearer", LocalOperator => "local-operator", Session => "session" });
spelled!(Decision { Pending => "pending", Allow => "allow", Deny => "deny", Reject => "reject", Error => "error", Alert => "alert" });

/// The number, as stored and exported.
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

impl serde::Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.code())
    }
}

impl Status {
    /// The stored number.
    pub fn code(self) -> u16 {
        match self {
            Status::Http(c) | Status::Grpc(c) => c,
        }
    }

    /// Reads a stored number back, in the kind the record's transport answers with.
    pub fn of(transport: Transport, code: u16) -> Self {
        match transport {
            Transport::Grpc => Status::Grpc(code),
            Transport::Rest | Transport::Internal | Transport::Monitor | Transport::Console => {
                Status::Http(code)
            }
        }
    }

    /// The decision class of this status: the one rule both transports follow.
    pub fn decision(self) -> Decision {
        match self {
            Status::Http(401 | 403 | 429) => Decision::Deny,
            Status::Http(400..=499) => Decision::Reject,
            Status::Http(500..=599) => Decision::Error,
            Status::Http(_) => Decision::Allow,
            // OK
            Status::Grpc(0) => Decision::Allow,
            // UNAUTHENTICATED, PERMISSION_DENIED, RESOURCE_EXHAUSTED
            Status::Grpc(16 | 7 | 8) => Decision::Deny,
            // INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, OUT_OF_RANGE
            Status::Grpc(3 | 5 | 6 | 11) => Decision::Reject,
            Status::Grpc(_) => Decision::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_reads_back_as_itself() {
        for t in [
            Transport::Rest,
            Transport::Grpc,
            Transport::Internal,
            Transport::Monitor,
        ] {
            assert_eq!(Transport::parse(t.as_str()), Some(t));
        }
        for m in [
            AuthMethod::None,
            AuthMethod::Basic,
            AuthMethod::Mtls,
            AuthMethod::LocalOperator,
        ] {
            assert_eq!(AuthMethod::parse(m.as_str()), Some(m));
        }
        for d in [
            Decision::Pending,
            Decision::Allow,
            Decision::Deny,
            Decision::Reject,
            Decision::Error,
            Decision::Alert,
        ] {
            assert_eq!(Decision::parse(d.as_str()), Some(d));
        }
        assert_eq!(Transport::parse("carrier-pigeon"), None);
    }

    #[test]
    fn http_and_grpc_statuses_with_the_same_number_are_decided_by_their_own_rules() {
        assert_eq!(Status::Http(200).decision(), Decision::Allow);
        assert_eq!(Status::Http(429).decision(), Decision::Deny);
        assert_eq!(Status::Http(404).decision(), Decision::Reject);
        assert_eq!(Status::Http(503).decision(), Decision::Error);
        assert_eq!(Status::Grpc(0).decision(), Decision::Allow);
        assert_eq!(Status::Grpc(8).decision(), Decision::Deny);
        assert_eq!(Status::Grpc(5).decision(), Decision::Reject);
        assert_eq!(Status::Grpc(13).decision(), Decision::Error);
        assert_eq!(Status::of(Transport::Grpc, 7), Status::Grpc(7));
        assert_eq!(Status::of(Transport::Rest, 7), Status::Http(7));
    }
}
