//! Users: accounts, their credentials and their state.

use sqlx::FromRow;
use uuid::Uuid;

use super::{DbHandle, StoreError, map_duplicate, timestamp};
use crate::domain::account::{Email, Role};

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub full_name: String,
    pub role: Role,
    pub phone_number: Option<String>,
    pub bio: Option<String>,
    pub active: bool,
    pub token_version: i64,
    pub created_at: String,
    pub updated_at: String,
    /// Whether the user had an approved KYC when loaded by id (`None` when
    /// loaded otherwise). An approval is final, so `Some(true)` stays true;
    /// see [`crate::store::kyc::is_verified_user`].
    pub kyc_verified: Option<bool>,
}

/// The stored row: `active` is 0/1 in both schemas (portable), a `bool`
/// in [`User`].
#[derive(FromRow)]
struct UserRow {
    id: String,
    email: String,
    password_hash: String,
    full_name: String,
    role: Role,
    phone_number: Option<String>,
    bio: Option<String>,
    active: i64,
    token_version: i64,
    created_at: String,
    updated_at: String,
    /// Only [`find_by_id`] selects it.
    #[sqlx(default)]
    kyc_verified: Option<i64>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> User {
        User {
            id: row.id,
            email: row.email,
            password_hash: row.password_hash,
            full_name: row.full_name,
            role: row.role,
            phone_number: row.phone_number,
            bio: row.bio,
            active: row.active == 1,
            token_version: row.token_version,
            created_at: row.created_at,
            updated_at: row.updated_at,
            kyc_verified: row.kyc_verified.map(|v| v == 1),
        }
    }
}

pub struct NewUser<'a> {
    pub email: &'a Email,
    pub password_hash: &'a str,
    pub full_name: &'a str,
    pub role: Role,
    pub phone_number: Option<&'a str>,
    pub bio: Option<&'a str>,
}

/// Creates a user; an existing email (in any letter case) is `Duplicate`.
pub async fn insert(db: &mut impl DbHandle, new: NewUser<'_>) -> Result<User, StoreError> {
    let id = Uuid::now_v7().to_string();
    let now = timestamp::now();
    let (conn, obs) = db.parts();
    let row: UserRow = obs
        .run(
        "users.insert",
        sqlx::query_as(
            "insert into users (id, email, password_hash, full_name, role, phone_number, bio, active, token_version, \
             created_at, updated_at) values ($1, $2, $3, $4, $5, $6, $7, 1, 0, $8, $8) returning *",
        )
        .bind(&id)
        .bind(new.email.as_str())
        .bind(new.password_hash)
        .bind(new.full_name)
        .bind(new.role)
        .bind(new.phone_number)
        .bind(new.bio)
        .bind(&now)
        .fetch_one(conn),
    )
    .await
    .map_err(map_duplicate("an account with this email"))?;
    Ok(row.into())
}

pub async fn find_by_email(db: &mut impl DbHandle, email: &Email) -> Result<Option<User>, StoreError> {
    let (conn, obs) = db.parts();
    let row: Option<UserRow> = obs
        .run(
            "users.find_by_email",
            sqlx::query_as("select * from users where email = $1")
                .bind(email.as_str())
                .fetch_optional(conn),
        )
        .await?;
    Ok(row.map(User::from))
}

pub async fn find_by_id(db: &mut impl DbHandle, id: &str) -> Result<Option<User>, StoreError> {
    let (conn, obs) = db.parts();
    let row: Option<UserRow> = obs
        .run(
            "users.find_by_id",
            sqlx::query_as(
                "select users.*, cast(case when exists (select 1 from kyc_submissions \
                 where user_id = users.id and status = 'approved') then 1 else 0 end as bigint) as kyc_verified \
                 from users where id = $1",
            )
            .bind(id)
            .fetch_optional(conn),
        )
        .await?;
    Ok(row.map(User::from))
}

/// The profile fields a user may change; `None` leaves a field as it is.
pub struct ProfileChange<'a> {
    pub full_name: Option<&'a str>,
    pub phone_number: Option<&'a str>,
    pub bio: Option<&'a str>,
}

pub async fn update_profile(db: &mut impl DbHandle, id: &str, change: ProfileChange<'_>) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "users.update_profile",
        sqlx::query(
            "update users set full_name = coalesce($2, full_name), phone_number = coalesce($3, phone_number), \
             bio = coalesce($4, bio), updated_at = $5 where id = $1",
        )
        .bind(id)
        .bind(change.full_name)
        .bind(change.phone_number)
        .bind(change.bio)
        .bind(timestamp::now())
        .execute(conn),
    )
    .await?;
    Ok(())
}

/// Replaces the password hash and invalidates every token issued before.
pub async fn set_password(db: &mut impl DbHandle, id: &str, password_hash: &str) -> Result<(), StoreError> {
    let (conn, obs) = db.parts();
    obs.run(
        "users.set_password",
        sqlx::query(
            "update users set password_hash = $2, token_version = token_version + 1, updated_at = $3 where id = $1",
        )
        .bind(id)
        .bind(password_hash)
        .bind(timestamp::now())
        .execute(conn),
    )
    .await?;
    Ok(())
}

/// Activates or deactivates a user; deactivation also ends its tokens.
pub async fn set_active(db: &mut impl DbHandle, id: &str, active: bool) -> Result<bool, StoreError> {
    let (conn, obs) = db.parts();
    let result = obs
        .run(
            "users.set_active",
            sqlx::query(
                "update users set active = $2, token_version = token_version + 1, updated_at = $3 where id = $1",
            )
            .bind(id)
            .bind(i64::from(active))
            .bind(timestamp::now())
            .execute(conn),
        )
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Accounts whose id is `query`, or whose email contains it (any case),
/// in email order; `after` is the id of the previous page's last account.
pub async fn search(
    db: &mut impl DbHandle,
    query: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<User>, StoreError> {
    let (conn, obs) = db.parts();
    // LIKE's own wildcards in the query match themselves.
    let escaped = query
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    let rows: Vec<UserRow> = obs
        .run(
            "users.search",
            sqlx::query_as(
                "select * from users where (id = $1 or email like $2 escape '\\') \
                 and ($3 is null or email > (select email from users where id = $3)) \
                 order by email limit $4",
            )
            .bind(query)
            .bind(format!("%{escaped}%"))
            .bind(after)
            .bind(limit)
            .fetch_all(conn),
        )
        .await?;
    Ok(rows.into_iter().map(User::from).collect())
}
