-- Consecutive failed password checks, keyed by what was attempted
-- (`login:<email>` for logins — known or not, so a lockout reveals nothing
-- about which emails have accounts — and `password:<user id>` for password
-- changes). After a few failures each further one doubles the lockout; a
-- success deletes the row. Kept in the database so every replica agrees.
create table login_failures (
    key          text primary key,
    failures     bigint not null default 0 check (failures >= 0),
    locked_until text,
    updated_at   text not null
);
