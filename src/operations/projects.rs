//! Projects: the agreement between a buyer and a seller. Created as a draft
//! by a client, sent to the freelancer, accepted, disputed, cancelled,
//! resolved by an admin. Only the parties (and admins) see a project;
//! anyone else is told it does not exist.

use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;

use super::escrow::{self, Resolution, locked_project, party, record_audit};
use super::{OperationError, conflict, events, scheduler};
use crate::domain::DomainError;
use crate::domain::account::Role;
use crate::domain::escrow::{Party, ProjectStatus};
use crate::domain::event::EventType;
use crate::domain::money::{Currency, MAX_PROJECT_TOTAL};
use crate::store::escrow::EscrowTransaction;
use crate::store::ledger::{self, Account};
use crate::store::projects::{self, Milestone, NewProject, Project};
use crate::store::users::{self, User};
use crate::store::{Database, DbHandle, Tx, timestamp};

pub use crate::domain::escrow::MAX_MILESTONES;

/// Refuses a set of milestone amounts whose total passes
/// [`MAX_PROJECT_TOTAL`] (summed with overflow checks).
pub(super) fn check_total(mut amounts: impl Iterator<Item = i64>) -> Result<(), OperationError> {
    let total = amounts.try_fold(0_i64, i64::checked_add);
    match total {
        Some(total) if total <= MAX_PROJECT_TOTAL => Ok(()),
        _ => Err(OperationError::Invalid(format!(
            "the milestones of a project may total at most {MAX_PROJECT_TOTAL} minor units"
        ))),
    }
}

/// A project with its milestones, as an operation leaves it.
#[derive(Debug, Clone)]
pub struct ProjectDetails {
    pub project: Project,
    pub milestones: Vec<Milestone>,
}

/// A milestone's terms, already checked (bounded text, a valid amount).
#[derive(Debug, Clone)]
pub struct MilestoneTerms {
    pub title: String,
    pub description: Option<String>,
    pub amount: i64,
    /// Checked against the platform's bounds by the caller.
    pub inspection_period_seconds: Option<i64>,
    /// A stored timestamp.
    pub due_date: Option<String>,
}

/// A draft to create, with text already bounded.
#[derive(Debug, Clone)]
pub struct NewProjectTerms {
    pub title: String,
    pub description: Option<String>,
    pub seller: SellerRef,
    pub currency: Currency,
    pub milestones: Vec<MilestoneTerms>,
    /// Checked against the platform's bounds by the caller.
    pub inspection_period_seconds: Option<i64>,
    /// A stored timestamp.
    pub due_date: Option<String>,
}

/// How a client names the freelancer: by id, or by the email they signed up
/// with (a client rarely knows an id). An unknown email gets the same answer
/// as a client's or an inactive account's email, so the check reveals no more
/// than sign-up's "email taken" already does: that an address is an active
/// freelancer's, to a signed-in client.
#[derive(Debug, Clone)]
pub enum SellerRef {
    Id(String),
    Email(crate::domain::account::Email),
}

pub(super) async fn details(db: &mut impl DbHandle, project: Project) -> Result<ProjectDetails, OperationError> {
    let milestones = projects::milestones(db, &project.id).await?;
    Ok(ProjectDetails { project, milestones })
}

async fn reload(db: &mut impl DbHandle, id: &str) -> Result<ProjectDetails, OperationError> {
    let project = projects::find(db, id)
        .await?
        .ok_or(OperationError::NotFound("project"))?;
    details(db, project).await
}

/// Loads a project the caller may see (unlocked: for reads).
pub(super) async fn visible(db: &mut impl DbHandle, user: &User, id: &str) -> Result<(Project, Party), OperationError> {
    let project = projects::find(db, id)
        .await?
        .ok_or(OperationError::NotFound("project"))?;
    let party = party(&project, user)?;
    Ok((project, party))
}

