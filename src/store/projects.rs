//! Projects and their milestones.

use sqlx::FromRow;
use uuid::Uuid;

use super::{DbHandle, Engine, StoreError, timestamp};
use crate::domain::escrow::{MilestoneStatus, ProjectStatus};
use crate::domain::money::Currency;

/// A project row (also an event's `data`, without its milestones).
#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Project {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub buyer_id: String,
    pub seller_id: String,
    pub currency: Currency,
    pub status: ProjectStatus,
    pub dispute_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The project's own inspection period (else the platform's).
    pub inspection_period_seconds: Option<i64>,
    /// When the project is cancelled if it is still not fully funded.
    pub funding_deadline: Option<String>,
    /// When the buyer wants it done (informational).
    pub due_date: Option<String>,
}

#[derive(Debug, Clone, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct Milestone {
    pub id: String,
    pub project_id: String,
    pub position: i64,
    pub title: String,
    pub description: Option<String>,
    pub amount: i64,
    pub status: MilestoneStatus,
    pub rejection_reason: Option<String>,
    pub submission_note: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The milestone's own inspection period (else its project's).
    pub inspection_period_seconds: Option<i64>,
    /// While submitted: when the submission is approved and released if the
    /// buyer has not answered.
    pub inspection_deadline: Option<String>,
    /// Paid to the seller so far (minor units).
    pub released_amount: i64,
    /// Given back to the buyer so far (minor units).
    pub refunded_amount: i64,
    /// `buyer` or `seller`, while or after a dispute over this milestone.
    pub disputed_by: Option<String>,
    pub dispute_reason: Option<String>,
    pub dispute_evidence: Option<String>,
    /// The other party's answer.
    pub dispute_response: Option<String>,
    /// Until then the other party may answer; unanswered, the dispute is
    /// settled for the party who opened it.
    pub dispute_respond_by: Option<String>,
    /// When the seller should have delivered it.
    pub due_date: Option<String>,
    /// When it was first found overdue (and its event written).
    pub overdue_at: Option<String>,
}

impl Milestone {
    /// Past its due date (`now`, a stored timestamp) and not delivered:
    /// still pending, funded, or rejected.
    pub fn is_overdue(&self, now: &str) -> bool {
        self.due_date.as_deref().is_some_and(|due| due <= now)
            && matches!(
                self.status,
                MilestoneStatus::Pending | MilestoneStatus::Funded | MilestoneStatus::Rejected
            )
    }

    /// What is still in escrow for this milestone.
    pub fn held(&self) -> i64 {
        if self.status.holds_funds() {
            self.amount - self.released_amount - self.refunded_amount
        } else {
            0
        }
    }
}

pub struct NewMilestone<'a> {
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub amount: i64,
    pub inspection_period_seconds: Option<i64>,
    pub due_date: Option<&'a str>,
}

pub struct NewProject<'a> {
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub buyer_id: &'a str,
    pub seller_id: &'a str,
    pub currency: Currency,
    pub inspection_period_seconds: Option<i64>,
    pub due_date: Option<&'a str>,
}

pub async fn insert(db: &mut impl DbHandle, new: NewProject<'_>) -> Result<String, StoreError> {
    let id = Uuid::now_v7().to_string();
    let now = timestamp::now();
    let (conn, obs) = db.parts();
    obs.run(
        "projects.insert",
        sqlx::query(
            "insert into projects (id, title, description, buyer_id, seller_id, currency, status, created_at, updated_at, \
             inspection_period_seconds, due_date) values ($1, $2, $3, $4, $5, $6, 'draft', $7, $7, $8, $9)",
        )
        .bind(&id)
        .bind(new.title)
        .bind(new.description)
        .bind(new.buyer_id)
        .bind(new.seller_id)
        .bind(new.currency.code())
        .bind(&now)
        .bind(new.inspection_period_seconds)
        .bind(new.due_date)
        .execute(conn),
    )
    .await?;
    count_new_project(db, new.buyer_id, new.seller_id).await?;
    Ok(id)
}

