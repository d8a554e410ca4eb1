//! Authentication: password hashing, access tokens, and the sealing of
//! identity data at rest.

pub mod passwords;
pub mod seal;
pub mod tokens;
