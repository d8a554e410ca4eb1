//! Milestones: the parts of a project that are funded, delivered, approved
//! and released one by one. Their money moves in [`super::escrow`]; here
//! are their terms and their delivery.

use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;

use super::escrow::{locked_milestone, locked_project, record_audit};
use super::projects::{MAX_MILESTONES, MilestoneTerms, check_total, visible};
use super::{OperationError, conflict, events, scheduler};
use crate::domain::DomainError;
use crate::domain::escrow::{MilestoneStatus, Party};
use crate::domain::event::EventType;
use crate::domain::money::Money;
use crate::store::dispute_files::{self, DisputeFile};
use crate::store::projects::{self, Milestone, NewMilestone};
use crate::store::users::User;
use crate::store::{Database, DbHandle, Tx, timestamp};

async fn reload(db: &mut impl DbHandle, id: &str) -> Result<Milestone, OperationError> {
    projects::find_milestone(db, id)
        .await?
        .ok_or(OperationError::NotFound("milestone"))
}

/// The buyer adds a milestone to a draft. `terms.amount` is checked
/// against the project's currency here, since only the project knows it.
#[tracing::instrument(name = "milestone.create", skip_all, fields(project_id = %project_id, user_id = %user.id))]
pub async fn create(
    db: &Database,
    user: &User,
    project_id: &str,
    terms: MilestoneTerms,
) -> Result<Milestone, OperationError> {
    let mut tx = db.begin().await?;
    let (project, party) = locked_project(&mut tx, user, project_id).await?;
    if party != Party::Buyer {
        return Err(OperationError::Forbidden("only the buyer adds milestones".into()));
    }
    project.status.check_editable()?;
    let terms = MilestoneTerms {
        amount: Money::new(terms.amount, project.currency)?.minor,
        ..terms
    };
    let existing = projects::milestones(&mut tx, project_id).await?;
    if existing.len() >= MAX_MILESTONES {
        return Err(OperationError::Invalid(format!(
            "a project has at most {MAX_MILESTONES} milestones"
        )));
    }
    check_total(existing.iter().map(|m| m.amount).chain([terms.amount]))?;
    let id = insert(&mut tx, project_id, &terms).await?;
    let milestone = reload(&mut tx, &id).await?;
    tx.commit().await?;
    Ok(milestone)
}

/// Inserts a milestone of a draft.
pub(super) async fn insert(tx: &mut Tx, project_id: &str, terms: &MilestoneTerms) -> Result<String, OperationError> {
    Ok(projects::insert_milestone(
        tx,
        project_id,
        &NewMilestone {
            title: &terms.title,
            description: terms.description.as_deref(),
            amount: terms.amount,
            inspection_period_seconds: terms.inspection_period_seconds,
            due_date: terms.due_date.as_deref(),
        },
    )
    .await?)
}

/// A project's milestones the caller may see, filtered by status and by
/// being overdue (or not).
pub async fn list(
    db: &Database,
    user: &User,
    project_id: &str,
    status: Option<MilestoneStatus>,
    overdue: Option<bool>,
) -> Result<Vec<Milestone>, OperationError> {
    let mut conn = db.acquire().await?;
    visible(&mut conn, user, project_id).await?;
    let now = timestamp::now();
    Ok(projects::milestones(&mut conn, project_id)
        .await?
        .into_iter()
        .filter(|m| status.is_none_or(|s| m.status == s))
        .filter(|m| overdue.is_none_or(|o| m.is_overdue(&now) == o))
        .collect())
}

/// A milestone's due date passed: if it is still undelivered on an active
/// project (and was not announced before), it is marked overdue and a
/// `milestone.overdue` event written, once. None otherwise.
#[tracing::instrument(name = "milestone.overdue", skip_all, fields(milestone_id = %id))]
pub async fn mark_overdue(tx: &mut Tx, id: &str, due_date: &str) -> Result<Option<Milestone>, OperationError> {
    let Some((project, _)) = projects::lock_with_milestone(tx, id, None).await? else {
        return Ok(None);
    };
    if project.status != crate::domain::escrow::ProjectStatus::Active {
        return Ok(None);
    }
    let Some(overdue) = projects::mark_overdue(tx, id, due_date).await? else {
        return Ok(None);
    };
    tx.emit(events::milestone(EventType::MilestoneOverdue, &project, &overdue));
    Ok(Some(overdue))
}

