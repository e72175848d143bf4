//! Browser sessions of the console: a random token in a `__Host-` cookie, only its hash in
//! the database ([`token`]), idle and absolute timeouts, and the events that end a session
//! early ([`Sessions`]). Sessions are one more identity provider ([`SessionLogins`]) behind
//! the authentication port, so a console request passes the same pipeline as any other.

mod port;
mod sessions;
mod token;

pub use port::{NewSession, SessionStore, StoredSession};
pub use sessions::{
    ResumeFailure, Resumed, SessionEnd, SessionLogins, SessionSettings, Sessions, TOUCH_EVERY,
};
pub use token::{SessionKey, SessionToken};
