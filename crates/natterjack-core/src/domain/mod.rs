//! Parse-don't-validate newtypes for every value that crosses the API boundary.
//!
//! Each type has a private field and a `parse` constructor, so holding one is proof that the
//! allow list was applied. Parse errors name the field so that transports can report it.

mod field_error;
mod ids;
mod limit;
mod message_text;
mod password;
mod permissions;
mod space_name;
mod text;
mod timestamp;
mod username;

pub use field_error::FieldError;
pub use ids::{MessageId, SpaceId, UserId};
pub use limit::Limit;
pub use message_text::MessageText;
pub use password::{MAX_PASSWORD_BYTES, MIN_PASSWORD_BYTES, NewPassword};
pub use permissions::Permissions;
pub use space_name::SpaceName;
pub use timestamp::Timestamp;
pub use username::Username;
