-- The append-only audit trail: every state change worth answering for
-- (who, what, to what, when, under which request). Rows are only ever
-- inserted; corrections are new events. Portable across SQLite and
-- PostgreSQL: ids and timestamps are text (see src/store/mod.rs).
create table audit_events (
    id          text primary key,
    occurred_at text not null,
    actor_id    text,
    action      text not null,
    target_type text not null,
    target_id   text,
    request_id  text,
    details     text not null default '{}'
);

create index audit_events_target on audit_events (target_type, target_id);
create index audit_events_occurred_at on audit_events (occurred_at);
