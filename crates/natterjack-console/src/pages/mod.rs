//! The pages: each handler runs after the adapter admitted the request, reads what the
//! pipeline put in its extensions (the caller, the space capability, the form, the
//! session) and calls the one service layer.

pub(crate) mod admin;
pub(crate) mod login;
pub(crate) mod members;
pub(crate) mod render;
pub(crate) mod sign_on;
pub(crate) mod space;
pub(crate) mod spaces;
