//! Money that crosses to a payment provider: deposits (a hosted checkout)
//! and withdrawals (a payout to a registered destination), in three steps:
//!
//! 1. A short transaction claims the idempotency key, records the operation
//!    `pending` (for a payout, reserving its amount: available → reserved)
//!    and commits.
//! 2. The provider is called with no transaction open and no pooled
//!    connection held, so a slow provider slows only this request.
//! 3. A second short transaction applies the answer by compare-and-set from
//!    `pending` ([`Payments::apply`]).
//!
//! A timeout, a 5xx or any ambiguous answer leaves the record `pending`:
//! never rolled back (the provider may have acted), never sent again blind.
//! The provider's webhook ([`Payments::handle_webhook`]) and reconciliation
//! (`super::reconcile`) settle it later from the provider's own answer to a
//! lookup, through the same [`Payments::apply`], so each record settles
//! exactly once whichever path gets there first.
//!
//! The reference the provider sees is derived from the user and their
//! `Idempotency-Key`, so a client's retry reaches the provider with the
//! same reference (FinCra deduplicates payouts on it), and a replay of the
//! key returns the record as it is now — pending, completed or refused.

use std::sync::Arc;

use serde_json::json;

use crate::alerts::{Alert, Dispatcher, Severity};
use crate::config::ReconcileConfig;
use crate::domain::DomainError;
use crate::domain::event::EventType;
use crate::domain::money::{MAX_BALANCE, Money};
use crate::domain::payment::{Decision, PaymentKind, Settlement, TransactionStatus, decide, reference_for};
use crate::domain::payout::DestinationKind;
use crate::gateway::{Beneficiary, CheckoutRequest, GatewayError, PaymentGateway, PayoutRequest, observed};
use crate::operations::OperationError;
use crate::store::audit::AuditEvent;
use crate::store::escrow::{self as records, EscrowTransaction, NewTransaction};
use crate::store::idempotency::{self, Used};
use crate::store::ledger::{self, Account, Transfer};
use crate::store::users::User;
use crate::store::{Database, StoreError, destinations, kyc, webhooks};
use crate::telemetry::metrics::{EscrowLabels, KindLabels, Metrics, WebhookLabels};

/// What the payment operations need, and nothing else.
pub struct Payments {
    pub db: Arc<Database>,
    pub gateway: Arc<dyn PaymentGateway>,
    pub metrics: Arc<Metrics>,
    pub alerts: Arc<Dispatcher>,
    /// For alert dedup keys (`amani/{environment}/…`).
    pub environment: &'static str,
    pub reconcile: ReconcileConfig,
}

/// A client's `Idempotency-Key` and the fingerprint of the request it came
/// with (computed by the HTTP layer from the route and the body).
pub struct Keyed<'a> {
    pub key: &'a str,
    pub request_hash: &'a str,
}

/// A deposit or withdrawal as it stands after a request.
#[derive(Debug, Clone)]
pub struct PaymentAnswer {
    pub transaction: EscrowTransaction,
    /// True when the key had been used before and this is its record now.
    pub replayed: bool,
}

/// What a webhook did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Looked up at the provider and applied (or found settled already).
    Processed,
    /// This event for this reference was processed before.
    Duplicate,
    UnknownReference,
    /// A payout event for a deposit, or the reverse: ignored.
    KindMismatch,
    /// The provider could not be asked now, or has not finished:
    /// reconciliation (or a later delivery) will settle it.
    Deferred,
}

impl WebhookOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookOutcome::Processed => "processed",
            WebhookOutcome::Duplicate => "duplicate",
            WebhookOutcome::UnknownReference => "unknown_reference",
            WebhookOutcome::KindMismatch => "kind_mismatch",
            WebhookOutcome::Deferred => "deferred",
        }
    }
}

/// What applying a provider's answer did.
#[derive(Debug, Clone)]
pub enum Applied {
    /// Moved out of `pending` now.
    Settled(EscrowTransaction),
    /// Still pending (the provider has not finished).
    Waiting(EscrowTransaction),
    /// Was settled before (by another path): nothing changed.
    AlreadySettled(EscrowTransaction),
}

