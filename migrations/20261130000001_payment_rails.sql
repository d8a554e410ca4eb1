-- Payment rails: gateway operations in three steps (record pending, call the
-- gateway with no transaction open, settle by compare-and-set), payouts to
-- registered destinations, and reconciliation of what stays pending.
--
-- escrow_transactions gains:
-- - status 'review': the gateway reports money that does not match the
--   record (an under- or over-payment); nothing is credited until a person
--   decides;
-- - the checkout link (so a replay of the request can show it again);
-- - the payout destination a withdrawal pays to;
-- - why the gateway refused, and what it reported as received;
-- - a reconciliation lease, so that with several replicas one worker at a
--   time asks the gateway about a record.
-- SQLite cannot change a check constraint in place, so the table is rebuilt;
-- the same statements run on PostgreSQL. No other table references it.

create table escrow_transactions_next (
    id                text primary key,
    type              text not null check (type in ('deposit', 'hold', 'release', 'refund', 'withdrawal')),
    status            text not null check (status in ('pending', 'completed', 'failed', 'reversed', 'review')),
    user_id           text not null references users (id),
    counterparty_id   text references users (id),
    project_id        text references projects (id),
    milestone_id      text references milestones (id),
    -- One operation moves at most 10^15 minor units (domain::money::MAX_AMOUNT).
    amount            bigint not null check (amount > 0 and amount <= 1000000000000000),
    fee               bigint not null default 0 check (fee >= 0 and fee <= 1000000000000000),
    currency          text not null,
    provider          text,
    gateway_reference text,
    notes             text,
    created_at        text not null,
    updated_at        text not null,
    checkout_url      text,
    destination_id    text,
    failure_reason    text,
    amount_received   bigint check (amount_received >= 0 and amount_received <= 100000000000000000),
    lease_until       text,
    checked_at        text
);

insert into escrow_transactions_next (id, type, status, user_id, counterparty_id, project_id, milestone_id,
    amount, fee, currency, provider, gateway_reference, notes, created_at, updated_at)
select id, type, status, user_id, counterparty_id, project_id, milestone_id,
    amount, fee, currency, provider, gateway_reference, notes, created_at, updated_at
from escrow_transactions;

drop table escrow_transactions;
alter table escrow_transactions_next rename to escrow_transactions;

create index escrow_transactions_user on escrow_transactions (user_id, created_at);
create index escrow_transactions_counterparty on escrow_transactions (counterparty_id, created_at);
create index escrow_transactions_project on escrow_transactions (project_id);
-- Reconciliation reads the pending records, oldest first.
create index escrow_transactions_status on escrow_transactions (status, created_at);

-- Where a user's withdrawals go: a bank account or a mobile-money wallet,
-- with the holder's name as the gateway resolved it. Removal is a mark, not
-- a delete: past withdrawals keep pointing at the destination they paid.
create table payout_destinations (
    id                text primary key,
    user_id           text not null references users (id),
    kind              text not null check (kind in ('bank_account', 'mobile_money')),
    currency          text not null,
    country           text not null,
    -- The bank code (bank accounts) or the operator code (mobile money).
    institution_code  text not null,
    account_number    text not null,
    -- What the user typed, and what the gateway says the account is called.
    holder_name       text not null,
    resolved_name     text not null,
    created_at        text not null,
    removed_at        text
);
create index payout_destinations_user on payout_destinations (user_id, created_at);