/// A client creates a draft with a freelancer and its milestones.
#[tracing::instrument(name = "project.create", skip_all, fields(user_id = %buyer.id))]
pub async fn create(db: &Database, buyer: &User, terms: NewProjectTerms) -> Result<ProjectDetails, OperationError> {
    if buyer.role != Role::Client {
        return Err(OperationError::Forbidden("only clients create projects".into()));
    }
    if terms.milestones.is_empty() || terms.milestones.len() > MAX_MILESTONES {
        return Err(OperationError::Invalid(format!(
            "milestones must list 1 to {MAX_MILESTONES} milestones"
        )));
    }
    check_total(terms.milestones.iter().map(|m| m.amount))?;
    let mut tx = db.begin().await?;
    let (found, field) = match &terms.seller {
        SellerRef::Id(id) => (users::find_by_id(&mut tx, id).await?, "seller_id"),
        SellerRef::Email(email) => (users::find_by_email(&mut tx, email).await?, "seller_email"),
    };
    let seller = found
        .filter(|s| s.active && s.role == Role::Freelancer)
        .ok_or_else(|| OperationError::Invalid(format!("{field} must name an active freelancer's account")))?;
    if seller.id == buyer.id {
        return Err(OperationError::Invalid("the seller cannot be the buyer".into()));
    }
    let id = projects::insert(
        &mut tx,
        NewProject {
            title: &terms.title,
            description: terms.description.as_deref(),
            buyer_id: &buyer.id,
            seller_id: &seller.id,
            currency: terms.currency,
            inspection_period_seconds: terms.inspection_period_seconds,
            due_date: terms.due_date.as_deref(),
        },
    )
    .await?;
    // Its escrow account exists from the start: the first hold only
    // changes balances.
    ledger::open(&mut tx, &Account::escrow(&id, terms.currency)).await?;
    for milestone in &terms.milestones {
        super::milestones::insert(&mut tx, &id, milestone).await?;
    }
    record_audit(
        &mut tx,
        buyer,
        "project.created",
        "project",
        &id,
        json!({ "seller_id": seller.id }),
    );
    let created = reload(&mut tx, &id).await?;
    tx.emit(events::project(EventType::ProjectCreated, &created.project));
    tx.commit().await?;
    Ok(created)
}

/// The caller's projects (as buyer or seller; every project for admins),
/// newest first, with the total count when paging by number: three
/// statements whatever the page (the page, the count, the page's
/// milestones). `window.after` is a cursor:
/// a project in this list, whose successors the page starts with; one the
/// caller cannot see is refused rather than answered with an empty page.
pub async fn list(
    db: &Database,
    user: &User,
    status: Option<ProjectStatus>,
    window: projects::Window<'_>,
) -> Result<(Vec<ProjectDetails>, Option<i64>), OperationError> {
    let whose = match user.role {
        Role::Admin => projects::Whose::Everyone,
        Role::Client => projects::Whose::Buyer(&user.id),
        Role::Freelancer => projects::Whose::Seller(&user.id),
    };
    let mut conn = db.acquire().await?;
    if let Some(after) = window.after {
        let visible = projects::find(&mut conn, after)
            .await?
            .is_some_and(|p| party(&p, user).is_ok());
        if !visible {
            return Err(OperationError::Invalid(
                "after must be the id of a project in this list (the previous page's next_cursor)".into(),
            ));
        }
    }
    let (items, total) = projects::list(&mut conn, whose, status, window).await?;
    let ids: Vec<&str> = items.iter().map(|p| p.id.as_str()).collect();
    // Grouped by project; each group stays in position order.
    let mut by_project: std::collections::HashMap<String, Vec<Milestone>> = std::collections::HashMap::new();
    for milestone in projects::milestones_of(&mut conn, &ids).await? {
        by_project
            .entry(milestone.project_id.clone())
            .or_default()
            .push(milestone);
    }
    let found = items
        .into_iter()
        .map(|project| {
            let milestones = by_project.remove(&project.id).unwrap_or_default();
            ProjectDetails { project, milestones }
        })
        .collect();
    Ok((found, total))
}

pub async fn get(db: &Database, user: &User, id: &str) -> Result<ProjectDetails, OperationError> {
    let mut conn = db.acquire().await?;
    let (project, _) = visible(&mut conn, user, id).await?;
    details(&mut conn, project).await
}

/// The buyer edits a draft's title or description.
#[tracing::instrument(name = "project.update", skip_all, fields(project_id = %id, user_id = %user.id))]
pub async fn update(
    db: &Database,
    user: &User,
    id: &str,
    title: Option<&str>,
    description: Option<&str>,
) -> Result<ProjectDetails, OperationError> {
    let mut tx = db.begin().await?;
    let (project, party) = locked_project(&mut tx, user, id).await?;
    if party != Party::Buyer {
        return Err(OperationError::Forbidden("only the buyer edits the project".into()));
    }
    project.status.check_editable()?;
    projects::update_terms(&mut tx, id, title, description).await?;
    let updated = reload(&mut tx, id).await?;
    tx.commit().await?;
    Ok(updated)
}

/// The buyer deletes a draft.
#[tracing::instrument(name = "project.delete", skip_all, fields(project_id = %id, user_id = %user.id))]
pub async fn delete(db: &Database, user: &User, id: &str) -> Result<(), OperationError> {
    let mut tx = db.begin().await?;
    let (project, party) = locked_project(&mut tx, user, id).await?;
    if party != Party::Buyer {
        return Err(OperationError::Forbidden("only the buyer deletes the project".into()));
    }
    project.status.check_editable()?;
    projects::delete_draft(&mut tx, id).await?;
    record_audit(&mut tx, user, "project.deleted", "project", id, json!({}));
    tx.commit().await?;
    Ok(())
}

