//! Authentication: password hashing, access/refresh tokens, revocation, and the request
//! extractors. The token check in [`Auth::verify_access`] is the one used by REST and by
//! both socket doors.

pub mod extract;
pub mod password;
pub mod revocation;
pub mod tokens;

pub use extract::{AuthUser, MaybeAuthUser};
pub use revocation::Revocations;
pub use tokens::{AccessClaims, Auth, AuthFailure};
