//! The audit trail, filtered by actor, target and time (the same query as
//! `GET /api/v1/admin/audit`).

use axum::extract::{Query, State};
use maud::{Markup, html};
use serde::Deserialize;

use super::users::urlencode;
use super::{Console, ConsoleError, page};
use crate::http::admin::{AuditQuery, audit_page};
use crate::http::extract::{Id, PageParams};
use crate::state::AppState;
use crate::store::audit::AuditRecord;

/// The filter form's fields: all text, an empty one meaning "any".
#[derive(Deserialize, Default)]
pub struct TrailForm {
    #[serde(default)]
    actor_id: String,
    #[serde(default)]
    target_type: String,
    #[serde(default)]
    target_id: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    after: String,
}

fn given(value: &str) -> Option<String> {
    Some(value.trim().to_owned()).filter(|v| !v.is_empty())
}

fn id(name: &str, value: &str) -> Result<Option<Id>, ConsoleError> {
    given(value)
        .map(|v| Id::parse(&v).ok_or_else(|| ConsoleError::bad_input(format!("{name} must be {}", Id::RULE))))
        .transpose()
}

pub async fn trail(
    State(state): State<AppState>,
    console: Console,
    Query(form): Query<TrailForm>,
) -> Result<Markup, ConsoleError> {
    let query = AuditQuery {
        actor_id: id("actor_id", &form.actor_id)?,
        target_type: given(&form.target_type),
        target_id: given(&form.target_id),
        from: given(&form.from),
        to: given(&form.to),
        after: id("after", &form.after)?,
    };
    let records = audit_page(
        &state,
        &query,
        PageParams {
            page: None,
            page_size: Some(50),
        },
    )
    .await?;
    let next = records.next_cursor.as_ref().map(|cursor| {
        format!(
            "/console/audit?actor_id={}&target_type={}&target_id={}&from={}&to={}&after={cursor}",
            urlencode(&form.actor_id),
            urlencode(&form.target_type),
            urlencode(&form.target_id),
            urlencode(&form.from),
            urlencode(&form.to),
        )
    });
    Ok(page(
        "Audit trail",
        &console,
        html! {
            h1 { "Audit trail" }
            form method="get" action="/console/audit" class="card filters" {
                div { label for="actor_id" { "Actor (account id)" } input id="actor_id" name="actor_id" value=(form.actor_id); }
                div { label for="target_type" { "Target type" } input id="target_type" name="target_type" value=(form.target_type) placeholder="user, project, milestone…"; }
                div { label for="target_id" { "Target id" } input id="target_id" name="target_id" value=(form.target_id); }
                div { label for="from" { "From (RFC 3339)" } input id="from" name="from" value=(form.from) placeholder="2026-12-01T00:00:00Z"; }
                div { label for="to" { "To (RFC 3339)" } input id="to" name="to" value=(form.to); }
                button type="submit" { "Filter" }
            }
            (table(&records.items))
            @if let Some(next) = next { p { a href=(next) { "Older records" } } }
        },
    ))
}

/// Audit records, newest first.
pub fn table(records: &[AuditRecord]) -> Markup {
    html! {
        @if records.is_empty() { p { "No audit records." } } @else {
            table class="audit" {
                thead { tr { th scope="col" { "When" } th scope="col" { "Action" } th scope="col" { "Actor" } th scope="col" { "Target" } th scope="col" { "Details" } } }
                tbody {
                    @for r in records {
                        tr {
                            td { (r.occurred_at) }
                            td { (r.action) }
                            td { @match &r.actor_id {
                                Some(actor) => a href={ "/console/users/" (actor) } { code { (actor) } },
                                None => "system",
                            } }
                            td { (r.target_type) @if let Some(t) = &r.target_id { " " code { (t) } } }
                            td { code { (r.details) } }
                        }
                    }
                }
            }
        }
    }
}
