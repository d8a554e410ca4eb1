//! Money inside the platform: hold, release, refund, cancel, dispute
//! resolution. (Money that crosses to a payment provider is in
//! [`super::payments`].)
//!
//! Each runs inside the caller's transaction (which also holds the
//! request's idempotency key: the key and the money it guards commit
//! together), so the ledger transfers, the state change, the business
//! record and the audit event commit together or not at all. Each starts by
//! locking the project row ([`projects::lock`], or with one milestone
//! [`projects::lock_with_milestone`]), so operations on one project run one
//! at a time and always take row locks in the same order (project,
//! milestone, accounts); state changes are compare-and-set, so a loser of
//! any race changes nothing.

use serde_json::json;
use uuid::Uuid;

use super::{OperationError, conflict, events};

use crate::domain::DomainError;
use crate::domain::escrow::{MilestoneStatus, Party, ProjectStatus};
use crate::domain::event::EventType;
use crate::domain::money::fee_for;
use crate::domain::payment::{TransactionKind, TransactionStatus};
use crate::store::audit::AuditEvent;
use crate::store::escrow::{EscrowTransaction, NewTransaction};
use crate::store::ledger::{self, Account, Transfer};
use crate::store::projects::{self, Milestone, Project};
use crate::store::users::User;
use crate::store::{StoreError, Tx, kyc};

/// The caller's part in a project; strangers get "not found".
pub fn party(project: &Project, user: &User) -> Result<Party, OperationError> {
    if user.id == project.buyer_id {
        Ok(Party::Buyer)
    } else if user.id == project.seller_id {
        Ok(Party::Seller)
    } else if user.role == crate::domain::account::Role::Admin {
        Ok(Party::Admin)
    } else {
        Err(OperationError::NotFound("project"))
    }
}

/// Locks and loads a project the caller is a party to.
pub async fn locked_project(tx: &mut Tx, user: &User, project_id: &str) -> Result<(Project, Party), OperationError> {
    let project = lock_project(tx, project_id).await?;
    let party = party(&project, user)?;
    Ok((project, party))
}

/// Locks and loads a project; "not found" if there is none.
async fn lock_project(tx: &mut Tx, project_id: &str) -> Result<Project, OperationError> {
    projects::lock(tx, project_id)
        .await?
        .ok_or(OperationError::NotFound("project"))
}

/// Locks and loads a milestone's project and the milestone as of that
/// lock (so it cannot be stale): one statement.
pub async fn locked_milestone(
    tx: &mut Tx,
    user: &User,
    milestone_id: &str,
) -> Result<(Project, Party, Milestone), OperationError> {
    let (project, milestone) = projects::lock_with_milestone(tx, milestone_id, None)
        .await?
        .ok_or(OperationError::NotFound("milestone"))?;
    let party = party(&project, user).map_err(|e| match e {
        OperationError::NotFound(_) => OperationError::NotFound("milestone"),
        other => other,
    })?;
    Ok((project, party, milestone))
}

/// Records `action` by `actor` in the audit trail, in the transaction of the
/// change, with the request's id.
pub fn record_audit(
    tx: &mut Tx,
    actor: &User,
    action: &str,
    target_type: &str,
    target_id: &str,
    details: serde_json::Value,
) {
    let request_id = crate::telemetry::request_id::current_string();
    tx.audit(AuditEvent {
        actor_id: Some(&actor.id),
        action,
        target_type,
        target_id: Some(target_id),
        request_id: request_id.as_deref(),
        details,
    });
}

