-- Escrow: projects, milestones, the double-entry ledger, the business
-- transactions clients see, idempotency keys and payment webhooks.
-- Money is bigint minor units everywhere; never floating point.

create table projects (
    id             text primary key,
    title          text not null,
    description    text,
    buyer_id       text not null references users (id),
    seller_id      text not null references users (id),
    currency       text not null,
    status         text not null check (status in ('draft', 'awaiting_seller', 'active', 'completed', 'cancelled', 'disputed')),
    dispute_reason text,
    created_at     text not null,
    updated_at     text not null,
    check (buyer_id <> seller_id)
);
create index projects_buyer on projects (buyer_id, created_at);
create index projects_seller on projects (seller_id, created_at);

create table milestones (
    id               text primary key,
    project_id       text not null references projects (id),
    position         bigint not null,
    title            text not null,
    description      text,
    amount           bigint not null check (amount > 0),
    status           text not null check (status in ('pending', 'funded', 'submitted', 'approved', 'released', 'rejected', 'refunded')),
    rejection_reason text,
    submission_note  text,
    created_at       text not null,
    updated_at       text not null
);
create index milestones_project on milestones (project_id, position);

-- Ledger accounts. `balance` = credits - debits, kept in the same
-- transaction as every transfer and proven against the transfers by
-- `amani ledger check`. Only the external gateway account (money outside
-- the platform) may go negative.
create table ledger_accounts (
    id         text primary key,
    kind       text not null check (kind in ('user_available', 'user_reserved', 'project_escrow', 'platform_fees', 'external_gateway')),
    -- The user or project the account belongs to; '' for platform accounts.
    owner_id   text not null,
    currency   text not null,
    balance    bigint not null default 0,
    created_at text not null,
    check (balance >= 0 or kind = 'external_gateway')
);
create unique index ledger_accounts_owner on ledger_accounts (kind, owner_id, currency);

-- Transfers are immutable: mistakes are corrected by new transfers.
create table ledger_transfers (
    id                    text primary key,
    kind                  text not null,
    debit_account_id      text not null references ledger_accounts (id),
    credit_account_id     text not null references ledger_accounts (id),
    amount                bigint not null check (amount > 0),
    currency              text not null,
    escrow_transaction_id text,
    created_at            text not null,
    check (debit_account_id <> credit_account_id)
);
create index ledger_transfers_debit on ledger_transfers (debit_account_id);
create index ledger_transfers_credit on ledger_transfers (credit_account_id);

-- What clients see as "escrow transactions": one row per business
-- operation (a hold, a release, a deposit …), with its ledger transfers.
create table escrow_transactions (
    id                text primary key,
    type              text not null check (type in ('deposit', 'hold', 'release', 'refund', 'withdrawal')),
    status            text not null check (status in ('pending', 'completed', 'failed', 'reversed')),
    user_id           text not null references users (id),
    counterparty_id   text references users (id),
    project_id        text references projects (id),
    milestone_id      text references milestones (id),
    amount            bigint not null check (amount > 0),
    fee               bigint not null default 0 check (fee >= 0),
    currency          text not null,
    provider          text,
    gateway_reference text,
    notes             text,
    created_at        text not null,
    updated_at        text not null
);
create index escrow_transactions_user on escrow_transactions (user_id, created_at);
create index escrow_transactions_counterparty on escrow_transactions (counterparty_id, created_at);
create index escrow_transactions_project on escrow_transactions (project_id);

-- Idempotency keys, scoped to the user. The key is inserted in the same
-- transaction as the operation, so a concurrent duplicate waits for the
-- first to commit and then replays its response.
create table idempotency_keys (
    user_id         text not null,
    key             text not null,
    request_hash    text not null,
    response_status bigint not null,
    response_body   text not null,
    created_at      text not null,
    primary key (user_id, key)
);

-- Payment-provider webhooks, deduplicated by the provider's event id.
create table webhook_events (
    provider    text not null,
    event_id    text not null,
    event_type  text not null,
    reference   text,
    outcome     text not null,
    received_at text not null,
    primary key (provider, event_id)
);