/// Counts a new project for its buyer and its seller (see the
/// `project_counts` migration). Rows are written in id order, so two
/// transactions touching the same users lock them in the same order.
async fn count_new_project(db: &mut impl DbHandle, buyer_id: &str, seller_id: &str) -> Result<(), StoreError> {
    let mut rows = [(buyer_id, 1_i64, 0_i64), (seller_id, 0, 1)];
    rows.sort_by(|a, b| a.0.cmp(b.0));
    let (conn, obs) = db.parts();
    obs.run(
        "project_counts.upsert",
        sqlx::query(
            "insert into project_counts (user_id, as_buyer, as_seller) values ($1, $2, $3), ($4, $5, $6) \
             on conflict (user_id) do update set as_buyer = project_counts.as_buyer + excluded.as_buyer, \
             as_seller = project_counts.as_seller + excluded.as_seller",
        )
        .bind(rows[0].0)
        .bind(rows[0].1)
        .bind(rows[0].2)
        .bind(rows[1].0)
        .bind(rows[1].1)
        .bind(rows[1].2)
        .execute(conn),
    )
    .await?;
    Ok(())
}

pub async fn insert_milestone(
    db: &mut impl DbHandle,
    project_id: &str,
    new: &NewMilestone<'_>,
) -> Result<String, StoreError> {
    let id = Uuid::now_v7().to_string();
    let now = timestamp::now();
    let (conn, obs) = db.parts();
    obs.run(
        "milestones.insert",
        sqlx::query(
            "insert into milestones (id, project_id, position, title, description, amount, status, created_at, updated_at, \
             inspection_period_seconds, due_date) \
             values ($1, $2, (select coalesce(max(position), 0) + 1 from milestones where project_id = $2), \
             $3, $4, $5, 'pending', $6, $6, $7, $8)",
        )
        .bind(&id)
        .bind(project_id)
        .bind(new.title)
        .bind(new.description)
        .bind(new.amount)
        .bind(&now)
        .bind(new.inspection_period_seconds)
        .bind(new.due_date)
        .execute(conn),
    )
    .await?;
    Ok(id)
}

/// Takes the project row's write lock for the rest of the transaction, so
/// money operations on one project run one at a time and always lock rows in
/// the same order (project, then accounts): no deadlocks, no lost updates.
/// Locks a project's row for the rest of the transaction and loads it, in
/// one statement (a no-op update takes the row lock on PostgreSQL; SQLite's
/// write transaction already excludes other writers). None if there is no
/// such project.
pub async fn lock(db: &mut impl DbHandle, id: &str) -> Result<Option<Project>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "projects.lock",
        sqlx::query_as("update projects set updated_at = updated_at where id = $1 returning *")
            .bind(id)
            .fetch_optional(conn),
    )
    .await
}

/// A milestone read with its project, for [`lock_with_milestone`]: the
/// milestone's columns as they are, the project's prefixed with `p_`.
#[derive(FromRow)]
struct MilestoneAndProject {
    #[sqlx(flatten)]
    milestone: Milestone,
    p_title: String,
    p_description: Option<String>,
    p_buyer_id: String,
    p_seller_id: String,
    p_currency: Currency,
    p_status: ProjectStatus,
    p_dispute_reason: Option<String>,
    p_created_at: String,
    p_updated_at: String,
    p_inspection_period_seconds: Option<i64>,
    p_funding_deadline: Option<String>,
    p_due_date: Option<String>,
}

impl MilestoneAndProject {
    fn split(self) -> (Project, Milestone) {
        let project = Project {
            id: self.milestone.project_id.clone(),
            title: self.p_title,
            description: self.p_description,
            buyer_id: self.p_buyer_id,
            seller_id: self.p_seller_id,
            currency: self.p_currency,
            status: self.p_status,
            dispute_reason: self.p_dispute_reason,
            created_at: self.p_created_at,
            updated_at: self.p_updated_at,
            inspection_period_seconds: self.p_inspection_period_seconds,
            funding_deadline: self.p_funding_deadline,
            due_date: self.p_due_date,
        };
        (project, self.milestone)
    }
}