/// The buyer funds one milestone, or every pending milestone, from their
/// available balance; the platform fee goes to the fee account at the same
/// time. Requires the buyer's approved KYC and an active project.
#[tracing::instrument(name = "escrow.hold", skip_all, fields(project_id = %project_id, user_id = %buyer.id))]
pub async fn hold(
    tx: &mut Tx,
    fee_bps: u32,
    buyer: &User,
    project_id: &str,
    milestone_id: Option<&str>,
    notes: Option<&str>,
) -> Result<Vec<EscrowTransaction>, OperationError> {
    // One milestone is locked and read with its project (one statement);
    // if the project has no such milestone, the project is locked alone,
    // and the milestone reported missing once the checks below pass.
    let (project, one) = match milestone_id {
        Some(id) => match projects::lock_with_milestone(tx, id, Some(project_id)).await? {
            Some((project, milestone)) => (project, Some(milestone)),
            None => (lock_project(tx, project_id).await?, None),
        },
        None => (lock_project(tx, project_id).await?, None),
    };
    let party = party(&project, buyer)?;
    if party != Party::Buyer {
        return Err(OperationError::Forbidden("only the project's buyer funds it".into()));
    }
    project.status.check_active("fund milestones")?;
    if !kyc::is_verified_user(tx, buyer).await? {
        return Err(OperationError::Forbidden(
            "an approved KYC is required to fund escrow; submit it at /api/v1/kyc/submit".into(),
        ));
    }
    // One milestone is read alone: a project may have a hundred.
    let to_fund: Vec<Milestone> = match milestone_id {
        Some(_) => {
            let milestone = one.ok_or(OperationError::NotFound("milestone"))?;
            milestone.status.fund()?;
            vec![milestone]
        }
        None => projects::milestones(tx, project_id)
            .await?
            .into_iter()
            .filter(|m| m.status == MilestoneStatus::Pending)
            .collect(),
    };
    if to_fund.is_empty() {
        return Err(conflict("every milestone of this project is already funded"));
    }
    // No balance read first: the debits are compare-and-set, and refuse
    // what the balance cannot cover. Only then is the balance read, to say
    // by how much (the caller's transaction is dropped on the error).
    let needed: i64 = to_fund.iter().map(|m| m.amount + fee_for(m.amount, fee_bps)).sum();
    let buyer_account = Account::available(&buyer.id, project.currency);
    let escrow_account = Account::escrow(&project.id, project.currency);
    let fees_account = Account::fees(&project.id, project.currency);
    let mut done = Vec::new();
    let mut ids = Vec::new();
    for milestone in to_fund {
        let fee = fee_for(milestone.amount, fee_bps);
        let funded = milestone.status.fund()?;
        let Some(funded) =
            projects::set_milestone_status(tx, &milestone.id, milestone.status, funded, None, None, None).await?
        else {
            return Err(conflict("the milestone changed while it was being funded; retry"));
        };
        let id = Uuid::now_v7().to_string();
        let held = tx.record(NewTransaction {
            id: &id,
            kind: TransactionKind::Hold,
            status: TransactionStatus::Completed,
            user_id: &buyer.id,
            counterparty_id: Some(&project.seller_id),
            project_id: Some(&project.id),
            milestone_id: Some(&milestone.id),
            amount: milestone.amount,
            fee,
            currency: project.currency,
            provider: None,
            notes,
            destination_id: None,
        });
        record_audit(
            tx,
            buyer,
            "escrow.hold",
            "milestone",
            &milestone.id,
            json!({ "amount": milestone.amount, "fee": fee, "transaction_id": id }),
        );
        tx.emit(events::milestone(EventType::MilestoneFunded, &project, &funded));
        tx.emit(events::transaction(EventType::EscrowHeld, &held));
        ids.push((id, milestone.amount, fee));
        done.push(held);
    }
    // The whole hold's money moves in one posting: for each milestone, its
    // amount to escrow and its fee to the platform.
    let mut transfers = Vec::new();
    for (id, amount, fee) in &ids {
        transfers.push(Transfer {
            kind: "hold",
            debit: &buyer_account,
            credit: &escrow_account,
            amount: *amount,
            escrow_transaction_id: Some(id),
        });
        if *fee > 0 {
            transfers.push(Transfer {
                kind: "fee",
                debit: &buyer_account,
                credit: &fees_account,
                amount: *fee,
                escrow_transaction_id: Some(id),
            });
        }
    }
    match ledger::post(tx, &transfers).await {
        Err(StoreError::InsufficientFunds(account)) if account == buyer_account.id() => {
            // Refused whole: the buyer's balance is as it was.
            let available = ledger::balance(tx, &buyer_account).await?;
            return Err(conflict(format!(
                "insufficient available balance: {available} {} available, {needed} needed (amounts and fees in minor units)",
                project.currency
            )));
        }
        posted => posted?,
    }
    tracing::info!(project_id, funded = done.len(), "escrow hold");
    Ok(done)
}

