//! Accounts: sign up, log in, the profile, the password, deactivation,
//! password-reset links.
//!
//! Password hashing is slow on purpose and runs with no pooled connection
//! held: a burst of logins must not starve the pool for everyone else. At
//! most one hash per core runs at once (`auth::passwords`); a request that
//! cannot get a slot in time is told to retry (503). Repeated failed
//! password checks lock the email (login) or the account (password change)
//! out for a doubling time.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::{OperationError, conflict};
use crate::auth::tokens::TokenKeys;
use crate::auth::{passwords, secret};
use crate::domain::account::{Email, Role, check_password_policy, lockout_after};
use crate::store::audit::{self, AuditEvent};
use crate::store::users::{self, NewUser, ProfileChange, User};
use crate::store::{Database, Tx, console, login_failures};
use crate::telemetry::metrics::Metrics;

/// What account operations need.
pub struct Accounts<'a> {
    pub db: &'a Database,
    pub tokens: &'a TokenKeys,
    pub metrics: &'a Metrics,
}

/// A sign-up, with every field already parsed and bounded.
pub struct NewAccount {
    pub email: Email,
    pub password: String,
    pub full_name: String,
    pub role: Role,
    pub phone_number: Option<String>,
    pub bio: Option<String>,
}

/// A password-reset link's secret, when it stops working, and whose it is.
pub struct IssuedReset {
    pub token: String,
    pub expires_at: String,
    pub user: User,
}

fn spent_link() -> OperationError {
    OperationError::BadRequest(
        "this password-reset link is unknown, already used or expired; ask an admin for a new one".into(),
    )
}

/// An access token and its lifetime in seconds.
pub struct Issued {
    pub access_token: String,
    pub expires_in: i64,
}

fn audit_user(tx: &mut Tx, actor_id: Option<&str>, action: &str, target_id: Option<&str>, details: serde_json::Value) {
    tx.audit(AuditEvent {
        actor_id,
        action,
        target_type: "user",
        target_id,
        request_id: crate::telemetry::request_id::current_string().as_deref(),
        details,
    });
}

fn internal(err: impl std::fmt::Display) -> OperationError {
    OperationError::Internal(err.to_string())
}

fn hashing(err: passwords::HashError) -> OperationError {
    match err {
        passwords::HashError::Busy => OperationError::Busy,
        failed => internal(failed),
    }
}

/// Refuses while `key` is locked out after repeated failures.
async fn check_lockout(db: &Database, key: &str) -> Result<(), OperationError> {
    let mut conn = db.acquire().await?;
    let until = login_failures::locked_until(&mut conn, key).await?;
    let now = time::OffsetDateTime::now_utc();
    if let Some(until) = until.as_deref().and_then(crate::timestamp::parse)
        && until > now
    {
        let wait = (until - now).whole_seconds().max(1).unsigned_abs();
        return Err(OperationError::Locked(std::time::Duration::from_secs(wait)));
    }
    Ok(())
}

/// Counts a failed password check for `key`, locking it out past the free
/// attempts ([`lockout_after`]).
async fn note_failure(db: &Database, key: &str) -> Result<(), OperationError> {
    let mut conn = db.acquire().await?;
    let failures = login_failures::record(&mut conn, key).await?;
    if let Some(lockout) = lockout_after(failures) {
        let until =
            time::OffsetDateTime::now_utc() + time::Duration::try_from(lockout).unwrap_or(time::Duration::MINUTE);
        login_failures::lock(&mut conn, key, &crate::timestamp::format(until)).await?;
        tracing::warn!(
            failures,
            lockout_seconds = lockout.as_secs(),
            "password checks locked out after repeated failures"
        );
    }
    Ok(())
}

async fn clear_failures(db: &Database, key: &str) -> Result<(), OperationError> {
    let mut conn = db.acquire().await?;
    login_failures::clear(&mut conn, key).await?;
    Ok(())
}