impl Applied {
    pub fn record(&self) -> &EscrowTransaction {
        match self {
            Applied::Settled(r) | Applied::Waiting(r) | Applied::AlreadySettled(r) => r,
        }
    }
}

fn mismatch() -> OperationError {
    OperationError::Domain(DomainError::invalid(
        "Idempotency-Key",
        "was already used with a different request; use a new key",
    ))
}

/// An invariant of our own records broke (not the client's doing): a 500.
fn broken(what: String) -> OperationError {
    OperationError::Store(StoreError::Missing(what))
}

fn kind_of(record: &EscrowTransaction) -> Result<PaymentKind, OperationError> {
    PaymentKind::of(record.kind).ok_or_else(|| {
        broken(format!(
            "transaction {} is a {}, not a gateway operation",
            record.id, record.kind
        ))
    })
}

impl Payments {
    async fn load(&self, reference: &str) -> Result<EscrowTransaction, OperationError> {
        let mut conn = self.db.acquire().await?;
        records::find(&mut conn, reference)
            .await?
            .ok_or_else(|| broken(format!("transaction {reference} vanished after it was written")))
    }

    /// The pending record of a gateway operation (what step 1 writes).
    fn pending_record<'a>(
        &self,
        kind: PaymentKind,
        reference: &'a str,
        user: &'a User,
        money: Money,
        destination_id: Option<&'a str>,
    ) -> NewTransaction<'a> {
        NewTransaction {
            id: reference,
            kind: kind.transaction_kind(),
            status: TransactionStatus::Pending,
            user_id: &user.id,
            counterparty_id: None,
            project_id: None,
            milestone_id: None,
            amount: money.minor,
            fee: 0,
            currency: money.currency,
            provider: Some(self.gateway.name()),
            notes: None,
            destination_id,
        }
    }

    /// Step 1, shared: claims the key and records the pending operation with
    /// `extra` (the payout's checks and reservation) in one transaction.
    /// `Ok(None)`: the key was used before; its record is the answer.
    async fn record_pending(
        &self,
        user: &User,
        keyed: &Keyed<'_>,
        new: NewTransaction<'_>,
        extra: impl AsyncFnOnce(&mut crate::store::Tx) -> Result<(), OperationError>,
    ) -> Result<Option<()>, OperationError> {
        let mut tx = self.db.begin().await?;
        match idempotency::claim(&mut tx, &user.id, keyed.key, keyed.request_hash).await? {
            Some(Used::Mismatch) => return Err(mismatch()),
            Some(Used::Replay { .. }) => return Ok(None),
            None => {}
        }
        let (kind, id, amount, currency) = (new.kind, new.id.to_owned(), new.amount, new.currency.to_owned());
        records::insert(&mut tx, new).await?;
        extra(&mut tx).await?;
        tx.audit(AuditEvent {
            actor_id: Some(&user.id),
            action: &format!("wallet.{kind}.requested"),
            target_type: "escrow_transaction",
            target_id: Some(&id),
            request_id: crate::telemetry::request_id::current_string().as_deref(),
            details: json!({ "amount": amount, "currency": currency, "provider": self.gateway.name() }),
        });
        tx.commit().await?;
        Ok(Some(()))
    }

    /// Starts a deposit: a pending record, then a checkout at the provider.
    /// Credited when the provider confirms the money arrived in full (at
    /// once with the sandbox; by webhook or reconciliation with FinCra).
    #[tracing::instrument(name = "wallet.deposit", skip_all, fields(user_id = %user.id, amount = money.minor, currency = %money.currency))]
    pub async fn deposit(&self, user: &User, money: Money, keyed: &Keyed<'_>) -> Result<PaymentAnswer, OperationError> {
        let reference = reference_for(PaymentKind::Deposit, &user.id, keyed.key);
        let new = self.pending_record(PaymentKind::Deposit, &reference, user, money, None);
        let headroom = async |tx: &mut crate::store::Tx| -> Result<(), OperationError> {
            let balance = ledger::balance(tx, &Account::available(&user.id, money.currency)).await?;
            if balance > MAX_BALANCE - money.minor {
                return Err(OperationError::Invalid(format!(
                    "amount would take your {} balance past its limit of {MAX_BALANCE} minor units",
                    money.currency
                )));
            }
            Ok(())
        };
        if self.record_pending(user, keyed, new, headroom).await?.is_none() {
            return self.replay(&reference).await;
        }
        // Step 2: no transaction open, no connection held.
        let call = self.gateway.checkout(CheckoutRequest {
            reference: &reference,
            amount: money.minor,
            currency: money.currency,
            customer_name: &user.full_name,
            customer_email: &user.email,
        });
        let answer = observed(&self.metrics, self.gateway.name(), "checkout", call).await;
        // Step 3.
        let (settlement, checkout_url) = match answer {
            Ok(started) => (started.settlement, started.checkout_url),
            Err(err) => (settlement_of_error(err), None),
        };
        let applied = self.apply(&reference, &settlement, checkout_url.as_deref()).await?;
        Ok(PaymentAnswer {
            transaction: applied.record().clone(),
            replayed: false,
        })
    }

    /// Starts a withdrawal to one of the user's destinations: the amount is
    /// reserved at once, paid out when the provider confirms, returned to
    /// the available balance if the provider definitely refuses or fails.
    /// Requires an approved KYC.
    #[tracing::instrument(name = "wallet.withdraw", skip_all, fields(user_id = %user.id, amount = money.minor, currency = %money.currency))]
    pub async fn withdraw(
        &self,
        user: &User,
        money: Money,
        destination_id: &str,
        keyed: &Keyed<'_>,
    ) -> Result<PaymentAnswer, OperationError> {
        let reference = reference_for(PaymentKind::Withdrawal, &user.id, keyed.key);
        let new = self.pending_record(PaymentKind::Withdrawal, &reference, user, money, Some(destination_id));
        let checks = async |tx: &mut crate::store::Tx| -> Result<(), OperationError> {
            if !kyc::is_verified_user(tx, user).await? {
                return Err(OperationError::Forbidden(
                    "an approved KYC is required to withdraw".into(),
                ));
            }
            let destination = destinations::find_for_user(tx, &user.id, destination_id)
                .await?
                .ok_or(OperationError::NotFound("payout destination"))?;
            if destination.currency != money.currency.code() {
                return Err(OperationError::Domain(DomainError::invalid(
                    "currency",
                    format!(
                        "must be {} (the currency of destination {destination_id})",
                        destination.currency
                    ),
                )));
            }
            ledger::transfer(
                tx,
                Transfer {
                    kind: "withdrawal_reserve",
                    debit: &Account::available(&user.id, money.currency),
                    credit: &Account::reserved(&user.id, money.currency),
                    amount: money.minor,
                    escrow_transaction_id: Some(&reference),
                },
            )
            .await
            .map_err(|e| match e {
                StoreError::InsufficientFunds(_) => OperationError::Domain(DomainError::conflict(format!(
                    "insufficient available balance to withdraw {} {}",
                    money.minor, money.currency
                ))),
                other => other.into(),
            })
        };
        if self.record_pending(user, keyed, new, checks).await?.is_none() {
            return self.replay(&reference).await;
        }
        let settlement = self.send_payout(&reference).await?;
        let applied = self.apply(&reference, &settlement, None).await?;
        Ok(PaymentAnswer {
            transaction: applied.record().clone(),
            replayed: false,
        })
    }

    /// Step 2 of a withdrawal (also reconciliation's re-send of a payout the
    /// provider never received): the payout call for a pending record, with
    /// no connection held during it. The provider deduplicates on the
    /// reference, so sending it again cannot pay twice.
    pub(super) async fn send_payout(&self, reference: &str) -> Result<Settlement, OperationError> {
        let (record, destination) = {
            let mut conn = self.db.acquire().await?;
            let record = records::find(&mut conn, reference)
                .await?
                .ok_or(OperationError::NotFound("transaction"))?;
            let destination_id = record
                .destination_id
                .clone()
                .ok_or_else(|| broken(format!("withdrawal {reference} has no destination")))?;
            let destination = destinations::find(&mut conn, &destination_id).await?.ok_or_else(|| {
                broken(format!(
                    "withdrawal {reference}: destination {destination_id} is missing"
                ))
            })?;
            (record, destination)
        };
        let currency = record.currency;
        let kind = DestinationKind::parse(&destination.kind)
            .ok_or_else(|| broken(format!("destination {} has kind {}", destination.id, destination.kind)))?;
        let call = self.gateway.payout(PayoutRequest {
            reference,
            amount: record.amount,
            currency,
            description: "Amani wallet withdrawal",
            beneficiary: Beneficiary {
                kind,
                country: &destination.country,
                institution_code: &destination.institution_code,
                account_number: &destination.account_number,
                account_name: &destination.resolved_name,
            },
        });
        Ok(
            match observed(&self.metrics, self.gateway.name(), "payout", call).await {
                Ok(settlement) => settlement,
                Err(err) => settlement_of_error(err),
            },
        )
    }

    /// The record a used key points at, as it is now.
    async fn replay(&self, reference: &str) -> Result<PaymentAnswer, OperationError> {
        Ok(PaymentAnswer {
            transaction: self.load(reference).await?,
            replayed: true,
        })
    }

    /// Step 3 for every path (request, webhook, reconciliation): applies
    /// what the provider says to a pending record, by compare-and-set, with
    /// its ledger transfer, in one short transaction.
    #[tracing::instrument(name = "payment.settle", skip_all, fields(reference = %reference))]
    pub async fn apply(
        &self,
        reference: &str,
        settlement: &Settlement,
        checkout_url: Option<&str>,
    ) -> Result<Applied, OperationError> {
        let mut tx = self.db.begin().await?;
        let record = records::find(&mut tx, reference)
            .await?
            .ok_or(OperationError::NotFound("transaction"))?;
        if let Some(url) = checkout_url {
            records::set_checkout_url(&mut tx, reference, url).await?;
        }
        let kind = kind_of(&record)?;
        let currency = record.currency;
        if record.status != TransactionStatus::Pending {
            tx.commit().await?;
            return Ok(Applied::AlreadySettled(record));
        }
        let mut decision = decide(kind, record.amount, settlement);
        if let (PaymentKind::Deposit, Decision::Complete { received }) = (kind, &decision) {
            // Money arrived that the balance cannot take: a person decides.
            let balance = ledger::balance(&mut tx, &Account::available(&record.user_id, currency)).await?;
            if balance > MAX_BALANCE - record.amount {
                decision = Decision::Review {
                    received: *received,
                    reason: format!("crediting it would take the balance past its limit of {MAX_BALANCE}"),
                };
            }
        }
        let Some(to) = decision.status(kind) else {
            tx.commit().await?;
            return Ok(Applied::Waiting(self.load(reference).await?));
        };
        let (reason, received) = match &decision {
            Decision::Complete { received } => (None, Some(*received)),
            Decision::Fail { reason } => (Some(reason.as_str()), None),
            Decision::Review { received, reason } => (Some(reason.as_str()), Some(*received)),
            Decision::Wait => (None, None),
        };
        if !records::settle(&mut tx, reference, to, reason, received).await? {
            tx.commit().await?;
            return Ok(Applied::AlreadySettled(self.load(reference).await?));
        }
        let user = &record.user_id;
        let transfer = match (kind, &decision) {
            (PaymentKind::Deposit, Decision::Complete { .. }) => Some((
                "deposit",
                Account::external(currency),
                Account::available(user, currency),
            )),
            (PaymentKind::Withdrawal, Decision::Complete { .. }) => Some((
                "withdrawal",
                Account::reserved(user, currency),
                Account::external(currency),
            )),
            (PaymentKind::Withdrawal, Decision::Fail { .. }) => Some((
                "withdrawal_reversal",
                Account::reserved(user, currency),
                Account::available(user, currency),
            )),
            _ => None,
        };
        if let Some((transfer_kind, debit, credit)) = transfer {
            ledger::transfer(
                &mut tx,
                Transfer {
                    kind: transfer_kind,
                    debit: &debit,
                    credit: &credit,
                    // The recorded amount, never the provider's figure: an
                    // overpayment is not ours to credit.
                    amount: record.amount,
                    escrow_transaction_id: Some(reference),
                },
            )
            .await?;
        }
        tx.audit(AuditEvent {
            actor_id: None,
            action: &format!("wallet.{}.{to}", kind.as_str()),
            target_type: "escrow_transaction",
            target_id: Some(reference),
            request_id: crate::telemetry::request_id::current_string().as_deref(),
            details: json!({ "amount": record.amount, "received": received, "reason": reason }),
        });
        let settled = records::find(&mut tx, reference)
            .await?
            .ok_or_else(|| broken(format!("transaction {reference} vanished while it was settled")))?;
        if let Some(event) = settled_event(kind, to) {
            tx.emit(super::events::transaction(event, &settled));
        }
        tx.commit().await?;
        self.count_settled(kind, &decision, &settled);
        Ok(Applied::Settled(settled))
    }

    fn count_settled(&self, kind: PaymentKind, decision: &Decision, record: &EscrowTransaction) {
        let status = match decision {
            Decision::Complete { .. } => "succeeded",
            Decision::Wait => return,
            Decision::Fail { .. } | Decision::Review { .. } => "failed",
        };
        self.metrics
            .escrow_transactions
            .get_or_create(&EscrowLabels {
                r#type: kind.as_str(),
                status,
            })
            .inc();
        tracing::info!(reference = %record.id, kind = kind.as_str(), status = %record.status, "payment settled");
        if let Decision::Review { reason, .. } = decision {
            self.metrics
                .payment_mispayments
                .get_or_create(&KindLabels { kind: kind.as_str() })
                .inc();
            tracing::warn!(reference = %record.id, %reason, "mispayment held for review");
            self.alerts.send(
                Alert::trigger(
                    self.environment,
                    &format!("mispayment/{}", record.id),
                    "PaymentMispaid",
                    Severity::Warning,
                    format!(
                        "A {} arrived that does not match its record and is held for review: {reason}",
                        kind.as_str()
                    ),
                )
                .detail("reference", &record.id)
                .detail("user_id", &record.user_id)
                .detail("runbook", "docs/runbooks/payments.md#a-mispayment-arrived"),
            );
        }
    }

    /// A provider's webhook about one of our references: a hint, never
    /// proof. The operation is looked up at the provider and settled from
    /// that answer. `kind` is what the event is about (a `charge.*` is a
    /// deposit, a `payout.*` a withdrawal); `references` are the candidate
    /// references in the payload, in order of preference.
    #[tracing::instrument(name = "payment.webhook", skip_all, fields(event = %event))]
    pub async fn handle_webhook(
        &self,
        event: &str,
        kind: PaymentKind,
        references: &[&str],
    ) -> Result<WebhookOutcome, OperationError> {
        let provider = self.gateway.name();
        let (record, event_id) = {
            let mut conn = self.db.acquire().await?;
            let mut found = None;
            for reference in references {
                if let Some(record) = records::find(&mut conn, reference).await? {
                    found = Some(record);
                    break;
                }
            }
            let dedup_reference = found
                .as_ref()
                .map_or(references.first().copied().unwrap_or(""), |r| &r.id);
            let event_id = format!("{event}:{dedup_reference}");
            if webhooks::seen(&mut conn, provider, &event_id).await? {
                return Ok(WebhookOutcome::Duplicate);
            }
            (found, event_id)
        };
        let Some(record) = record else {
            self.note_webhook(event, &event_id, None, WebhookOutcome::UnknownReference)
                .await?;
            tracing::warn!(?references, event, "payment webhook for an unknown reference; recorded");
            return Ok(WebhookOutcome::UnknownReference);
        };
        if PaymentKind::of(record.kind) != Some(kind) {
            self.note_webhook(event, &event_id, Some(&record.id), WebhookOutcome::KindMismatch)
                .await?;
            tracing::warn!(reference = %record.id, record_kind = %record.kind, event, "payment webhook for the wrong kind of record; ignored");
            return Ok(WebhookOutcome::KindMismatch);
        }
        if record.status == TransactionStatus::Pending {
            let settlement = match self.look_up(kind, &record).await {
                Ok(settlement) => settlement,
                Err(err) => {
                    tracing::warn!(reference = %record.id, error = %err, "webhook not confirmed by the provider now; reconciliation will");
                    return Ok(WebhookOutcome::Deferred);
                }
            };
            if let Applied::Waiting(_) = self.apply(&record.id, &settlement, None).await? {
                // The provider has not finished: not recorded as processed,
                // so a later delivery of this event is looked at again.
                return Ok(WebhookOutcome::Deferred);
            }
        }
        self.note_webhook(event, &event_id, Some(&record.id), WebhookOutcome::Processed)
            .await?;
        Ok(WebhookOutcome::Processed)
    }

    /// Asks the provider about one pending record (no connection held).
    pub(super) async fn look_up(
        &self,
        kind: PaymentKind,
        record: &EscrowTransaction,
    ) -> Result<Settlement, GatewayError> {
        let currency = record.currency;
        let provider = self.gateway.name();
        match kind {
            PaymentKind::Deposit => {
                let call = self.gateway.verify_checkout(&record.id, currency);
                observed(&self.metrics, provider, "verify", call).await
            }
            PaymentKind::Withdrawal => {
                let call = self.gateway.fetch_payout(&record.id, currency);
                observed(&self.metrics, provider, "payout_status", call).await
            }
        }
    }

    async fn note_webhook(
        &self,
        event: &str,
        event_id: &str,
        reference: Option<&str>,
        outcome: WebhookOutcome,
    ) -> Result<(), OperationError> {
        let mut conn = self.db.acquire().await?;
        webhooks::record(
            &mut conn,
            self.gateway.name(),
            event_id,
            event,
            reference,
            outcome.as_str(),
        )
        .await?;
        Ok(())
    }

    /// Counts one webhook by outcome.
    pub fn count_webhook(&self, outcome: &'static str) {
        self.metrics
            .webhooks_received
            .get_or_create(&WebhookLabels {
                provider: self.gateway.name().to_owned(),
                outcome,
            })
            .inc();
    }
}