/// Money leaving a project's escrow for one party (a release to the seller,
/// a refund to the buyer): the business record and its ledger transfer.
/// Which way money leaves a project's escrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outflow {
    /// To the seller (`release`).
    Release,
    /// Back to the buyer (`refund`).
    Refund,
}

async fn move_escrow(
    tx: &mut Tx,
    project: &Project,
    outflow: Outflow,
    milestone_id: Option<&str>,
    amount: i64,
    notes: Option<&str>,
) -> Result<EscrowTransaction, OperationError> {
    let (kind, to, from) = match outflow {
        Outflow::Release => (TransactionKind::Release, &project.seller_id, &project.buyer_id),
        Outflow::Refund => (TransactionKind::Refund, &project.buyer_id, &project.seller_id),
    };
    let id = Uuid::now_v7().to_string();
    let moved = tx.record(NewTransaction {
        id: &id,
        kind,
        status: TransactionStatus::Completed,
        user_id: to,
        counterparty_id: Some(from),
        project_id: Some(&project.id),
        milestone_id,
        amount,
        fee: 0,
        currency: project.currency,
        provider: None,
        notes,
        destination_id: None,
    });
    ledger::transfer(
        tx,
        Transfer {
            kind: kind.as_str(),
            debit: &Account::escrow(&project.id, project.currency),
            credit: &Account::available(to, project.currency),
            amount,
            escrow_transaction_id: Some(&id),
        },
    )
    .await?;
    tx.emit(events::transaction(
        match outflow {
            Outflow::Release => EventType::EscrowReleased,
            Outflow::Refund => EventType::EscrowRefunded,
        },
        &moved,
    ));
    Ok(moved)
}

/// A milestone's escrow goes to the seller: with `amount`, that part of
/// what it holds, at any time before it settles (not while disputed);
/// without, the whole remainder, once the buyer approved. The buyer (or an
/// admin) releases; a second release finds nothing left to release.
#[tracing::instrument(name = "escrow.release", skip_all, fields(milestone_id = %milestone_id, user_id = %actor.id))]
pub async fn release(
    tx: &mut Tx,
    actor: &User,
    milestone_id: &str,
    amount: Option<i64>,
    notes: Option<&str>,
) -> Result<EscrowTransaction, OperationError> {
    let (project, party, milestone) = locked_milestone(tx, actor, milestone_id).await?;
    if !matches!(party, Party::Buyer | Party::Admin) {
        return Err(OperationError::Forbidden(
            "only the buyer (or an admin) releases a milestone".into(),
        ));
    }
    project.status.check_active("release")?;
    let amount = match amount {
        None => {
            milestone.status.release()?;
            milestone.held()
        }
        Some(part) => {
            milestone.status.check_partial_release()?;
            within_held("amount", part, &milestone)?
        }
    };
    let (_, mut moved) = pay_out(tx, &project, &milestone, amount, 0, None, notes).await?;
    settle_project(tx, &project).await?;
    let released = moved.pop().ok_or_else(|| conflict("nothing was released"))?;
    record_audit(
        tx,
        actor,
        "escrow.release",
        "milestone",
        &milestone.id,
        json!({ "amount": amount, "transaction_id": released.id }),
    );
    Ok(released)
}

/// A part of a milestone's escrow a caller named: from 1 to what it holds.
fn within_held(field: &'static str, part: i64, milestone: &Milestone) -> Result<i64, OperationError> {
    let held = milestone.held();
    if (1..=held).contains(&part) {
        Ok(part)
    } else {
        Err(OperationError::Domain(DomainError::invalid(
            field,
            format!("must be from 1 to {held} (what the milestone still holds, in minor units)"),
        )))
    }
}