/// Locks a milestone's project and loads it with the milestone, in one
/// statement; None if there is no such milestone (or, with `in_project`,
/// none in that project: another project's row is then not locked). The
/// same lock as
/// [`lock`] (operations on one project run one at a time); on PostgreSQL
/// the milestone's row is locked too, after the project's (the order every
/// operation takes them in), so it is read as the project's last holder
/// left it: a row a statement only reads would be as the statement's
/// snapshot saw it before it waited for the project. SQLite's write
/// transaction already excludes other writers.
pub async fn lock_with_milestone(
    db: &mut impl DbHandle,
    milestone_id: &str,
    in_project: Option<&str>,
) -> Result<Option<(Project, Milestone)>, StoreError> {
    const SELECT: &str = "select m.*, p.title as p_title, p.description as p_description, \
        p.buyer_id as p_buyer_id, p.seller_id as p_seller_id, p.currency as p_currency, \
        p.status as p_status, p.dispute_reason as p_dispute_reason, p.created_at as p_created_at, \
        p.updated_at as p_updated_at, p.inspection_period_seconds as p_inspection_period_seconds, \
        p.funding_deadline as p_funding_deadline, p.due_date as p_due_date \
        from milestones m join projects p on p.id = m.project_id where m.id = $1";
    let (conn, obs) = db.parts();
    let in_project_sql = if in_project.is_some() {
        " and m.project_id = $2"
    } else {
        ""
    };
    let lock_sql = match obs.engine() {
        // `for no key update`: the lock an update of other than key columns
        // takes (the one `lock` takes), which a new row referring to the
        // project does not wait for.
        Engine::Postgres => " for no key update of p, m",
        Engine::Sqlite => "",
    };
    let mut query =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("{SELECT}{in_project_sql}{lock_sql}"))).bind(milestone_id);
    if let Some(project_id) = in_project {
        query = query.bind(project_id);
    }
    let row: Option<MilestoneAndProject> = obs
        .run("projects.lock_with_milestone", query.fetch_optional(conn))
        .await?;
    Ok(row.map(MilestoneAndProject::split))
}

pub async fn find(db: &mut impl DbHandle, id: &str) -> Result<Option<Project>, StoreError> {
    let (conn, obs) = db.parts();
    let row: Option<Project> = obs
        .run(
            "projects.find",
            sqlx::query_as("select * from projects where id = $1")
                .bind(id)
                .fetch_optional(conn),
        )
        .await?;
    Ok(row)
}

/// A page of the projects `user_id` is a party to (every project when
/// `user_id` is None), newest first, optionally in one status.
/// Whose projects a list shows. A client is only ever a buyer and a
/// freelancer only ever a seller, so a user's list reads one indexed column.
#[derive(Debug, Clone, Copy)]
pub enum Whose<'a> {
    Everyone,
    Buyer(&'a str),
    Seller(&'a str),
}

/// Which slice of a list: `limit` rows after skipping `offset`, or after
/// the project `after` (a cursor: its id) in the list's order. A walk by
/// cursor is not counted: counting a long history on every page would cost
/// more than the page.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    pub limit: i64,
    pub offset: i64,
    pub after: Option<&'a str>,
}

