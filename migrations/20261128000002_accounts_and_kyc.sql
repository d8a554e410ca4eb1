-- Accounts and identity verification. Integers are bigint and flags are
-- 0/1 bigints so that one decoding works on SQLite and PostgreSQL alike.
create table users (
    id            text primary key,
    -- Normalised (trimmed, lowercased) by the application: uniqueness is
    -- case-insensitive because the stored form is.
    email         text not null,
    password_hash text not null,
    full_name     text not null,
    role          text not null check (role in ('client', 'freelancer', 'admin')),
    phone_number  text,
    bio           text,
    active        bigint not null default 1 check (active in (0, 1)),
    -- Bumped on password change and deactivation; tokens carry the version
    -- they were issued under, so older tokens stop working at once.
    token_version bigint not null default 0,
    created_at    text not null,
    updated_at    text not null
);
create unique index users_email on users (email);

-- Documents live apart from the submissions that list them, sealed, and are
-- read only when an admin asks for one.
create table kyc_documents (
    id           text primary key,
    content_type text not null,
    size_bytes   bigint not null,
    sealed       text not null,
    created_at   text not null
);

create table kyc_submissions (
    id               text primary key,
    user_id          text not null references users (id),
    kind             text not null check (kind in ('kyc', 'kyb')),
    -- The ID number, sealed (AES-256-GCM); only its last four are shown.
    id_number_sealed text not null,
    id_number_last4  text not null,
    document_id      text references kyc_documents (id),
    status           text not null check (status in ('pending', 'approved', 'rejected')),
    rejection_reason text,
    reviewed_by      text references users (id),
    reviewed_at      text,
    resubmission_of  text references kyc_submissions (id),
    created_at       text not null
);
create index kyc_submissions_user on kyc_submissions (user_id, created_at);
create index kyc_submissions_status on kyc_submissions (status, created_at);
-- One pending submission per user at a time, enforced by the database.
create unique index kyc_one_pending_per_user on kyc_submissions (user_id) where status = 'pending';
