//! Users: search by email or id; an account with its balances, projects,
//! transactions and KYC; deactivate, reactivate, issue a reset link.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::{Console, ConsoleError, money, notice, page};
use crate::http::admin::MAX_QUERY_CHARS;
use crate::state::AppState;
use crate::store::escrow::{self, Filter};
use crate::store::projects::{self, Whose, Window};
use crate::store::users::{self, User};
use crate::store::{audit, kyc, ledger};

/// Rows shown per list on a user's page.
const SHOWN: i64 = 20;

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    after: Option<String>,
}

pub async fn search(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<SearchQuery>,
) -> Result<Markup, ConsoleError> {
    let q = query.q.trim();
    let found = if q.is_empty() {
        None
    } else if q.chars().count() > MAX_QUERY_CHARS {
        return Err(ConsoleError::bad_input(format!(
            "Search for an id or part of an email ({MAX_QUERY_CHARS} characters at most)."
        )));
    } else {
        let mut conn = state.db.acquire().await?;
        Some(users::search(&mut conn, q, query.after.as_deref(), SHOWN + 1).await?)
    };
    let more = found.as_ref().is_some_and(|f| f.len() > SHOWN as usize);
    let found: Option<Vec<User>> = found.map(|f| f.into_iter().take(SHOWN as usize).collect());
    Ok(page(
        "Users",
        &console,
        html! {
            h1 { "Users" }
            form method="get" action="/console/users" class="card filters" role="search" {
                label for="q" { "Email or account id" }
                input id="q" name="q" type="search" value=(q) required;
                button type="submit" { "Search" }
            }
            @if let Some(found) = &found {
                @if found.is_empty() {
                    p { "No account matches." }
                } @else {
                    table {
                        caption { "Accounts matching “" (q) "”" }
                        thead { tr { th scope="col" { "Email" } th scope="col" { "Name" } th scope="col" { "Role" } th scope="col" { "State" } } }
                        tbody {
                            @for user in found {
                                tr {
                                    td { a href={ "/console/users/" (user.id) } { (user.email) } }
                                    td { (user.full_name) }
                                    td { (user.role.as_str()) }
                                    td { @if user.active { "active" } @else { "deactivated" } }
                                }
                            }
                        }
                    }
                    @if more {
                        @if let Some(last) = found.last() {
                            p { a href={ "/console/users?q=" (urlencode(q)) "&after=" (last.id) } { "More results" } }
                        }
                    }
                }
            }
        },
    ))
}

/// Percent-encodes a query value.
pub fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    pub notice: Option<String>,
}