/// A page of projects, newest first (`created_at desc, id desc`, which the
/// `projects_*_recent` indexes hold in order), and — paging by number — how
/// many the whole list has: for one user's unfiltered list, the count kept
/// in `project_counts` (one row, however long the history); otherwise
/// counted from the index. At most two statements whatever the page.
pub async fn list(
    db: &mut impl DbHandle,
    whose: Whose<'_>,
    status: Option<ProjectStatus>,
    window: Window<'_>,
) -> Result<(Vec<Project>, Option<i64>), StoreError> {
    let mut conditions = Vec::new();
    let mut binds: Vec<&str> = Vec::new();
    match whose {
        Whose::Everyone => {}
        Whose::Buyer(id) => {
            binds.push(id);
            conditions.push(format!("buyer_id = ${}", binds.len()));
        }
        Whose::Seller(id) => {
            binds.push(id);
            conditions.push(format!("seller_id = ${}", binds.len()));
        }
    }
    if let Some(status) = status {
        binds.push(status.as_str());
        conditions.push(format!("status = ${}", binds.len()));
    }
    let count_sql = format!("select count(*) from projects{}", where_clause(&conditions));
    let mut page_binds = binds.clone();
    if let Some(after) = window.after {
        page_binds.push(after);
        let n = page_binds.len();
        conditions.push(format!(
            "(created_at, id) < (select created_at, id from projects where id = ${n})"
        ));
    }
    // A deferred join: the inner query walks (and skips, for a deep
    // offset) only the index, which holds every column it reads; whole rows
    // are read for the page alone.
    let page_sql = format!(
        "select p.* from (select id, created_at from projects{} order by created_at desc, id desc \
         limit ${} offset ${}) page join projects p on p.id = page.id order by page.created_at desc, page.id desc",
        where_clause(&conditions),
        page_binds.len() + 1,
        page_binds.len() + 2
    );
    let (conn, obs) = db.parts();
    let mut page = sqlx::query_as(sqlx::AssertSqlSafe(page_sql));
    for value in &page_binds {
        page = page.bind(*value);
    }
    let rows: Vec<Project> = obs
        .run(
            "projects.list",
            page.bind(window.limit).bind(window.offset).fetch_all(conn),
        )
        .await?;
    if window.after.is_some() {
        return Ok((rows, None));
    }
    // One user's whole list: the count kept beside it.
    let kept = match (whose, status) {
        (Whose::Buyer(id), None) => Some(("select as_buyer from project_counts where user_id = $1", id)),
        (Whose::Seller(id), None) => Some(("select as_seller from project_counts where user_id = $1", id)),
        _ => None,
    };
    if let Some((sql, user_id)) = kept {
        let (conn, obs) = db.parts();
        let total: Option<(i64,)> = obs
            .run(
                "project_counts.find",
                sqlx::query_as(sql).bind(user_id).fetch_optional(conn),
            )
            .await?;
        return Ok((rows, Some(total.map_or(0, |(n,)| n))));
    }
    let (conn, obs) = db.parts();
    let mut count = sqlx::query_as(sqlx::AssertSqlSafe(count_sql));
    for value in &binds {
        count = count.bind(*value);
    }
    let (total,): (i64,) = obs.run("projects.count", count.fetch_one(conn)).await?;
    Ok((rows, Some(total)))
}

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" where {}", conditions.join(" and "))
    }
}

/// The milestones of several projects in one statement, in position order.
pub async fn milestones_of(db: &mut impl DbHandle, project_ids: &[&str]) -> Result<Vec<Milestone>, StoreError> {
    if project_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=project_ids.len()).map(|n| format!("${n}")).collect();
    let sql = format!(
        "select * from milestones where project_id in ({}) order by project_id, position",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
    for id in project_ids {
        query = query.bind(*id);
    }
    let (conn, obs) = db.parts();
    obs.run("milestones.list_many", query.fetch_all(conn)).await
}

pub async fn update_terms(
    db: &mut impl DbHandle,
    id: &str,
    title: Option<&str>,
    description: Option<&str>,
) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "projects.update",
        sqlx::query(
            "update projects set title = coalesce($2, title), description = coalesce($3, description), updated_at = $4 \
             where id = $1 and status = 'draft'",
        )
        .bind(id)
        .bind(title)
        .bind(description)
        .bind(timestamp::now())
        .execute(conn),
    )
    .await?;
    Ok(())
}

/// Moves a project from `from` to `to` and returns it; None if it was no
/// longer `from`.
pub async fn set_status(
    db: &mut impl DbHandle,
    id: &str,
    from: ProjectStatus,
    to: ProjectStatus,
    dispute_reason: Option<&str>,
) -> Result<Option<Project>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "projects.set_status",
        sqlx::query_as(
            "update projects set status = $3, dispute_reason = coalesce($4, dispute_reason), updated_at = $5 \
             where id = $1 and status = $2 returning *",
        )
        .bind(id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(dispute_reason)
        .bind(timestamp::now())
        .fetch_optional(conn),
    )
    .await
}

/// Completes an active project whose milestones are all settled (each
/// `released`, `refunded` or `split`: see `MilestoneStatus::is_settled`),
/// in one statement; None if it is not active or something is still held.
pub async fn complete_if_settled(db: &mut impl DbHandle, id: &str) -> Result<Option<Project>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "projects.complete_if_settled",
        sqlx::query_as(
            "update projects set status = 'completed', updated_at = $2 where id = $1 and status = 'active' \
             and exists (select 1 from milestones where project_id = $1) \
             and not exists (select 1 from milestones where project_id = $1 \
             and status not in ('released', 'refunded', 'split')) returning *",
        )
        .bind(id)
        .bind(timestamp::now())
        .fetch_optional(conn),
    )
    .await
}