/// What a call that got no settlement means for the record.
fn settlement_of_error(err: GatewayError) -> Settlement {
    match err {
        // Refused: nothing happened at the provider.
        GatewayError::Rejected(reason) => Settlement::Failed { reason },
        // No definite answer, or "already have it": ask later.
        GatewayError::Unavailable(_) | GatewayError::Duplicate => Settlement::Pending,
    }
}

/// The problem a refused record answers with (its replays too).
pub fn refusal(record: &EscrowTransaction) -> Option<String> {
    matches!(record.status, TransactionStatus::Failed | TransactionStatus::Reversed).then(|| {
        record
            .failure_reason
            .clone()
            .unwrap_or_else(|| "the payment provider refused the operation".into())
    })
}

/// The event a deposit or withdrawal reaching `to` emits.
fn settled_event(kind: PaymentKind, to: TransactionStatus) -> Option<EventType> {
    use TransactionStatus as S;
    match (kind, to) {
        (PaymentKind::Deposit, S::Completed) => Some(EventType::DepositCompleted),
        (PaymentKind::Deposit, S::Failed) => Some(EventType::DepositFailed),
        (PaymentKind::Deposit, S::Review) => Some(EventType::DepositReview),
        (PaymentKind::Withdrawal, S::Completed) => Some(EventType::WithdrawalCompleted),
        (PaymentKind::Withdrawal, S::Failed | S::Reversed) => Some(EventType::WithdrawalFailed),
        (PaymentKind::Withdrawal, S::Review) => Some(EventType::WithdrawalReview),
        _ => None,
    }
}