pub async fn get(db: &Database, user: &User, id: &str) -> Result<Milestone, OperationError> {
    let mut conn = db.acquire().await?;
    let milestone = reload(&mut conn, id).await?;
    visible(&mut conn, user, &milestone.project_id)
        .await
        .map_err(|_| OperationError::NotFound("milestone"))?;
    Ok(milestone)
}

/// The buyer edits a milestone of a draft.
#[tracing::instrument(name = "milestone.update", skip_all, fields(milestone_id = %id, user_id = %user.id))]
pub async fn update(
    db: &Database,
    user: &User,
    id: &str,
    title: Option<&str>,
    description: Option<&str>,
    amount: Option<i64>,
    due_date: Option<&str>,
) -> Result<Milestone, OperationError> {
    let mut tx = db.begin().await?;
    let (project, party, _) = locked_milestone(&mut tx, user, id).await?;
    if party != Party::Buyer {
        return Err(OperationError::Forbidden("only the buyer edits milestones".into()));
    }
    project.status.check_editable()?;
    let amount = amount
        .map(|a| Money::new(a, project.currency))
        .transpose()?
        .map(|m| m.minor);
    if let Some(amount) = amount {
        let others = projects::milestones(&mut tx, &project.id).await?;
        check_total(others.iter().filter(|m| m.id != id).map(|m| m.amount).chain([amount]))?;
    }
    projects::update_milestone(&mut tx, id, title, description, amount, due_date).await?;
    let milestone = reload(&mut tx, id).await?;
    tx.commit().await?;
    Ok(milestone)
}

/// A milestone step: its event (also its audit action) and, for refusals,
/// what it is called.
struct Step<'a> {
    event: EventType,
    verb: &'a str,
    /// For a submission: the platform's inspection period, which starts
    /// the clock (unless the milestone or its project has its own).
    inspection: Option<Duration>,
}

/// Applies a milestone transition the domain computes.
async fn transition(
    db: &Database,
    user: &User,
    id: &str,
    step: Step<'_>,
    note: Option<&str>,
    reason: Option<&str>,
    next: impl Fn(MilestoneStatus, Party) -> Result<MilestoneStatus, DomainError>,
) -> Result<Milestone, OperationError> {
    let mut tx = db.begin().await?;
    let (project, party, milestone) = locked_milestone(&mut tx, user, id).await?;
    project.status.check_active(step.verb)?;
    let to = next(milestone.status, party)?;
    let deadline = step.inspection.map(|platform| {
        let seconds = milestone
            .inspection_period_seconds
            .or(project.inspection_period_seconds)
            .map_or(platform, |s| Duration::from_secs(s.unsigned_abs()));
        timestamp::format(OffsetDateTime::now_utc() + seconds)
    });
    let Some(moved) =
        projects::set_milestone_status(&mut tx, id, milestone.status, to, note, reason, deadline.as_deref()).await?
    else {
        return Err(conflict("the milestone changed meanwhile; reload it"));
    };
    if let Some(deadline) = &deadline {
        tx.schedule(scheduler::INSPECTION_ELAPSED, id, deadline);
    }
    tx.emit(events::milestone(step.event, &project, &moved));
    record_audit(
        &mut tx,
        user,
        step.event.as_str(),
        "milestone",
        id,
        json!({ "from": milestone.status.as_str(), "to": to.as_str(), "inspection_deadline": deadline }),
    );
    tx.commit().await?;
    Ok(moved)
}

