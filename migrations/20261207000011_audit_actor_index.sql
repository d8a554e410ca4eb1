-- The admin's audit query filters by actor, newest first (issue 16).
create index audit_events_actor on audit_events (actor_id, occurred_at);
