//! The kinds of scheduled work and how a run can end (the closed sets the
//! `scheduled_jobs` table and its metrics use; the work is in
//! `operations::scheduler`).

/// Release a submitted milestone whose buyer did not answer in time
/// (target: the milestone).
pub const INSPECTION_ELAPSED: &str = "milestone.inspection_elapsed";
/// Cancel a project not fully funded by its deadline (target: the project).
pub const FUNDING_DEADLINE: &str = "project.funding_deadline";
/// Settle a milestone's dispute the other party did not answer in time, for
/// the party who opened it (target: the milestone).
pub const DISPUTE_UNANSWERED: &str = "milestone.dispute_unanswered";
/// Announce a milestone still undelivered at its due date (target: the
/// milestone).
pub const MILESTONE_DUE: &str = "milestone.due_date";
pub const KINDS: [&str; 4] = [INSPECTION_ELAPSED, FUNDING_DEADLINE, DISPUTE_UNANSWERED, MILESTONE_DUE];
/// `done`: the work happened; `obsolete`: nothing was left to do; `failed`:
/// the attempt failed and will be retried.
pub const OUTCOMES: [&str; 3] = ["done", "obsolete", "failed"];