/// The seller delivers a funded (or rejected) milestone; the buyer's
/// inspection period starts (`inspection_period`: the platform's, unless
/// the milestone or its project has its own). If the buyer neither
/// approves, rejects nor disputes before it ends, the scheduler releases
/// the milestone ([`super::escrow::release_after_inspection`]).
#[tracing::instrument(name = "milestone.submit", skip_all, fields(milestone_id = %id, user_id = %user.id))]
pub async fn submit(
    db: &Database,
    user: &User,
    id: &str,
    note: Option<&str>,
    inspection_period: Duration,
) -> Result<Milestone, OperationError> {
    transition(
        db,
        user,
        id,
        Step {
            event: EventType::MilestoneSubmitted,
            verb: "submit a milestone",
            inspection: Some(inspection_period),
        },
        note,
        None,
        |status, party| status.submit(party),
    )
    .await
}

/// The buyer approves a submitted milestone (ready for release) or rejects
/// it with a reason (back to the seller).
#[tracing::instrument(name = "milestone.review", skip_all, fields(milestone_id = %id, user_id = %user.id, approve = approve))]
pub async fn review(
    db: &Database,
    user: &User,
    id: &str,
    approve: bool,
    reason: Option<&str>,
) -> Result<Milestone, OperationError> {
    if !approve && reason.is_none() {
        return Err(OperationError::Invalid(
            "reason is required to reject a milestone".into(),
        ));
    }
    let event = if approve {
        EventType::MilestoneApproved
    } else {
        EventType::MilestoneRejected
    };
    let reason = if approve { None } else { reason };
    transition(
        db,
        user,
        id,
        Step {
            event,
            verb: "review a milestone",
            inspection: None,
        },
        None,
        reason,
        |status, party| status.review(party, approve),
    )
    .await
}

/// What a party says when disputing a milestone.
pub struct DisputeStatement<'a> {
    pub reason: &'a str,
    pub evidence: Option<&'a str>,
}

/// The buyer or the seller disputes one milestone holding money: its clock
/// stops, its money stays held, the project's other milestones go on. The
/// other party may answer within `response_period`; if they do not, the
/// scheduler settles the dispute for the party who opened it
/// ([`super::escrow::settle_unanswered_dispute`]); if they do, an admin
/// resolves it.
#[tracing::instrument(name = "milestone.dispute", skip_all, fields(milestone_id = %id, user_id = %user.id))]
pub async fn dispute(
    db: &Database,
    user: &User,
    id: &str,
    statement: DisputeStatement<'_>,
    response_period: Duration,
) -> Result<Milestone, OperationError> {
    let mut tx = db.begin().await?;
    let (project, party, milestone) = locked_milestone(&mut tx, user, id).await?;
    project.status.check_active("dispute a milestone")?;
    milestone.status.open_dispute(party)?;
    let respond_by = timestamp::format(OffsetDateTime::now_utc() + response_period);
    let by = if party == Party::Buyer { "buyer" } else { "seller" };
    let dispute = projects::NewDispute {
        by,
        reason: statement.reason,
        evidence: statement.evidence,
        respond_by: &respond_by,
    };
    let Some(disputed) = projects::open_dispute(&mut tx, id, milestone.status, &dispute).await? else {
        return Err(conflict("the milestone changed meanwhile; reload it"));
    };
    tx.schedule(scheduler::DISPUTE_UNANSWERED, id, &respond_by);
    tx.emit(events::milestone(EventType::MilestoneDisputed, &project, &disputed));
    record_audit(
        &mut tx,
        user,
        EventType::MilestoneDisputed.as_str(),
        "milestone",
        id,
        json!({ "from": milestone.status.as_str(), "by": by, "respond_by": respond_by }),
    );
    tx.commit().await?;
    Ok(disputed)
}

