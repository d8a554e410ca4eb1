//! Authentication: password hashing, access tokens, and the sealing of
//! identity data at rest, and the one-time secrets of the console.

pub mod passwords;
pub mod seal;
pub mod secret;
pub mod tokens;
