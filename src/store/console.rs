//! Console sessions and password-reset links (see the migration): rows keyed
//! by the SHA-256 of a secret the server handed out once.

use super::users::User;
use super::{DbHandle, StoreError, timestamp};

/// A live console session and its admin.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf_token: String,
    pub last_seen_at: String,
}

pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user: &'a User,
    pub csrf_token: &'a str,
    pub expires_at: &'a str,
}

/// Stores a new session, and forgets every session past its absolute
/// expiry (so the table holds only live and recently idle ones).
pub async fn open_session(db: &mut impl DbHandle, new: NewSession<'_>) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    let now = timestamp::now();
    obs.run(
        "console_sessions.delete_expired",
        sqlx::query("delete from console_sessions where expires_at <= $1")
            .bind(&now)
            .execute(&mut *conn),
    )
    .await?;
    obs.run(
        "console_sessions.insert",
        sqlx::query(
            "insert into console_sessions (token_hash, user_id, token_version, csrf_token, created_at, last_seen_at, expires_at) \
             values ($1, $2, $3, $4, $5, $5, $6)",
        )
        .bind(new.token_hash)
        .bind(&new.user.id)
        .bind(new.user.token_version)
        .bind(new.csrf_token)
        .bind(now)
        .bind(new.expires_at)
        .execute(conn),
    )
    .await?;
    Ok(())
}

/// The session whose token hashes to `token_hash`, if it is still valid: not
/// past its absolute expiry, seen since `idle_since`, and its user still
/// active on the same token version. (Whether the user is an admin is the
/// caller's check: a session that is not an admin's is refused, not
/// forgotten.)
pub async fn find_session(
    db: &mut impl DbHandle,
    token_hash: &str,
    idle_since: &str,
) -> Result<Option<Session>, StoreError> {
    let (conn, obs) = db.parts();
    let row: Option<(String, String, String)> = obs
        .run(
            "console_sessions.find",
            sqlx::query_as(
                "select s.user_id, s.csrf_token, s.last_seen_at from console_sessions s \
                 join users u on u.id = s.user_id \
                 where s.token_hash = $1 and s.expires_at > $2 and s.last_seen_at > $3 \
                 and u.active = 1 and u.token_version = s.token_version",
            )
            .bind(token_hash)
            .bind(timestamp::now())
            .bind(idle_since)
            .fetch_optional(&mut *conn),
        )
        .await?;
    let Some((user_id, csrf_token, last_seen_at)) = row else {
        return Ok(None);
    };
    let Some(user) = super::users::find_by_id(db, &user_id).await? else {
        return Ok(None);
    };
    Ok(Some(Session {
        user,
        csrf_token,
        last_seen_at,
    }))
}

/// Notes activity on a session (the idle timeout counts from here).
pub async fn touch_session(db: &mut impl DbHandle, token_hash: &str) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "console_sessions.touch",
        sqlx::query("update console_sessions set last_seen_at = $2 where token_hash = $1")
            .bind(token_hash)
            .bind(timestamp::now())
            .execute(conn),
    )
    .await?;
    Ok(())
}

/// Ends a session (log out).
pub async fn close_session(db: &mut impl DbHandle, token_hash: &str) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "console_sessions.delete",
        sqlx::query("delete from console_sessions where token_hash = $1")
            .bind(token_hash)
            .execute(conn),
    )
    .await?;
    Ok(())
}

pub struct NewReset<'a> {
    pub token_hash: &'a str,
    pub user_id: &'a str,
    pub issued_by: &'a str,
    pub expires_at: &'a str,
}

pub async fn insert_reset(db: &mut impl DbHandle, new: NewReset<'_>) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "password_resets.insert",
        sqlx::query(
            "insert into password_resets (token_hash, user_id, issued_by, created_at, expires_at) \
             values ($1, $2, $3, $4, $5)",
        )
        .bind(new.token_hash)
        .bind(new.user_id)
        .bind(new.issued_by)
        .bind(timestamp::now())
        .bind(new.expires_at)
        .execute(conn),
    )
    .await?;
    Ok(())
}

/// The user a reset link is for, if it is unused and unexpired (a read; the
/// link is spent by [`spend_reset`]).
pub async fn reset_user(db: &mut impl DbHandle, token_hash: &str) -> Result<Option<String>, StoreError> {
    let (conn, obs) = db.parts();
    let row: Option<(String,)> = obs
        .run(
            "password_resets.find",
            sqlx::query_as(
                "select user_id from password_resets where token_hash = $1 and used_at is null and expires_at > $2",
            )
            .bind(token_hash)
            .bind(timestamp::now())
            .fetch_optional(conn),
        )
        .await?;
    Ok(row.map(|(user_id,)| user_id))
}

/// Spends a reset link: true for the one caller that finds it unused and
/// unexpired; every later or concurrent attempt gets false.
pub async fn spend_reset(db: &mut impl DbHandle, token_hash: &str, user_id: &str) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let now = timestamp::now();
    let result = obs
        .run(
            "password_resets.spend",
            sqlx::query(
                "update password_resets set used_at = $3 \
                 where token_hash = $1 and user_id = $2 and used_at is null and expires_at > $3",
            )
            .bind(token_hash)
            .bind(user_id)
            .bind(now)
            .execute(conn),
        )
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Voids a user's unused reset links (a newer one replaces them).
pub async fn void_resets(db: &mut impl DbHandle, user_id: &str) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    let now = timestamp::now();
    obs.run(
        "password_resets.void",
        sqlx::query("update password_resets set used_at = $2 where user_id = $1 and used_at is null")
            .bind(user_id)
            .bind(now)
            .execute(conn),
    )
    .await?;
    Ok(())
}
