//! The sandbox gateway: no network, deterministic, the embedded default
//! outside production (refused in production: it would credit money that
//! does not exist).
//!
//! It keeps a book of what it "executed", so verify and fetch answer like a
//! real provider and reconciliation works against it. Knobs let tests and
//! developers drive every path (`SANDBOX_OUTCOME`, `SANDBOX_DELAY_MS`):
//!
//! | outcome | checkout / payout answers | the book says |
//! |---|---|---|
//! | `succeed` (default) | settled at once | succeeded |
//! | `pending` | pending | pending (nothing ever settles it: a stuck payment) |
//! | `fail` | refused (`Rejected`) | nothing |
//! | `timeout_after_execute` | no definite answer (`Unavailable`) | succeeded |
//! | `mispay` | a deposit settled at half the amount, flagged `underpayment` | the same |
//!
//! Account resolution follows FinCra's documented test accounts (the fact
//! sheet, section 7); any other well-formed account resolves to the holder
//! name given, so local development can register its own.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{
    AccountQuery, BoxFuture, CheckoutRequest, CheckoutStarted, GatewayError, PaymentGateway, PayoutRequest, Settlement,
};
pub use crate::config::{SandboxConfig, SandboxOutcome};
use crate::domain::money::Currency;

/// FinCra's documented sandbox accounts: (number, bank or operator code,
/// holder name, resolves).
const TEST_ACCOUNTS: [(&str, &str, &str, bool); 7] = [
    ("0987654321", "305", "Grace Okoro", true),
    ("2345678901", "058", "Chinwe Eze", true),
    ("0123456789", "044", "John Doe", false),
    ("233541234567", "AIRTEL", "", true),
    ("233201234567", "MTN", "", false),
    ("254731234567", "AIRTEL", "", true),
    ("254712345678", "SAFARICOM", "", false),
];

pub struct Sandbox {
    config: SandboxConfig,
    /// What this sandbox executed, by reference.
    book: Mutex<HashMap<String, Settlement>>,
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Sandbox {
        Sandbox {
            config,
            book: Mutex::new(HashMap::new()),
        }
    }

    async fn pause(&self) {
        if !self.config.delay.is_zero() {
            tokio::time::sleep(self.config.delay).await;
        }
    }

    fn write(&self, reference: &str, settlement: Settlement) {
        if let Ok(mut book) = self.book.lock() {
            book.insert(reference.to_owned(), settlement);
        }
    }

    fn read(&self, reference: &str) -> Settlement {
        self.book
            .lock()
            .ok()
            .and_then(|book| book.get(reference).cloned())
            .unwrap_or(Settlement::NotFound)
    }

    /// Executes an operation of `amount` per the configured outcome and
    /// says what the caller is told.
    fn execute(&self, reference: &str, amount: i64, is_deposit: bool) -> Result<Settlement, GatewayError> {
        let paid = Settlement::Succeeded {
            received: amount,
            variance: None,
        };
        match self.config.outcome {
            SandboxOutcome::Succeed => {
                self.write(reference, paid.clone());
                Ok(paid)
            }
            SandboxOutcome::Pending => {
                self.write(reference, Settlement::Pending);
                Ok(Settlement::Pending)
            }
            SandboxOutcome::Fail => Err(GatewayError::Rejected(
                "the sandbox refuses (SANDBOX_OUTCOME=fail)".into(),
            )),
            SandboxOutcome::TimeoutAfterExecute => {
                self.write(reference, paid);
                Err(GatewayError::Unavailable(
                    "the sandbox executed, then timed out (SANDBOX_OUTCOME=timeout_after_execute)".into(),
                ))
            }
            SandboxOutcome::Mispay if is_deposit => {
                let mispaid = Settlement::Succeeded {
                    received: amount / 2,
                    variance: Some("underpayment".into()),
                };
                self.write(reference, mispaid.clone());
                Ok(mispaid)
            }
            SandboxOutcome::Mispay => {
                self.write(reference, paid.clone());
                Ok(paid)
            }
        }
    }
}

impl PaymentGateway for Sandbox {
    fn name(&self) -> &'static str {
        crate::config::GatewayKind::Sandbox.name()
    }

    fn checkout<'a>(&'a self, request: CheckoutRequest<'a>) -> BoxFuture<'a, Result<CheckoutStarted, GatewayError>> {
        Box::pin(async move {
            self.pause().await;
            let settlement = self.execute(request.reference, request.amount, true)?;
            Ok(CheckoutStarted {
                checkout_url: Some(format!("sandbox://checkout/{}", request.reference)),
                settlement,
            })
        })
    }

    fn payout<'a>(&'a self, request: PayoutRequest<'a>) -> BoxFuture<'a, Result<Settlement, GatewayError>> {
        Box::pin(async move {
            self.pause().await;
            if let Some((_, _, _, false)) = TEST_ACCOUNTS
                .iter()
                .find(|(number, ..)| *number == request.beneficiary.account_number)
            {
                return Err(GatewayError::Rejected("the beneficiary account is invalid".into()));
            }
            self.execute(request.reference, request.amount, false)
        })
    }

    fn verify_checkout<'a>(
        &'a self,
        reference: &'a str,
        _: Currency,
    ) -> BoxFuture<'a, Result<Settlement, GatewayError>> {
        Box::pin(async move {
            self.pause().await;
            Ok(self.read(reference))
        })
    }

    fn fetch_payout<'a>(&'a self, reference: &'a str, _: Currency) -> BoxFuture<'a, Result<Settlement, GatewayError>> {
        Box::pin(async move {
            self.pause().await;
            Ok(self.read(reference))
        })
    }

    fn resolve_account<'a>(&'a self, query: AccountQuery<'a>) -> BoxFuture<'a, Result<String, GatewayError>> {
        Box::pin(async move {
            self.pause().await;
            match TEST_ACCOUNTS
                .iter()
                .find(|(number, code, ..)| *number == query.account_number && *code == query.institution_code)
            {
                Some((_, _, _, false)) => Err(GatewayError::Rejected("account could not be resolved".into())),
                Some((_, _, name, true)) if !name.is_empty() => Ok((*name).to_owned()),
                _ => Ok(query.holder_name.to_owned()),
            }
        })
    }
}