pub async fn detail(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> Result<Markup, ConsoleError> {
    let mut conn = state.db.acquire().await?;
    let user = users::find_by_id(&mut conn, &id)
        .await?
        .ok_or_else(|| ConsoleError::new(axum::http::StatusCode::NOT_FOUND, "No such account."))?;
    let balances = ledger::user_balances(&mut conn, &id).await?;
    let window = || Window {
        limit: SHOWN,
        offset: 0,
        after: None,
    };
    let (buying, _) = projects::list(&mut conn, Whose::Buyer(&id), None, window()).await?;
    let (selling, _) = projects::list(&mut conn, Whose::Seller(&id), None, window()).await?;
    let filter = Filter {
        party: Some(&id),
        ..Filter::default()
    };
    let (transactions, _) = escrow::list(&mut conn, &filter, SHOWN, 0).await?;
    let submissions = kyc::list_for_user(&mut conn, &id).await?;
    let trail = audit::list(
        &mut conn,
        &audit::AuditFilter {
            target_id: Some(&id),
            ..audit::AuditFilter::default()
        },
        SHOWN,
    )
    .await?;
    drop(conn);
    Ok(page(
        &user.email,
        &console,
        html! {
            (notice(query.notice.as_deref()))
            h1 { (user.full_name) " " small { (user.email) } }
            dl class="facts" {
                dt { "Account id" } dd { code { (user.id) } }
                dt { "Role" } dd { (user.role.as_str()) }
                dt { "State" } dd { @if user.active { "active" } @else { strong { "deactivated" } } }
                dt { "KYC" } dd { @if user.kyc_verified == Some(true) { "verified" } @else { "not verified" } }
                dt { "Joined" } dd { (user.created_at) }
            }
            section class="actions" aria-label="Account actions" {
                @if user.active {
                    form method="post" action={ "/console/users/" (user.id) "/deactivate" } {
                        (console.csrf_field())
                        button type="submit" class="danger" { "Deactivate" }
                    }
                    form method="post" action={ "/console/users/" (user.id) "/password-reset" } {
                        (console.csrf_field())
                        button type="submit" { "Issue a password-reset link" }
                    }
                } @else {
                    form method="post" action={ "/console/users/" (user.id) "/reactivate" } {
                        (console.csrf_field())
                        button type="submit" { "Reactivate" }
                    }
                }
                a href={ "/console/audit?target_id=" (user.id) } { "Audit trail about this account" }
            }
            h2 { "Balances" }
            @if balances.is_empty() { p { "No wallet yet." } } @else {
                table id="balances" {
                    thead { tr { th scope="col" { "Currency" } th scope="col" { "Available" } th scope="col" { "Reserved" } } }
                    tbody {
                        @for (currency, available, reserved) in &balances {
                            tr { td { (currency) } td class="num" { (money(*available, currency)) } td class="num" { (money(*reserved, currency)) } }
                        }
                    }
                }
            }
            h2 { "Projects" }
            (project_table("As buyer", &buying))
            (project_table("As seller", &selling))
            h2 { "Transactions (newest " (SHOWN) ")" }
            @if transactions.is_empty() { p { "None." } } @else {
                table {
                    thead { tr { th scope="col" { "When" } th scope="col" { "Type" } th scope="col" { "Status" } th scope="col" { "Amount" } th scope="col" { "Project" } } }
                    tbody {
                        @for t in &transactions {
                            tr {
                                td { (t.created_at) }
                                td { (t.kind.as_str()) }
                                td { (t.status.as_str()) }
                                td class="num" { (money(t.amount, t.currency.code())) }
                                td { @if let Some(p) = &t.project_id { code { (p) } } }
                            }
                        }
                    }
                }
            }
            h2 { "KYC submissions" }
            @if submissions.is_empty() { p { "None." } } @else {
                ul {
                    @for s in &submissions {
                        li { a href={ "/console/kyc/" (s.id) } { (s.kind.as_str()) ", " (s.status.as_str()) ", " (s.created_at) } }
                    }
                }
            }
            h2 { "Recent audit records" }
            (super::audit::table(&trail))
        },
    ))
}

fn project_table(caption: &str, projects: &[projects::Project]) -> Markup {
    html! {
        @if !projects.is_empty() {
            table {
                caption { (caption) }
                thead { tr { th scope="col" { "Title" } th scope="col" { "Status" } th scope="col" { "Currency" } th scope="col" { "Created" } } }
                tbody {
                    @for p in projects {
                        tr {
                            td {
                                @if p.status == crate::domain::escrow::ProjectStatus::Disputed {
                                    a href={ "/console/disputes/project/" (p.id) } { (p.title) }
                                } @else { (p.title) }
                            }
                            td { (p.status.as_str()) }
                            td { (p.currency.code()) }
                            td { (p.created_at) }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn deactivate(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect, ConsoleError> {
    console.check_csrf(&form.csrf)?;
    crate::http::auth::accounts(&state)
        .deactivate(&console.admin, &id)
        .await?;
    Ok(Redirect::to(&format!("/console/users/{id}?notice=deactivated")))
}

pub async fn reactivate(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Redirect, ConsoleError> {
    console.check_csrf(&form.csrf)?;
    crate::http::auth::accounts(&state)
        .reactivate(&console.admin, &id)
        .await?;
    Ok(Redirect::to(&format!("/console/users/{id}?notice=reactivated")))
}

/// Issues a reset link and shows it this once (only its digest is kept).
pub async fn password_reset(
    State(state): State<AppState>,
    console: Console,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    console.check_csrf(&form.csrf)?;
    let issued = crate::http::auth::accounts(&state)
        .issue_password_reset(&console.admin, &id, state.config.console.reset_link_ttl)
        .await?;
    let scheme = if state.config.console.secure_cookie {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let link = format!("{scheme}://{host}{}", super::reset_path(&issued.token));
    Ok(page(
        "Password-reset link",
        &console,
        html! {
            h1 { "Password-reset link for " (issued.user.email) }
            p { "Hand this link to the account's owner yourself (not by email). It works once, until "
                (issued.expires_at) ". It is shown only now; issuing another voids it." }
            p { label for="reset-link" { "Link" } }
            input id="reset-link" class="wide" readonly value=(link);
            p { a href={ "/console/users/" (issued.user.id) } { "Back to the account" } }
        },
    )
    .into_response())
}