/// The other party answers a milestone's dispute (once, before its
/// deadline): no default outcome any more, an admin resolves it.
#[tracing::instrument(name = "milestone.answer_dispute", skip_all, fields(milestone_id = %id, user_id = %user.id))]
pub async fn answer_dispute(db: &Database, user: &User, id: &str, response: &str) -> Result<Milestone, OperationError> {
    let mut tx = db.begin().await?;
    let (project, party, milestone) = locked_milestone(&mut tx, user, id).await?;
    milestone.status.check_disputed()?;
    let opened_by_buyer = milestone.disputed_by.as_deref() == Some("buyer");
    let other = if opened_by_buyer { Party::Seller } else { Party::Buyer };
    if party != other {
        return Err(OperationError::Forbidden(
            "only the other party answers a dispute".into(),
        ));
    }
    let late = milestone
        .dispute_respond_by
        .as_deref()
        .is_some_and(|by| by <= timestamp::now().as_str());
    if late {
        return Err(conflict("the time to answer this dispute has passed"));
    }
    let Some(answered) = projects::answer_dispute(&mut tx, id, response).await? else {
        return Err(conflict("this dispute has already been answered"));
    };
    tx.emit(events::milestone(
        EventType::MilestoneDisputeAnswered,
        &project,
        &answered,
    ));
    record_audit(
        &mut tx,
        user,
        EventType::MilestoneDisputeAnswered.as_str(),
        "milestone",
        id,
        json!({}),
    );
    tx.commit().await?;
    Ok(answered)
}

/// At most this many evidence files per disputed milestone.
pub const MAX_DISPUTE_FILES: usize = 10;

/// A party (or an admin) attaches a file to a milestone's open dispute. The
/// file is already checked (type by content, size) and sealed.
#[tracing::instrument(name = "milestone.dispute_file", skip_all, fields(milestone_id = %id, user_id = %user.id))]
pub async fn attach_evidence(
    db: &Database,
    user: &User,
    id: &str,
    content_type: &str,
    size_bytes: i64,
    sealed: &str,
) -> Result<DisputeFile, OperationError> {
    let mut tx = db.begin().await?;
    let (_, _, milestone) = locked_milestone(&mut tx, user, id).await?;
    milestone.status.check_disputed()?;
    if dispute_files::list(&mut tx, id).await?.len() >= MAX_DISPUTE_FILES {
        return Err(conflict(format!("a dispute holds at most {MAX_DISPUTE_FILES} files")));
    }
    let file = dispute_files::insert(
        &mut tx,
        &dispute_files::NewFile {
            milestone_id: id,
            uploaded_by: &user.id,
            content_type,
            size_bytes,
            sealed,
        },
    )
    .await?;
    record_audit(
        &mut tx,
        user,
        "milestone.dispute_file_added",
        "milestone",
        id,
        json!({ "file_id": file.id, "content_type": content_type, "size_bytes": size_bytes }),
    );
    tx.commit().await?;
    Ok(file)
}

/// The evidence files of a milestone the caller may see.
pub async fn evidence(db: &Database, user: &User, id: &str) -> Result<Vec<DisputeFile>, OperationError> {
    let mut conn = db.acquire().await?;
    let milestone = reload(&mut conn, id).await?;
    visible(&mut conn, user, &milestone.project_id)
        .await
        .map_err(|_| OperationError::NotFound("milestone"))?;
    Ok(dispute_files::list(&mut conn, id).await?)
}

/// One evidence file: its content type and sealed bytes.
pub async fn evidence_file(
    db: &Database,
    user: &User,
    id: &str,
    file_id: &str,
) -> Result<(String, String), OperationError> {
    let mut conn = db.acquire().await?;
    let milestone = reload(&mut conn, id).await?;
    visible(&mut conn, user, &milestone.project_id)
        .await
        .map_err(|_| OperationError::NotFound("milestone"))?;
    dispute_files::sealed(&mut conn, id, file_id)
        .await?
        .ok_or(OperationError::NotFound("file"))
}

/// An admin settles one disputed milestone
/// ([`super::escrow::resolve_milestone_dispute`]) in its own transaction.
pub async fn resolve_dispute(
    db: &Database,
    admin: &User,
    id: &str,
    resolution: super::escrow::Resolution,
    notes: Option<&str>,
) -> Result<(Milestone, Vec<crate::store::escrow::EscrowTransaction>), OperationError> {
    let mut tx = db.begin().await?;
    let resolved = super::escrow::resolve_milestone_dispute(&mut tx, admin, id, resolution, notes).await?;
    tx.commit().await?;
    Ok(resolved)
}