/// Moves `to_seller` and `to_buyer` (either may be 0; together at most what
/// the milestone holds) out of a milestone's escrow, each part its own
/// transaction, and settles the milestone when nothing is left held
/// (`released`, `refunded` or `split`, from what each side received in
/// all). `first` is an event to emit before the settlement's (the
/// auto-release's own). Returns the milestone after, and the transactions
/// (the seller's first). The caller completes the project if it wants
/// ([`settle_project`]): a cancellation does not.
async fn pay_out(
    tx: &mut Tx,
    project: &Project,
    milestone: &Milestone,
    to_seller: i64,
    to_buyer: i64,
    first: Option<EventType>,
    notes: Option<&str>,
) -> Result<(Milestone, Vec<EscrowTransaction>), OperationError> {
    let held = milestone.held();
    let out = to_seller.checked_add(to_buyer).filter(|out| (1..=held).contains(out));
    let Some(out) = out.filter(|_| to_seller >= 0 && to_buyer >= 0) else {
        return Err(conflict(format!(
            "cannot move {to_seller} to the seller and {to_buyer} to the buyer: the milestone holds {held}"
        )));
    };
    let next = if out == held {
        MilestoneStatus::settled(
            milestone.released_amount + to_seller,
            milestone.refunded_amount + to_buyer,
        )
    } else {
        milestone.status
    };
    let Some(after) = projects::pay_out(tx, &milestone.id, milestone.status, next, to_seller, to_buyer).await? else {
        return Err(conflict("the milestone changed meanwhile; reload it and retry"));
    };
    let settled = match next {
        _ if next == milestone.status => None,
        MilestoneStatus::Released => Some(EventType::MilestoneReleased),
        MilestoneStatus::Split => Some(EventType::MilestoneSplit),
        _ => Some(EventType::MilestoneRefunded),
    };
    for event in first.into_iter().chain(settled) {
        tx.emit(events::milestone(event, project, &after));
    }
    let mut moved = Vec::new();
    for (outflow, amount) in [(Outflow::Release, to_seller), (Outflow::Refund, to_buyer)] {
        if amount > 0 {
            moved.push(move_escrow(tx, project, outflow, Some(&milestone.id), amount, notes).await?);
        }
    }
    Ok((after, moved))
}

/// Why the system acted, in audit records and transaction notes.
pub const INSPECTION_ELAPSED: &str = "inspection period elapsed";
pub const FUNDING_DEADLINE_PASSED: &str = "funding deadline passed";

/// Records an action the system took on its own (a scheduled job): no
/// actor id, `"actor": "system"` and the reason in the details.
fn record_system_audit(
    tx: &mut Tx,
    action: &str,
    target_type: &str,
    target_id: &str,
    reason: &str,
    mut details: serde_json::Value,
) {
    if let Some(map) = details.as_object_mut() {
        map.insert("actor".into(), json!("system"));
        map.insert("reason".into(), json!(reason));
    }
    tx.audit(AuditEvent {
        actor_id: None,
        action,
        target_type,
        target_id: Some(target_id),
        request_id: None,
        details,
    });
}

/// The inspection period of a submission ended without an answer from the
/// buyer: the system approves the milestone and releases it to the seller.
/// Only if the milestone is still submitted with this very deadline (an
/// answer, a dispute or a resubmission since makes this a no-op: false).
#[tracing::instrument(name = "escrow.auto_release", skip_all, fields(milestone_id = %milestone_id))]
pub async fn release_after_inspection(
    tx: &mut Tx,
    milestone_id: &str,
    deadline: &str,
) -> Result<Option<EscrowTransaction>, OperationError> {
    let Some((project, milestone)) = projects::lock_with_milestone(tx, milestone_id, None).await? else {
        return Ok(None);
    };
    if project.status != ProjectStatus::Active
        || milestone.status != MilestoneStatus::Submitted
        || milestone.inspection_deadline.as_deref() != Some(deadline)
    {
        return Ok(None);
    }
    let amount = milestone.held();
    let (_, mut moved) = pay_out(
        tx,
        &project,
        &milestone,
        amount,
        0,
        Some(EventType::MilestoneAutoReleased),
        Some(INSPECTION_ELAPSED),
    )
    .await?;
    settle_project(tx, &project).await?;
    let released = moved.pop().ok_or_else(|| conflict("nothing was released"))?;
    record_system_audit(
        tx,
        "escrow.auto_release",
        "milestone",
        &milestone.id,
        INSPECTION_ELAPSED,
        json!({ "amount": amount, "transaction_id": released.id, "deadline": deadline }),
    );
    tracing::info!(milestone_id, amount, "milestone released after its inspection period");
    Ok(Some(released))
}

