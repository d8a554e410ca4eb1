//! Domain words stored as text, read and written through sqlx's `Any`
//! driver directly, so a row struct can hold the domain type (no mirror
//! struct of strings, no parsing at every call site). A stored value that is
//! not a known word is a decode error: our own data broke, never a client's
//! mistake.

use sqlx::any::AnyTypeInfo;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Any, Database, Decode, Encode, Type};

use crate::domain::account::Role;
use crate::domain::escrow::{MilestoneStatus, ProjectStatus};
use crate::domain::kyc::{KycKind, KycStatus};
use crate::domain::money::Currency;
use crate::domain::payment::{TransactionKind, TransactionStatus};

macro_rules! text_column {
    ($($ty:ty => $as_str:ident),+ $(,)?) => {$(
        impl Type<Any> for $ty {
            fn type_info() -> AnyTypeInfo {
                <str as Type<Any>>::type_info()
            }
        }

        impl<'r> Decode<'r, Any> for $ty {
            fn decode(value: <Any as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&str as Decode<'r, Any>>::decode(value)?;
                text.parse::<$ty>()
                    .map_err(|e| format!("stored {} {text:?} is not valid: {e}", stringify!($ty)).into())
            }
        }

        impl<'q> Encode<'q, Any> for $ty {
            fn encode_by_ref(&self, buf: &mut <Any as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<'q, Any>>::encode(self.$as_str(), buf)
            }
        }
    )+};
}

text_column!(
    TransactionKind => as_str,
    TransactionStatus => as_str,
    ProjectStatus => as_str,
    MilestoneStatus => as_str,
    KycKind => as_str,
    KycStatus => as_str,
    Role => as_str,
    Currency => code,
);
