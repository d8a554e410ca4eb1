-- The operator console (issue 16): admin sessions and one-time password
-- reset links. Only a SHA-256 of each secret token is stored, so a copy of
-- the database opens no session and resets no password.

-- A console login. The cookie holds the token; the row is valid while the
-- user is an active admin whose token_version is still the one it was
-- created under (a password change or deactivation ends it), until
-- expires_at (absolute) and while last_seen_at is recent (idle timeout).
create table console_sessions (
    token_hash    text primary key,
    user_id       text not null references users (id),
    token_version bigint not null,
    -- Sent in every form; a post without it is refused.
    csrf_token    text not null,
    created_at    text not null,
    last_seen_at  text not null,
    expires_at    text not null
);
create index console_sessions_user on console_sessions (user_id);
create index console_sessions_expiry on console_sessions (expires_at);

-- A password reset an admin issued and hands over out of band. Used at most
-- once (used_at), and only before expires_at.
create table password_resets (
    token_hash text primary key,
    user_id    text not null references users (id),
    issued_by  text not null references users (id),
    created_at text not null,
    expires_at text not null,
    used_at    text
);
create index password_resets_user on password_resets (user_id);
-- The console lists disputed milestones, longest-running first.
create index milestones_disputed on milestones (status, updated_at);