/// Deletes a draft and its milestones; false if it is no longer a draft.
pub async fn delete_draft(db: &mut impl DbHandle, id: &str) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "milestones.delete_for_draft",
        sqlx::query(
            "delete from milestones where project_id = $1 and exists \
             (select 1 from projects where id = $1 and status = 'draft')",
        )
        .bind(id)
        .execute(conn),
    )
    .await?;
    let (conn, obs) = db.parts();
    let deleted: Option<(String, String)> = obs
        .run(
            "projects.delete_draft",
            sqlx::query_as("delete from projects where id = $1 and status = 'draft' returning buyer_id, seller_id")
                .bind(id)
                .fetch_optional(conn),
        )
        .await?;
    let Some((buyer_id, seller_id)) = deleted else {
        return Ok(false);
    };
    let (conn, obs) = db.parts();
    obs.run(
        "project_counts.decrement",
        sqlx::query(
            "update project_counts set \
             as_buyer = as_buyer - case when user_id = $1 then 1 else 0 end, \
             as_seller = as_seller - case when user_id = $2 then 1 else 0 end \
             where user_id in ($1, $2)",
        )
        .bind(&buyer_id)
        .bind(&seller_id)
        .execute(conn),
    )
    .await?;
    Ok(true)
}

pub async fn milestones(db: &mut impl DbHandle, project_id: &str) -> Result<Vec<Milestone>, StoreError> {
    let (conn, obs) = db.parts();
    let rows: Vec<Milestone> = obs
        .run(
            "milestones.list",
            sqlx::query_as("select * from milestones where project_id = $1 order by position")
                .bind(project_id)
                .fetch_all(conn),
        )
        .await?;
    Ok(rows)
}

/// Milestones in dispute now, the longest-running first (the console's
/// dispute list).
pub async fn disputed_milestones(db: &mut impl DbHandle, limit: i64) -> Result<Vec<Milestone>, StoreError> {
    let (conn, obs) = db.parts();
    let rows: Vec<Milestone> = obs
        .run(
            "milestones.disputed",
            sqlx::query_as("select * from milestones where status = 'disputed' order by updated_at, id limit $1")
                .bind(limit)
                .fetch_all(conn),
        )
        .await?;
    Ok(rows)
}

pub async fn find_milestone(db: &mut impl DbHandle, id: &str) -> Result<Option<Milestone>, StoreError> {
    let (conn, obs) = db.parts();
    let row: Option<Milestone> = obs
        .run(
            "milestones.find",
            sqlx::query_as("select * from milestones where id = $1")
                .bind(id)
                .fetch_optional(conn),
        )
        .await?;
    Ok(row)
}

pub async fn update_milestone(
    db: &mut impl DbHandle,
    id: &str,
    title: Option<&str>,
    description: Option<&str>,
    amount: Option<i64>,
    due_date: Option<&str>,
) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "milestones.update",
        sqlx::query(
            "update milestones set title = coalesce($2, title), description = coalesce($3, description), \
             amount = coalesce($4, amount), updated_at = $5, due_date = coalesce($6, due_date) where id = $1",
        )
        .bind(id)
        .bind(title)
        .bind(description)
        .bind(amount)
        .bind(timestamp::now())
        .bind(due_date)
        .execute(conn),
    )
    .await?;
    Ok(())
}

/// Moves a milestone from `from` to `to` (compare-and-set) and returns it
/// as it now is; None if it was no longer in `from`. `inspection_deadline`
/// is set with a submission and cleared (None) by every other change.
pub async fn set_milestone_status(
    db: &mut impl DbHandle,
    id: &str,
    from: MilestoneStatus,
    to: MilestoneStatus,
    note: Option<&str>,
    rejection_reason: Option<&str>,
    inspection_deadline: Option<&str>,
) -> Result<Option<Milestone>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "milestones.set_status",
        sqlx::query_as(
            "update milestones set status = $3, submission_note = coalesce($4, submission_note), \
             rejection_reason = $5, updated_at = $6, inspection_deadline = $7 where id = $1 and status = $2 returning *",
        )
        .bind(id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(note)
        .bind(rejection_reason)
        .bind(timestamp::now())
        .bind(inspection_deadline)
        .fetch_optional(conn),
    )
    .await
}