/// Applies a status transition the domain computes from the current state.
/// `funding_deadline`: the project must be fully funded this long from now
/// (set when it is sent), or the scheduler expires it.
async fn transition(
    db: &Database,
    user: &User,
    id: &str,
    event: EventType,
    reason: Option<&str>,
    funding_deadline: Option<Duration>,
    next: impl Fn(&Project, Party) -> Result<ProjectStatus, DomainError>,
) -> Result<ProjectDetails, OperationError> {
    let mut tx = db.begin().await?;
    let (project, party) = locked_project(&mut tx, user, id).await?;
    let to = next(&project, party)?;
    let Some(mut moved) = projects::set_status(&mut tx, id, project.status, to, reason).await? else {
        return Err(conflict("the project changed meanwhile; reload it"));
    };
    if to == ProjectStatus::Active {
        // From now on the milestones' due dates are watched (a draft's
        // could still change).
        for milestone in projects::milestones(&mut tx, id).await? {
            if let Some(due) = &milestone.due_date {
                tx.schedule(scheduler::MILESTONE_DUE, &milestone.id, due);
            }
        }
    }
    if let Some(after) = funding_deadline {
        let deadline = timestamp::format(OffsetDateTime::now_utc() + after);
        projects::set_funding_deadline(&mut tx, id, &deadline).await?;
        tx.schedule(scheduler::FUNDING_DEADLINE, id, &deadline);
        moved.funding_deadline = Some(deadline);
    }
    tx.emit(events::project(event, &moved));
    record_audit(
        &mut tx,
        user,
        event.as_str(),
        "project",
        id,
        json!({ "from": project.status.as_str(), "to": to.as_str() }),
    );
    let changed = reload(&mut tx, id).await?;
    tx.commit().await?;
    Ok(changed)
}

/// The buyer sends the draft to the seller for acceptance. The project
/// must be accepted and fully funded within `funding_deadline`, or the
/// scheduler cancels it ([`super::escrow::expire_unfunded`]).
#[tracing::instrument(name = "project.send", skip_all, fields(project_id = %id, user_id = %user.id))]
pub async fn send(
    db: &Database,
    user: &User,
    id: &str,
    funding_deadline: Duration,
) -> Result<ProjectDetails, OperationError> {
    transition(
        db,
        user,
        id,
        EventType::ProjectSent,
        None,
        Some(funding_deadline),
        |p, party| p.status.send(party),
    )
    .await
}

/// The seller accepts the terms; the buyer can then fund milestones.
#[tracing::instrument(name = "project.accept", skip_all, fields(project_id = %id, user_id = %user.id))]
pub async fn accept(db: &Database, user: &User, id: &str) -> Result<ProjectDetails, OperationError> {
    transition(db, user, id, EventType::ProjectAccepted, None, None, |p, party| {
        p.status.accept(party)
    })
    .await
}

/// Either party opens a dispute on an active project; money stays held
/// until an admin resolves it.
#[tracing::instrument(name = "project.dispute", skip_all, fields(project_id = %id, user_id = %user.id))]
pub async fn dispute(db: &Database, user: &User, id: &str, reason: &str) -> Result<ProjectDetails, OperationError> {
    transition(
        db,
        user,
        id,
        EventType::ProjectDisputed,
        Some(reason),
        None,
        |p, party| {
            if party == Party::Admin {
                return Err(DomainError::conflict("a dispute is opened by the buyer or the seller"));
            }
            p.status.open_dispute()
        },
    )
    .await
}

/// Runs an escrow movement over a whole project in one transaction and
/// returns the project after it.
async fn with_project_money(
    db: &Database,
    id: &str,
    movement: impl AsyncFnOnce(&mut Tx) -> Result<Vec<EscrowTransaction>, OperationError>,
) -> Result<(ProjectDetails, Vec<EscrowTransaction>), OperationError> {
    let mut tx = db.begin().await?;
    let moved = movement(&mut tx).await?;
    let project = reload(&mut tx, id).await?;
    tx.commit().await?;
    Ok((project, moved))
}

/// Either party cancels: freely before acceptance; once active only while
/// no work has been delivered, and held money goes back to the buyer.
pub async fn cancel(
    db: &Database,
    user: &User,
    id: &str,
) -> Result<(ProjectDetails, Vec<EscrowTransaction>), OperationError> {
    with_project_money(db, id, async |tx| escrow::cancel(tx, user, id).await).await
}

/// An admin settles a disputed project's held money; the project completes.
pub async fn resolve(
    db: &Database,
    admin: &User,
    id: &str,
    resolution: Resolution,
    notes: Option<&str>,
) -> Result<(ProjectDetails, Vec<EscrowTransaction>), OperationError> {
    with_project_money(db, id, async |tx| {
        escrow::resolve_dispute(tx, admin, id, resolution, notes).await
    })
    .await
}