/// A project sent to its seller is past its funding deadline: if it is
/// still not accepted, or accepted but not fully funded and with no work
/// delivered, the system cancels it and refunds what is held. Returns the
/// refunds, or None when there was nothing to do (funded in time, work
/// delivered, already settled).
#[tracing::instrument(name = "project.expire", skip_all, fields(project_id = %project_id))]
pub async fn expire_unfunded(tx: &mut Tx, project_id: &str) -> Result<Option<Vec<EscrowTransaction>>, OperationError> {
    let Some(project) = projects::lock(tx, project_id).await? else {
        return Ok(None);
    };
    let milestones = projects::milestones(tx, project_id).await?;
    let statuses: Vec<MilestoneStatus> = milestones.iter().map(|m| m.status).collect();
    let unfunded = statuses.contains(&MilestoneStatus::Pending);
    let expires = match project.status {
        ProjectStatus::AwaitingSeller => true,
        ProjectStatus::Active => unfunded,
        _ => false,
    };
    let Some(next) = expires.then(|| project.status.cancel(&statuses).ok()).flatten() else {
        return Ok(None);
    };
    let mut refunds = Vec::new();
    for milestone in milestones.iter().filter(|m| m.status.holds_funds()) {
        refunds.push(refund_milestone(tx, &project, milestone, None, Some(FUNDING_DEADLINE_PASSED)).await?);
    }
    let Some(expired) = projects::set_status(tx, project_id, project.status, next, None).await? else {
        return Err(conflict("the project changed while it was being expired; retry"));
    };
    tx.emit(events::project(EventType::ProjectExpired, &expired));
    record_system_audit(
        tx,
        "project.expired",
        "project",
        project_id,
        FUNDING_DEADLINE_PASSED,
        json!({ "from": project.status.as_str(), "refunds": refunds.len() }),
    );
    tracing::info!(project_id, refunds = refunds.len(), "project expired unfunded");
    Ok(Some(refunds))
}

/// Moves an active project to completed once every milestone is settled.
async fn settle_project(tx: &mut Tx, project: &Project) -> Result<(), OperationError> {
    if project.status == ProjectStatus::Active
        && let Some(completed) = projects::complete_if_settled(tx, &project.id).await?
    {
        tx.emit(events::project(EventType::ProjectCompleted, &completed));
    }
    Ok(())
}

/// Returns what one milestone holds (or `part` of it) to the buyer.
async fn refund_milestone(
    tx: &mut Tx,
    project: &Project,
    milestone: &Milestone,
    part: Option<i64>,
    notes: Option<&str>,
) -> Result<EscrowTransaction, OperationError> {
    milestone.status.refund()?;
    let amount = match part {
        Some(part) => within_held("amount", part, milestone)?,
        None => milestone.held(),
    };
    let (_, mut moved) = pay_out(tx, project, milestone, 0, amount, None, notes).await?;
    moved.pop().ok_or_else(|| conflict("nothing was refunded"))
}

