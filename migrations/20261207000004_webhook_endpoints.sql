-- Outbound webhooks (Standard Webhooks): where the marketplace wants events
-- sent, one delivery per event and endpoint, and every attempt made.

create table webhook_endpoints (
    id                   text primary key,
    url                  text not null,
    description          text,
    -- ',milestone.funded,escrow.released,' or '*' for every type: matched
    -- with `like` on both engines.
    event_types          text not null,
    -- The signing secret, sealed like KYC documents (src/auth/seal.rs).
    secret_sealed        text not null,
    -- The secret before the last rotation, still signed with until
    -- previous_expires_at, so receivers can switch without losing events.
    previous_sealed      text,
    previous_expires_at  text,
    -- enabled, failing (still tried) or disabled (by an admin, or after
    -- failing for WEBHOOK_DISABLE_AFTER_SECONDS).
    status               text not null,
    disabled_reason      text,
    consecutive_failures bigint not null default 0,
    failing_since        text,
    created_at           text not null,
    updated_at           text not null
);

-- One row per event and endpoint: its `webhook-id` is the event's id, the
-- same on every attempt, so receivers can drop what they already have.
create table webhook_deliveries (
    event_id         text not null,
    event_seq        bigint not null,
    endpoint_id      text not null,
    order_key        text not null,
    -- pending, delivered, failed (gave up after the last retry)
    status           text not null,
    attempts         bigint not null default 0,
    next_attempt_at  text not null,
    -- A worker's claim: no other worker sends it before this time.
    lease_until      text,
    last_status_code bigint,
    last_error       text,
    created_at       text not null,
    delivered_at     text,
    primary key (event_id, endpoint_id)
);

create index webhook_deliveries_due on webhook_deliveries (status, next_attempt_at);
-- Each project's (order key's) earliest pending delivery to an endpoint, in
-- one index range: what the worker may send next.
create index webhook_deliveries_order on webhook_deliveries (endpoint_id, status, order_key, event_seq);

create table webhook_attempts (
    id            text primary key,
    endpoint_id   text not null,
    event_id      text not null,
    attempted_at  text not null,
    -- delivered, http_error, timeout, connection_error, refused (the
    -- address is not allowed)
    outcome       text not null,
    status_code   bigint,
    latency_ms    bigint not null,
    -- The first 1 KiB of the answer, or the error.
    response_body text
);

create index webhook_attempts_endpoint on webhook_attempts (endpoint_id, attempted_at);
create index webhook_attempts_attempted_at on webhook_attempts (attempted_at);
