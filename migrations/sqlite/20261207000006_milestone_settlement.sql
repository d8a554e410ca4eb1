-- Partial releases and refunds, and disputes over one milestone: what each
-- side has received, the dispute's statements and its response deadline, and
-- two statuses (`disputed`; `split`: settled with money to both sides).
-- SQLite cannot change a CHECK constraint, so the table is rebuilt inside
-- the migration's transaction, its foreign keys checked at the commit.
pragma defer_foreign_keys = on;

create table milestones_rebuilt (
    id                        text primary key,
    project_id                text not null references projects (id),
    position                  bigint not null,
    title                     text not null,
    description               text,
    amount                    bigint not null check (amount > 0),
    status                    text not null check (status in ('pending', 'funded', 'submitted', 'approved', 'released',
                                                              'rejected', 'refunded', 'disputed', 'split')),
    rejection_reason          text,
    submission_note           text,
    created_at                text not null,
    updated_at                text not null,
    inspection_period_seconds bigint
        check (inspection_period_seconds is null or inspection_period_seconds between 1 and 7776000),
    inspection_deadline       text,
    released_amount           bigint not null default 0,
    refunded_amount           bigint not null default 0,
    -- 'buyer' or 'seller': who opened the dispute.
    disputed_by               text,
    dispute_reason            text,
    dispute_evidence          text,
    dispute_response          text,
    -- Until then the other party may answer; if they do not, the dispute is
    -- settled for the party who opened it.
    dispute_respond_by        text,
    check (released_amount >= 0 and refunded_amount >= 0 and released_amount + refunded_amount <= amount)
);
-- Copied out, the old table dropped, the new one renamed, then filled: the
-- children of the dropped rows find their parents again as the rows are
-- inserted into the table they name, before the commit checks them.
create temp table milestones_copy as select * from milestones;
drop table milestones;
alter table milestones_rebuilt rename to milestones;
insert into milestones (id, project_id, position, title, description, amount, status, rejection_reason,
                        submission_note, created_at, updated_at, inspection_period_seconds, inspection_deadline,
                        released_amount, refunded_amount)
select id, project_id, position, title, description, amount, status, rejection_reason,
       submission_note, created_at, updated_at, inspection_period_seconds, inspection_deadline,
       -- Settled milestones went whole to one side (before this migration
       -- a project-level split marked each held milestone released).
       case when status = 'released' then amount else 0 end,
       case when status = 'refunded' then amount else 0 end
from milestones_copy;
drop table milestones_copy;
create index milestones_project on milestones (project_id, position);