/// Unreleased escrow back to the buyer: one milestone, or every milestone
/// holding funds. The seller gives money back of their own accord (or an
/// admin decides); a buyer who wants money back opens a dispute. The
/// platform fee is not refunded.
#[tracing::instrument(name = "escrow.refund", skip_all, fields(project_id = %project_id, user_id = %actor.id))]
pub async fn refund(
    tx: &mut Tx,
    actor: &User,
    project_id: &str,
    milestone_id: Option<&str>,
    amount: Option<i64>,
    notes: Option<&str>,
) -> Result<Vec<EscrowTransaction>, OperationError> {
    if amount.is_some() && milestone_id.is_none() {
        return Err(OperationError::Domain(DomainError::invalid(
            "amount",
            "a partial refund names its milestone_id",
        )));
    }
    let (project, party) = locked_project(tx, actor, project_id).await?;
    if !matches!(party, Party::Seller | Party::Admin) {
        return Err(OperationError::Forbidden(
            "only the seller (or an admin) refunds escrow; a buyer opens a dispute".into(),
        ));
    }
    project.status.check_refundable()?;
    let milestones = projects::milestones(tx, project_id).await?;
    let targets: Vec<&Milestone> = match milestone_id {
        Some(id) => vec![
            milestones
                .iter()
                .find(|m| m.id == id)
                .ok_or(OperationError::NotFound("milestone"))?,
        ],
        None => milestones.iter().filter(|m| m.status.holds_funds()).collect(),
    };
    if targets.is_empty() {
        return Err(conflict("no milestone of this project holds funds"));
    }
    let mut done = Vec::new();
    for milestone in targets {
        let refunded = refund_milestone(tx, &project, milestone, amount, notes).await?;
        record_audit(
            tx,
            actor,
            "escrow.refund",
            "milestone",
            &milestone.id,
            json!({ "amount": refunded.amount, "transaction_id": refunded.id }),
        );
        done.push(refunded);
    }
    settle_project(tx, &project).await?;
    Ok(done)
}

/// Cancels a project; money held (before any delivery) goes back to the buyer.
#[tracing::instrument(name = "project.cancel", skip_all, fields(project_id = %project_id, user_id = %actor.id))]
pub async fn cancel(tx: &mut Tx, actor: &User, project_id: &str) -> Result<Vec<EscrowTransaction>, OperationError> {
    let (project, _party) = locked_project(tx, actor, project_id).await?;
    let milestones = projects::milestones(tx, project_id).await?;
    let statuses: Vec<MilestoneStatus> = milestones.iter().map(|m| m.status).collect();
    let next = project.status.cancel(&statuses)?;
    let mut refunds = Vec::new();
    for milestone in milestones.iter().filter(|m| m.status.holds_funds()) {
        refunds.push(refund_milestone(tx, &project, milestone, None, Some("project cancelled")).await?);
    }
    let Some(cancelled) = projects::set_status(tx, project_id, project.status, next, None).await? else {
        return Err(conflict("the project changed while it was being cancelled; retry"));
    };
    tx.emit(events::project(EventType::ProjectCancelled, &cancelled));
    record_audit(
        tx,
        actor,
        "project.cancelled",
        "project",
        project_id,
        json!({ "refunds": refunds.len() }),
    );
    Ok(refunds)
}

/// How an admin settles a dispute over the money still held.
#[derive(Debug, Clone, Copy)]
pub enum Resolution {
    ReleaseToSeller,
    RefundToBuyer,
    /// This much to the seller, the rest to the buyer.
    Split {
        to_seller: i64,
    },
}

impl Resolution {
    /// The seller's share of `total` held.
    fn to_seller(self, total: i64) -> Result<i64, OperationError> {
        match self {
            Resolution::ReleaseToSeller => Ok(total),
            Resolution::RefundToBuyer => Ok(0),
            Resolution::Split { to_seller } if (0..=total).contains(&to_seller) => Ok(to_seller),
            Resolution::Split { .. } => Err(OperationError::Domain(DomainError::invalid(
                "seller_amount",
                format!("must be from 0 to {total} (the amount held)"),
            ))),
        }
    }
}

#[tracing::instrument(name = "dispute.resolve", skip_all, fields(project_id = %project_id, user_id = %admin.id))]
pub async fn resolve_dispute(
    tx: &mut Tx,
    admin: &User,
    project_id: &str,
    resolution: Resolution,
    notes: Option<&str>,
) -> Result<Vec<EscrowTransaction>, OperationError> {
    let (project, party) = locked_project(tx, admin, project_id).await?;
    if party != Party::Admin {
        return Err(OperationError::Forbidden("only an admin resolves a dispute".into()));
    }
    let next = project.status.resolve_dispute()?;
    let milestones = projects::milestones(tx, project_id).await?;
    let held: Vec<&Milestone> = milestones.iter().filter(|m| m.status.holds_funds()).collect();
    let total: i64 = held.iter().map(|m| m.held()).sum();
    let to_seller = resolution.to_seller(total)?;
    let to_buyer = total - to_seller;
    // The seller's share is taken from the milestones in order, so each
    // milestone records exactly what each side got from it and is named
    // for it (released, refunded, or split).
    let mut seller_left = to_seller;
    let mut done = Vec::new();
    let notes = Some(notes.unwrap_or("dispute resolution"));
    for milestone in held {
        let seller_part = seller_left.min(milestone.held());
        seller_left -= seller_part;
        let (_, moved) = pay_out(
            tx,
            &project,
            milestone,
            seller_part,
            milestone.held() - seller_part,
            None,
            notes,
        )
        .await?;
        done.extend(moved);
    }
    let Some(resolved) = projects::set_status(tx, project_id, project.status, next, None).await? else {
        return Err(conflict("the project changed during the resolution; retry"));
    };
    tx.emit(events::project(EventType::ProjectResolved, &resolved));
    record_audit(
        tx,
        admin,
        "dispute.resolved",
        "project",
        project_id,
        json!({ "to_seller": to_seller, "to_buyer": to_buyer }),
    );
    Ok(done)
}

