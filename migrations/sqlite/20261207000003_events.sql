-- The event log (an outbox): see migrations/postgres/ for the why. SQLite's
-- counter is the rowid: `seq integer primary key` always grows, and the
-- single writer orders it as events happened.
create table events (
    seq             integer primary key,
    id              text not null unique,
    type            text not null,
    created_at      text not null,
    user_id         text,
    counterparty_id text,
    project_id      text,
    subject_type    text not null,
    subject_id      text not null,
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