impl Accounts<'_> {
    fn issue(&self, user: &User, version: i64) -> Result<Issued, OperationError> {
        Ok(Issued {
            access_token: self
                .tokens
                .issue(&user.id, user.role.as_str(), version)
                .map_err(internal)?,
            expires_in: self.tokens.ttl_seconds(),
        })
    }

    /// Creates a client or freelancer account (admins come from the CLI).
    #[tracing::instrument(name = "account.signup", skip_all, fields(role = new.role.as_str()))]
    pub async fn signup(&self, new: NewAccount) -> Result<User, OperationError> {
        if new.role == Role::Admin {
            return Err(OperationError::Invalid("role must be client or freelancer".into()));
        }
        check_password_policy(&new.password, &new.email)?;
        let hash = passwords::hash(SecretString::from(new.password))
            .await
            .map_err(internal)?;
        let mut tx = self.db.begin().await?;
        let user = users::insert(
            &mut tx,
            NewUser {
                email: &new.email,
                password_hash: &hash,
                full_name: &new.full_name,
                role: new.role,
                phone_number: new.phone_number.as_deref(),
                bio: new.bio.as_deref(),
            },
        )
        .await?;
        audit_user(
            &mut tx,
            Some(&user.id),
            "user.signup",
            Some(&user.id),
            json!({ "role": user.role.as_str() }),
        );
        tx.commit().await?;
        self.metrics.user_registrations.inc();
        tracing::info!(user_id = %user.id, role = user.role.as_str(), "user signed up");
        Ok(user)
    }

    /// Email and password for an access token. A wrong password, an unknown
    /// email and a deactivated account get the same answer after the same
    /// work, so accounts cannot be discovered.
    #[tracing::instrument(name = "account.login", skip_all)]
    pub async fn login(&self, email: Option<&Email>, password: String, ip: &str) -> Result<Issued, OperationError> {
        let user = self.authenticate(email, password, ip).await?;
        self.issue(&user, user.token_version)
    }

    /// Checks email and password (as [`Accounts::login`] does, lockout and
    /// audit included) and returns the account, for the console's session.
    pub async fn authenticate(
        &self,
        email: Option<&Email>,
        password: String,
        ip: &str,
    ) -> Result<User, OperationError> {
        // Keyed by the email asked for, whether or not it has an account, so
        // a lockout says nothing about which emails exist.
        let key = email.map(|email| format!("login:{email}"));
        if let Some(key) = &key {
            check_lockout(self.db, key).await?;
        }
        let user = match email {
            Some(email) => {
                let mut conn = self.db.acquire().await?;
                users::find_by_email(&mut conn, email).await?
            }
            None => None,
        };
        // No connection is held while the hash runs.
        let matches = passwords::verify(
            SecretString::from(password),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await
        .map_err(hashing)?;
        match user {
            Some(user) if matches && user.active => {
                if let Some(key) = &key {
                    clear_failures(self.db, key).await?;
                }
                Ok(user)
            }
            other => {
                let reason = match &other {
                    Some(user) if !user.active => "deactivated",
                    Some(_) => "wrong_password",
                    None => "unknown_email",
                };
                if let Some(key) = &key {
                    note_failure(self.db, key).await?;
                }
                let mut conn = self.db.acquire().await?;
                audit::record(
                    &mut conn,
                    AuditEvent {
                        actor_id: None,
                        action: "user.login_failed",
                        target_type: "user",
                        target_id: other.as_ref().map(|u| u.id.as_str()),
                        request_id: crate::telemetry::request_id::current_string().as_deref(),
                        details: json!({ "reason": reason, "ip": ip }),
                    },
                )
                .await?;
                tracing::info!(reason, "login failed");
                Err(OperationError::Unauthorized("email or password is incorrect".into()))
            }
        }
    }

    /// Changes the caller's name, phone number or bio (`None` keeps a field).
    #[tracing::instrument(name = "account.update_profile", skip_all, fields(user_id = %user.id))]
    pub async fn update_profile(&self, user: &User, change: ProfileChange<'_>) -> Result<User, OperationError> {
        let mut conn = self.db.acquire().await?;
        users::update_profile(&mut conn, &user.id, change).await?;
        users::find_by_id(&mut conn, &user.id)
            .await?
            .ok_or(OperationError::NotFound("account"))
    }

    /// Changes the password; every token issued before stops working, and a
    /// fresh one is returned.
    #[tracing::instrument(name = "account.change_password", skip_all, fields(user_id = %user.id))]
    pub async fn change_password(&self, user: &User, current: String, new: String) -> Result<Issued, OperationError> {
        let key = format!("password:{}", user.id);
        check_lockout(self.db, &key).await?;
        let current_matches = passwords::verify(SecretString::from(current), Some(user.password_hash.clone()))
            .await
            .map_err(hashing)?;
        if !current_matches {
            note_failure(self.db, &key).await?;
            return Err(OperationError::BadRequest("current_password is incorrect".into()));
        }
        clear_failures(self.db, &key).await?;
        let email = Email::parse(&user.email)?;
        check_password_policy(&new, &email)?;
        let new = SecretString::from(new);
        let unchanged = passwords::verify(
            SecretString::from(new.expose_secret().to_owned()),
            Some(user.password_hash.clone()),
        )
        .await
        .map_err(hashing)?;
        if unchanged {
            return Err(OperationError::Invalid(
                "new_password must differ from the current password".into(),
            ));
        }
        let hash = passwords::hash(new).await.map_err(hashing)?;
        let mut tx = self.db.begin().await?;
        users::set_password(&mut tx, &user.id, &hash).await?;
        audit_user(
            &mut tx,
            Some(&user.id),
            "user.password_changed",
            Some(&user.id),
            json!({}),
        );
        tx.commit().await?;
        self.issue(user, user.token_version + 1)
    }

    /// Lets a deactivated account log in again. Its tokens from before stay
    /// void (the token version moves on): the user logs in afresh.
    #[tracing::instrument(name = "account.reactivate", skip_all, fields(user_id = %admin.id, target = %id))]
    pub async fn reactivate(&self, admin: &User, id: &str) -> Result<User, OperationError> {
        let mut tx = self.db.begin().await?;
        if !users::set_active(&mut tx, id, true).await? {
            return Err(OperationError::NotFound("user"));
        }
        audit_user(&mut tx, Some(&admin.id), "user.reactivated", Some(id), json!({}));
        let user = users::find_by_id(&mut tx, id)
            .await?
            .ok_or(OperationError::NotFound("user"))?;
        tx.commit().await?;
        Ok(user)
    }

    /// An admin deactivates an account: it can no longer log in, and its
    /// tokens stop working at once.
    #[tracing::instrument(name = "account.deactivate", skip_all, fields(user_id = %admin.id, target = %id))]
    pub async fn deactivate(&self, admin: &User, id: &str) -> Result<User, OperationError> {
        if id == admin.id {
            return Err(conflict("an admin cannot deactivate their own account"));
        }
        let mut tx = self.db.begin().await?;
        if !users::set_active(&mut tx, id, false).await? {
            return Err(OperationError::NotFound("user"));
        }
        audit_user(&mut tx, Some(&admin.id), "user.deactivated", Some(id), json!({}));
        let user = users::find_by_id(&mut tx, id)
            .await?
            .ok_or(OperationError::NotFound("user"))?;
        tx.commit().await?;
        Ok(user)
    }

    /// An admin issues a one-time password-reset link for an account, to
    /// hand over out of band (there is no email). It replaces any earlier
    /// unused link for the account and works once, until `expires_at`. Only
    /// its digest is stored: the token is in this answer and nowhere else.
    #[tracing::instrument(name = "account.issue_password_reset", skip_all, fields(user_id = %admin.id, target = %id))]
    pub async fn issue_password_reset(
        &self,
        admin: &User,
        id: &str,
        ttl: std::time::Duration,
    ) -> Result<IssuedReset, OperationError> {
        if id == admin.id {
            return Err(conflict(
                "admins change their own password with their current one, not with a reset link",
            ));
        }
        let token = secret::new_token().ok_or_else(|| internal("no randomness for a reset token"))?;
        let expires_at = time::OffsetDateTime::now_utc() + time::Duration::try_from(ttl).map_err(internal)?;
        let expires_at = crate::timestamp::format(expires_at);
        let mut tx = self.db.begin().await?;
        let user = users::find_by_id(&mut tx, id)
            .await?
            .ok_or(OperationError::NotFound("user"))?;
        if !user.active {
            return Err(conflict("the account is deactivated; reactivate it first"));
        }
        console::void_resets(&mut tx, id).await?;
        console::insert_reset(
            &mut tx,
            console::NewReset {
                token_hash: &secret::digest(&token),
                user_id: id,
                issued_by: &admin.id,
                expires_at: &expires_at,
            },
        )
        .await?;
        audit_user(
            &mut tx,
            Some(&admin.id),
            "user.password_reset_issued",
            Some(id),
            json!({ "expires_at": expires_at }),
        );
        tx.commit().await?;
        Ok(IssuedReset {
            token,
            expires_at,
            user,
        })
    }

    /// The account a reset link is for, while the link is unused and
    /// unexpired.
    pub async fn reset_link_user(&self, token: &str) -> Result<User, OperationError> {
        let mut conn = self.db.acquire().await?;
        let user_id = console::reset_user(&mut conn, &secret::digest(token))
            .await?
            .ok_or_else(spent_link)?;
        users::find_by_id(&mut conn, &user_id)
            .await?
            .filter(|u| u.active)
            .ok_or_else(spent_link)
    }

    /// Sets a new password with a reset link, spending it. Every token and
    /// console session of the account ends; a login lockout on its email is
    /// lifted.
    #[tracing::instrument(name = "account.reset_password", skip_all)]
    pub async fn reset_password(&self, token: &str, new: String) -> Result<User, OperationError> {
        let user = self.reset_link_user(token).await?;
        let email = Email::parse(&user.email)?;
        check_password_policy(&new, &email)?;
        // Hashed before any connection is taken.
        let hash = passwords::hash(SecretString::from(new)).await.map_err(hashing)?;
        let mut tx = self.db.begin().await?;
        if !console::spend_reset(&mut tx, &secret::digest(token), &user.id).await? {
            return Err(spent_link());
        }
        users::set_password(&mut tx, &user.id, &hash).await?;
        audit_user(
            &mut tx,
            Some(&user.id),
            "user.password_reset",
            Some(&user.id),
            json!({}),
        );
        tx.commit().await?;
        clear_failures(self.db, &format!("login:{email}")).await?;
        tracing::info!(user_id = %user.id, "password reset with a link");
        Ok(user)
    }
}
