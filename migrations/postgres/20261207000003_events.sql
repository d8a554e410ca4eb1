-- The event log (an outbox): one row per state change a party or the
-- marketplace cares about, inserted in the transaction of the change, so an
-- event exists if and only if the change committed. Rows are never updated
-- except `dispatched_at`, set once webhook deliveries have been created.
-- `seq` is the database's own counter: events of one project are written
-- under the project's row lock, so `seq` orders them as they happened
-- whatever the replicas' clocks say. (SQLite's version of this step,
-- migrations/sqlite/, makes `seq` its rowid.)
create table events (
    seq             bigint generated always as identity primary key,
    id              text not null unique,
    type            text not null,
    created_at      text not null,
    -- Who may see it (the parties) and what it concerns.
    user_id         text,
    counterparty_id text,
    project_id      text,
    subject_type    text not null,
    subject_id      text not null,
    -- Deliveries of events with one key are made in `seq` order.
    order_key       text not null,
    data            text not null,
    request_id      text,
    traceparent     text,
    dispatched_at   text
);

create index events_undispatched on events (seq) where dispatched_at is null;
create index events_user on events (user_id, seq);
create index events_counterparty on events (counterparty_id, seq);
create index events_project on events (project_id, seq);
create index events_created_at on events (created_at);
