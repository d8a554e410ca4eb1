-- Time in escrow: inspection periods, funding deadlines, and the scheduler
-- that acts on them.

-- Seconds the buyer has to review a submission before it is approved and
-- released by the system. NULL: the platform's INSPECTION_PERIOD_SECONDS
-- (a milestone's own value wins over its project's).
alter table projects add column inspection_period_seconds bigint
    check (inspection_period_seconds is null or inspection_period_seconds between 1 and 7776000);
-- When a project sent to the seller is cancelled if it is still not fully
-- funded (set when the buyer sends it; PROJECT_FUNDING_DEADLINE_SECONDS).
alter table projects add column funding_deadline text;

alter table milestones add column inspection_period_seconds bigint
    check (inspection_period_seconds is null or inspection_period_seconds between 1 and 7776000);
-- Set while a submission awaits the buyer's review; cleared by any other
-- change of status (approval, rejection, dispute, refund).
alter table milestones add column inspection_deadline text;

-- Timed work: one row per thing to do at a time. A replica claims a due
-- job with a lease (compare-and-set on lease_until), and marks it done in
-- the same transaction as the work itself, so the work happens once however
-- many replicas run and whenever one dies.
create table scheduled_jobs (
    id          text primary key,
    -- milestone.inspection_elapsed, project.funding_deadline
    kind        text not null,
    target_id   text not null,
    due_at      text not null,
    -- A replica is working on it until then (or, after a failed attempt,
    -- it is retried then).
    lease_until text,
    attempts    bigint not null default 0,
    last_error  text,
    done_at     text,
    -- done (the work happened) or obsolete (nothing left to do: the buyer
    -- answered in time, the project was funded …).
    outcome     text,
    created_at  text not null
);
create unique index scheduled_jobs_once on scheduled_jobs (kind, target_id, due_at);
create index scheduled_jobs_due on scheduled_jobs (due_at) where done_at is null;