/// Why the system settled a dispute.
pub const DISPUTE_UNANSWERED: &str = "dispute unanswered";

/// An admin settles one disputed milestone: everything it holds to the
/// seller, back to the buyer, or `seller_amount` to the seller and the rest
/// to the buyer. The milestone's status says what happened.
#[tracing::instrument(name = "dispute.resolve_milestone", skip_all, fields(milestone_id = %milestone_id, user_id = %admin.id))]
pub async fn resolve_milestone_dispute(
    tx: &mut Tx,
    admin: &User,
    milestone_id: &str,
    resolution: Resolution,
    notes: Option<&str>,
) -> Result<(Milestone, Vec<EscrowTransaction>), OperationError> {
    let (project, party, milestone) = locked_milestone(tx, admin, milestone_id).await?;
    if party != Party::Admin {
        return Err(OperationError::Forbidden("only an admin resolves a dispute".into()));
    }
    milestone.status.check_disputed()?;
    let held = milestone.held();
    let to_seller = resolution.to_seller(held)?;
    let notes = Some(notes.unwrap_or("dispute resolution"));
    let (after, moved) = pay_out(tx, &project, &milestone, to_seller, held - to_seller, None, notes).await?;
    settle_project(tx, &project).await?;
    record_audit(
        tx,
        admin,
        "dispute.resolved",
        "milestone",
        milestone_id,
        json!({ "to_seller": to_seller, "to_buyer": held - to_seller, "status": after.status.as_str() }),
    );
    Ok((after, moved))
}

/// The other party did not answer a milestone's dispute by `respond_by`:
/// the dispute is settled for the party who opened it (a buyer's: refunded;
/// a seller's: released). None when there is nothing to do (answered,
/// resolved, or a later dispute with another deadline).
#[tracing::instrument(name = "dispute.settle_unanswered", skip_all, fields(milestone_id = %milestone_id))]
pub async fn settle_unanswered_dispute(
    tx: &mut Tx,
    milestone_id: &str,
    respond_by: &str,
) -> Result<Option<Milestone>, OperationError> {
    let Some((project, milestone)) = projects::lock_with_milestone(tx, milestone_id, None).await? else {
        return Ok(None);
    };
    if project.status != ProjectStatus::Active
        || milestone.status != MilestoneStatus::Disputed
        || milestone.dispute_response.is_some()
        || milestone.dispute_respond_by.as_deref() != Some(respond_by)
    {
        return Ok(None);
    }
    let held = milestone.held();
    let (to_seller, to_buyer) = match milestone.disputed_by.as_deref() {
        Some("seller") => (held, 0),
        _ => (0, held),
    };
    let (after, _) = pay_out(
        tx,
        &project,
        &milestone,
        to_seller,
        to_buyer,
        None,
        Some(DISPUTE_UNANSWERED),
    )
    .await?;
    settle_project(tx, &project).await?;
    record_system_audit(
        tx,
        "dispute.settled_unanswered",
        "milestone",
        milestone_id,
        DISPUTE_UNANSWERED,
        json!({ "to_seller": to_seller, "to_buyer": to_buyer, "respond_by": respond_by }),
    );
    Ok(Some(after))
}
