//! Gateway money (deposits and withdrawals): the kinds and statuses of their
//! records, and the rule that decides what a provider's answer does to one.
//!
//! A deposit or withdrawal is recorded `pending` before the provider is
//! called and leaves `pending` exactly once, by compare-and-set, to:
//! - `completed`: the money moved (deposit credited, payout paid);
//! - `failed` (deposit) / `reversed` (withdrawal, reservation returned): the
//!   provider says it definitely did not happen;
//! - `review` (deposit): money arrived, but not as expected (under- or
//!   over-payment, or a provider mispayment flag). Nothing is credited; a
//!   person decides (see the runbook "a payment is stuck").

string_enum!("type", TransactionKind {
    Deposit => "deposit",
    Hold => "hold",
    Release => "release",
    Refund => "refund",
    Withdrawal => "withdrawal",
});

string_enum!(TransactionStatus {
    Pending => "pending",
    Completed => "completed",
    Failed => "failed",
    Reversed => "reversed",
    Review => "review",
});

/// What a provider knows about one operation (a gateway's answer in our
/// vocabulary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Money moved. For a deposit, `received` is what the payer paid (minor
    /// units) and `variance` the provider's mispayment flag, if any.
    Succeeded { received: i64, variance: Option<String> },
    /// Definitely did not happen (and will not).
    Failed { reason: String },
    /// Accepted, not finished (`processing`, `initiated`, `pending`).
    Pending,
    /// The provider has no operation with this reference (yet).
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentKind {
    Deposit,
    Withdrawal,
}

impl PaymentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentKind::Deposit => "deposit",
            PaymentKind::Withdrawal => "withdrawal",
        }
    }

    /// The gateway kind of a transaction kind (`None` for money that stays
    /// inside the platform).
    pub fn of(kind: TransactionKind) -> Option<PaymentKind> {
        match kind {
            TransactionKind::Deposit => Some(PaymentKind::Deposit),
            TransactionKind::Withdrawal => Some(PaymentKind::Withdrawal),
            TransactionKind::Hold | TransactionKind::Release | TransactionKind::Refund => None,
        }
    }

    pub fn transaction_kind(self) -> TransactionKind {
        match self {
            PaymentKind::Deposit => TransactionKind::Deposit,
            PaymentKind::Withdrawal => TransactionKind::Withdrawal,
        }
    }
}

/// What a provider's answer does to a pending record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Leave it pending: ask again later.
    Wait,
    /// Credit the deposit (its recorded amount) / pay out the reservation.
    Complete { received: i64 },
    /// Mark the deposit failed / return the reservation.
    Fail { reason: String },
    /// Hold the deposit for a person: money arrived, not as expected.
    Review { received: i64, reason: String },
}

impl Decision {
    /// The status the record moves to, or `None` to leave it pending.
    pub fn status(&self, kind: PaymentKind) -> Option<TransactionStatus> {
        match (self, kind) {
            (Decision::Wait, _) => None,
            (Decision::Complete { .. }, _) => Some(TransactionStatus::Completed),
            (Decision::Fail { .. }, PaymentKind::Deposit) => Some(TransactionStatus::Failed),
            (Decision::Fail { .. }, PaymentKind::Withdrawal) => Some(TransactionStatus::Reversed),
            (Decision::Review { .. }, _) => Some(TransactionStatus::Review),
        }
    }
}

/// Decides what `settlement` does to a pending record of `kind` for
/// `expected` minor units.
///
/// A deposit is credited only when the provider reports at least the
/// expected amount received and no mispayment (`variance`); an overpayment
/// with no variance flag is credited at the expected amount (the provider
/// settles only that). `NotFound` waits: a provider that has not heard of a
/// reference may still be processing it; reconciliation decides when a
/// record has waited too long.
pub fn decide(kind: PaymentKind, expected: i64, settlement: &Settlement) -> Decision {
    match settlement {
        Settlement::Pending | Settlement::NotFound => Decision::Wait,
        Settlement::Failed { reason } => Decision::Fail { reason: reason.clone() },
        Settlement::Succeeded { received, variance } => match kind {
            PaymentKind::Withdrawal => Decision::Complete { received: expected },
            PaymentKind::Deposit => match variance {
                Some(variance) => Decision::Review {
                    received: *received,
                    reason: format!(
                        "the provider reports a mispayment ({variance}): received {received}, expected {expected}"
                    ),
                },
                None if *received < expected => Decision::Review {
                    received: *received,
                    reason: format!("underpaid: received {received}, expected {expected}"),
                },
                None => Decision::Complete { received: *received },
            },
        },
    }
}

/// Our reference for a gateway operation, derived from the user and their
/// idempotency key: a client retrying after a timeout sends the same key, so
/// the provider sees the same reference and cannot charge or pay twice.
pub fn reference_for(kind: PaymentKind, user_id: &str, idempotency_key: &str) -> String {
    let prefix = match kind {
        PaymentKind::Deposit => "dep",
        PaymentKind::Withdrawal => "wd",
    };
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        format!("{user_id}\n{idempotency_key}").as_bytes(),
    );
    let hex: String = digest.as_ref().iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn succeeded(received: i64, variance: Option<&str>) -> Settlement {
        Settlement::Succeeded {
            received,
            variance: variance.map(str::to_owned),
        }
    }

    #[test]
    fn a_deposit_is_credited_only_when_fully_and_cleanly_paid() {
        use PaymentKind::Deposit;
        assert_eq!(
            decide(Deposit, 1000, &succeeded(1000, None)),
            Decision::Complete { received: 1000 }
        );
        assert_eq!(
            decide(Deposit, 1000, &succeeded(1200, None)),
            Decision::Complete { received: 1200 }
        );
        assert!(matches!(
            decide(Deposit, 1000, &succeeded(10, None)),
            Decision::Review { received: 10, .. }
        ));
        assert!(matches!(
            decide(Deposit, 1000, &succeeded(1000, Some("overpayment"))),
            Decision::Review { .. }
        ));
        assert_eq!(decide(Deposit, 1000, &Settlement::Pending), Decision::Wait);
        assert_eq!(decide(Deposit, 1000, &Settlement::NotFound), Decision::Wait);
        assert_eq!(
            decide(
                Deposit,
                1000,
                &Settlement::Failed {
                    reason: "expired".into()
                }
            )
            .status(Deposit),
            Some(TransactionStatus::Failed)
        );
    }

    #[test]
    fn a_payout_completes_or_is_reversed() {
        use PaymentKind::Withdrawal;
        assert_eq!(
            decide(Withdrawal, 500, &succeeded(0, None)).status(Withdrawal),
            Some(TransactionStatus::Completed)
        );
        assert_eq!(
            decide(Withdrawal, 500, &Settlement::Failed { reason: "x".into() }).status(Withdrawal),
            Some(TransactionStatus::Reversed)
        );
        assert_eq!(decide(Withdrawal, 500, &Settlement::Pending).status(Withdrawal), None);
    }

    #[test]
    fn references_are_stable_per_user_and_key() {
        let a = reference_for(PaymentKind::Deposit, "u1", "k1");
        assert_eq!(a, reference_for(PaymentKind::Deposit, "u1", "k1"));
        assert_ne!(a, reference_for(PaymentKind::Deposit, "u2", "k1"));
        assert!(a.starts_with("dep_") && a.len() == 28);
        assert!(reference_for(PaymentKind::Withdrawal, "u1", "k1").starts_with("wd_"));
    }
}
