//! The business rules, free of HTTP and SQL: money, accounts, the ledger,
//! the escrow and KYC state machines.

/// A closed set of words stored and sent as text (`snake_case`), with
/// `as_str` and a `FromStr` that names the field when it refuses.
macro_rules! string_enum {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $crate::domain::string_enum!("status", $name { $($variant => $text),+ });
    };
    ($field:literal, $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order.
            #[allow(dead_code)]
            pub const ALL: &[$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::DomainError;
            fn from_str(s: &str) -> Result<$name, $crate::domain::DomainError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::domain::DomainError::invalid($field, format!("unknown {} {s:?}", stringify!($name)))),
                }
            }
        }
    };
}
pub(crate) use string_enum;

pub mod account;
pub mod escrow;
pub mod event;
pub mod job;
pub mod kyc;
pub mod money;
pub mod payment;
pub mod payout;

/// A rule the request broke. The HTTP layer maps `Invalid` to 422 and
/// `Conflict` (a state that does not allow the action) to 409.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("{field} {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{0}")]
    Conflict(String),
}

impl DomainError {
    pub fn invalid(field: &'static str, reason: impl Into<String>) -> DomainError {
        DomainError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub fn conflict(reason: impl Into<String>) -> DomainError {
        DomainError::Conflict(reason.into())
    }
}
