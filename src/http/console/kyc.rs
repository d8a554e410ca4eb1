//! The KYC queue: pending submissions oldest first, one with its document
//! shown inline (decrypted for this viewer only, never cached), approve or
//! reject with a reason. Each look at a document is audited.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::users::NoticeQuery;
use super::{Console, ConsoleError, notice, page};
use crate::domain::account::bounded_text;
use crate::domain::kyc::{Decision, KycStatus};
use crate::state::AppState;
use crate::store::{kyc, users};

/// Submissions shown in the queue at once (oldest first; work from the top).
const QUEUE: i64 = 100;

pub async fn queue(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<NoticeQuery>,
) -> Result<Markup, ConsoleError> {
    let mut conn = state.db.acquire().await?;
    let (pending, total) = kyc::list_by_status(&mut conn, KycStatus::Pending, QUEUE, 0, None).await?;
    drop(conn);
    Ok(page(
        "KYC queue",
        &console,
        html! {
            (notice(query.notice.as_deref()))
            h1 { "KYC queue" }
            p { (total.unwrap_or(pending.len() as i64)) " pending, oldest first." }
            @if pending.is_empty() { p { "Nothing to review." } } @else {
                table {
                    thead { tr { th scope="col" { "Submitted" } th scope="col" { "Type" } th scope="col" { "ID number" } th scope="col" { "Account" } th scope="col" { "Document" } } }
                    tbody {
                        @for s in &pending {
                            tr {
                                td { a href={ "/console/kyc/" (s.id) } { (s.created_at) } }
                                td { (s.kind.as_str()) }
                                td { "…" (s.id_number_last4) }
                                td { a href={ "/console/users/" (s.user_id) } { code { (s.user_id) } } }
                                td { @if s.document_id.is_some() { "yes" } @else { "no" } }
                            }
                        }
                    }
                }
            }
        },
    ))
}

pub async fn submission(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
) -> Result<Markup, ConsoleError> {
    let mut conn = state.db.acquire().await?;
    let s = kyc::find(&mut conn, &id).await?.ok_or_else(not_found)?;
    let owner = users::find_by_id(&mut conn, &s.user_id).await?;
    let content_type = match &s.document_id {
        Some(document_id) => kyc::document_type(&mut conn, document_id).await?,
        None => None,
    };
    drop(conn);
    let document_url = format!("/console/kyc/{}/document", s.id);
    Ok(page(
        "KYC submission",
        &console,
        html! {
            h1 { "KYC submission" }
            dl class="facts" {
                dt { "Account" } dd {
                    a href={ "/console/users/" (s.user_id) } {
                        @if let Some(owner) = &owner { (owner.full_name) " (" (owner.email) ")" } @else { (s.user_id) }
                    }
                }
                dt { "Type" } dd { (s.kind.as_str()) }
                dt { "ID number" } dd { "…" (s.id_number_last4) " (only the last four characters are ever shown)" }
                dt { "Status" } dd { (s.status.as_str()) }
                dt { "Submitted" } dd { (s.created_at) }
                @if let Some(reason) = &s.rejection_reason { dt { "Rejected because" } dd { (reason) } }
                @if let Some(previous) = &s.resubmission_of { dt { "Resubmission of" } dd { a href={ "/console/kyc/" (previous) } { code { (previous) } } } }
            }
            h2 { "Document" }
            @match content_type.as_deref() {
                None => p { "No document was submitted." },
                Some("application/pdf") => {
                    iframe class="document" src=(document_url) title="The submitted document (PDF)" {}
                    p { a href=(document_url) { "Open the PDF" } }
                },
                Some(_) => img class="document" src=(document_url) alt="The submitted identity document";
            }
            @if s.status == KycStatus::Pending {
                h2 { "Decision" }
                div class="actions" {
                    form method="post" action={ "/console/kyc/" (s.id) "/approve" } {
                        (console.csrf_field())
                        button type="submit" { "Approve" }
                    }
                    form method="post" action={ "/console/kyc/" (s.id) "/reject" } class="card" {
                        (console.csrf_field())
                        label for="reason" { "Reason for rejecting (shown to the user)" }
                        textarea id="reason" name="reason" required maxlength="500" {}
                        button type="submit" class="danger" { "Reject" }
                    }
                }
            }
        },
    ))
}

fn not_found() -> ConsoleError {
    ConsoleError::new(StatusCode::NOT_FOUND, "No such KYC submission.")
}

/// The document, decrypted for this request only (and audited).
pub async fn document(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let (content_type, bytes) = crate::http::kyc::kyc(&state).open_document(&console.admin, &id).await?;
    Ok(crate::http::files::inline(&content_type, bytes)?)
}

#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

pub async fn approve(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Redirect, ConsoleError> {
    console.check_csrf(&form.csrf)?;
    crate::http::kyc::kyc(&state)
        .decide(&console.admin, &id, Decision::Approve)
        .await?;
    Ok(Redirect::to("/console/kyc?notice=approved"))
}

pub async fn reject(
    State(state): State<AppState>,
    console: Console,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Redirect, ConsoleError> {
    console.check_csrf(&form.csrf)?;
    let reason = bounded_text("reason", &form.reason, 500).map_err(|e| ConsoleError::bad_input(e.to_string()))?;
    crate::http::kyc::kyc(&state)
        .decide(&console.admin, &id, Decision::Reject { reason })
        .await?;
    Ok(Redirect::to("/console/kyc?notice=rejected"))
}