/// Sets when a project sent to its seller expires if not fully funded.
pub async fn set_funding_deadline(db: &mut impl DbHandle, id: &str, deadline: &str) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "projects.set_funding_deadline",
        sqlx::query("update projects set funding_deadline = $2 where id = $1")
            .bind(id)
            .bind(deadline)
            .execute(conn),
    )
    .await?;
    Ok(())
}

/// Moves `to_seller` and `to_buyer` of a milestone's escrow out (adding them
/// to what each side received) and sets its status, compare-and-set from
/// `from`; None if it changed meanwhile or the sums would pass its amount.
/// A change of status clears the inspection deadline.
pub async fn pay_out(
    db: &mut impl DbHandle,
    id: &str,
    from: MilestoneStatus,
    to: MilestoneStatus,
    to_seller: i64,
    to_buyer: i64,
) -> Result<Option<Milestone>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "milestones.pay_out",
        sqlx::query_as(
            "update milestones set status = $3, released_amount = released_amount + $4, \
             refunded_amount = refunded_amount + $5, updated_at = $6, \
             inspection_deadline = case when status = $3 then inspection_deadline else null end \
             where id = $1 and status = $2 and released_amount + refunded_amount + $4 + $5 <= amount returning *",
        )
        .bind(id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(to_seller)
        .bind(to_buyer)
        .bind(timestamp::now())
        .fetch_optional(conn),
    )
    .await
}

/// A dispute opened on one milestone.
pub struct NewDispute<'a> {
    pub by: &'a str,
    pub reason: &'a str,
    pub evidence: Option<&'a str>,
    pub respond_by: &'a str,
}

/// Marks a milestone disputed (compare-and-set from `from`); its inspection
/// clock stops.
pub async fn open_dispute(
    db: &mut impl DbHandle,
    id: &str,
    from: MilestoneStatus,
    dispute: &NewDispute<'_>,
) -> Result<Option<Milestone>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "milestones.open_dispute",
        sqlx::query_as(
            "update milestones set status = 'disputed', disputed_by = $3, dispute_reason = $4, dispute_evidence = $5, \
             dispute_response = null, dispute_respond_by = $6, inspection_deadline = null, updated_at = $7 \
             where id = $1 and status = $2 returning *",
        )
        .bind(id)
        .bind(from.as_str())
        .bind(dispute.by)
        .bind(dispute.reason)
        .bind(dispute.evidence)
        .bind(dispute.respond_by)
        .bind(timestamp::now())
        .fetch_optional(conn),
    )
    .await
}

/// Records the other party's answer to a milestone's dispute; None if it is
/// not disputed or already answered.
pub async fn answer_dispute(db: &mut impl DbHandle, id: &str, response: &str) -> Result<Option<Milestone>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "milestones.answer_dispute",
        sqlx::query_as(
            "update milestones set dispute_response = $2, updated_at = $3 \
             where id = $1 and status = 'disputed' and dispute_response is null returning *",
        )
        .bind(id)
        .bind(response)
        .bind(timestamp::now())
        .fetch_optional(conn),
    )
    .await
}

/// Marks a milestone overdue once: still undelivered past `due_date` (its
/// current due date) and not marked before. None otherwise.
pub async fn mark_overdue(db: &mut impl DbHandle, id: &str, due_date: &str) -> Result<Option<Milestone>, StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "milestones.mark_overdue",
        sqlx::query_as(
            "update milestones set overdue_at = $3 where id = $1 and due_date = $2 and overdue_at is null \
             and status in ('pending', 'funded', 'rejected') returning *",
        )
        .bind(id)
        .bind(due_date)
        .bind(timestamp::now())
        .fetch_optional(conn),
    )
    .await
}

#[cfg(test)]
mod tests {
    use crate::domain::escrow::MilestoneStatus;

    /// `complete_if_settled` names the settled statuses in SQL: the same
    /// ones as the domain's rule.
    #[test]
    fn the_settled_statuses_in_sql_are_the_domains() {
        let settled: Vec<&str> = MilestoneStatus::ALL
            .iter()
            .filter(|s| s.is_settled())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(settled, ["released", "refunded", "split"]);
    }
}
