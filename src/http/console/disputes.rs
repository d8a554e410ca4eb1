//! Disputes: every disputed milestone and project, each with both parties'
//! statements and evidence, and a resolution (release, refund, or a split
//! by amount) previewed as its ledger effect before it is confirmed.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::users::NoticeQuery;
use super::{Console, ConsoleError, money, notice, page};
use crate::domain::account::bounded_text;
use crate::domain::escrow::{MilestoneStatus, ProjectStatus};
use crate::operations::escrow::Resolution;
use crate::state::AppState;
use crate::store::projects::{self, Milestone, Project, Whose, Window};
use crate::store::users::{self, User};
use crate::store::{DbHandle, dispute_files, ledger};

/// Disputes listed at once, the longest-running first.
const LISTED: i64 = 100;

pub async fn list(
    State(state): State<AppState>,
    console: Console,
    Query(query): Query<NoticeQuery>,
) -> Result<Markup, ConsoleError> {
    let mut conn = state.db.acquire().await?;
    let milestones = projects::disputed_milestones(&mut conn, LISTED).await?;
    let (disputed_projects, _) = projects::list(
        &mut conn,
        Whose::Everyone,
        Some(ProjectStatus::Disputed),
        Window {
            limit: LISTED,
            offset: 0,
            after: None,
        },
    )
    .await?;
    drop(conn);
    Ok(page(
        "Disputes",
        &console,
        html! {
            (notice(query.notice.as_deref()))
            h1 { "Disputes" }
            h2 { "Milestones in dispute" }
            @if milestones.is_empty() { p { "None." } } @else {
                table {
                    thead { tr { th scope="col" { "Milestone" } th scope="col" { "Opened by" } th scope="col" { "Held" } th scope="col" { "Answered" } th scope="col" { "Since" } } }
                    tbody {
                        @for m in &milestones {
                            tr {
                                td { a href={ "/console/disputes/milestone/" (m.id) } { (m.title) } }
                                td { (m.disputed_by.as_deref().unwrap_or("?")) }
                                td class="num" { (m.held()) }
                                td { @if m.dispute_response.is_some() { "yes" } @else { "not yet" } }
                                td { (m.updated_at) }
                            }
                        }
                    }
                }
            }
            h2 { "Projects in dispute" }
            @if disputed_projects.is_empty() { p { "None." } } @else {
                table {
                    thead { tr { th scope="col" { "Project" } th scope="col" { "Currency" } th scope="col" { "Since" } } }
                    tbody {
                        @for p in &disputed_projects {
                            tr {
                                td { a href={ "/console/disputes/project/" (p.id) } { (p.title) } }
                                td { (p.currency.code()) }
                                td { (p.updated_at) }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// A milestone or a whole project in dispute.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Milestone,
    Project,
}

impl Kind {
    fn parse(raw: &str) -> Result<Kind, ConsoleError> {
        match raw {
            "milestone" => Ok(Kind::Milestone),
            "project" => Ok(Kind::Project),
            _ => Err(not_found()),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Kind::Milestone => "milestone",
            Kind::Project => "project",
        }
    }
}

fn not_found() -> ConsoleError {
    ConsoleError::new(StatusCode::NOT_FOUND, "No such dispute.")
}

/// Everything a dispute page shows.
struct Dispute {
    kind: Kind,
    id: String,
    project: Project,
    /// The disputed milestone, or every milestone of a disputed project.
    milestones: Vec<Milestone>,
    buyer: Option<User>,
    seller: Option<User>,
    /// Available balances in the project's currency: (buyer, seller).
    available: (i64, i64),
    files: Vec<dispute_files::DisputeFile>,
    /// Still held for the dispute (0 once resolved).
    held: i64,
    open: bool,
}

async fn available(db: &mut impl DbHandle, user_id: &str, currency: &str) -> Result<i64, ConsoleError> {
    Ok(ledger::user_balances(db, user_id)
        .await?
        .into_iter()
        .find(|(c, _, _)| c == currency)
        .map_or(0, |(_, available, _)| available))
}

async fn load(state: &AppState, kind: Kind, id: &str) -> Result<Dispute, ConsoleError> {
    let mut conn = state.db.acquire().await?;
    let (project_id, milestones) = match kind {
        Kind::Milestone => {
            let m = projects::find_milestone(&mut conn, id).await?.ok_or_else(not_found)?;
            (m.project_id.clone(), vec![m])
        }
        Kind::Project => (id.to_owned(), projects::milestones(&mut conn, id).await?),
    };
    let project = projects::find(&mut conn, &project_id).await?.ok_or_else(not_found)?;
    let buyer = users::find_by_id(&mut conn, &project.buyer_id).await?;
    let seller = users::find_by_id(&mut conn, &project.seller_id).await?;
    let currency = project.currency.code();
    let available = (
        available(&mut conn, &project.buyer_id, currency).await?,
        available(&mut conn, &project.seller_id, currency).await?,
    );
    let mut files = Vec::new();
    for m in milestones.iter().filter(|_| kind == Kind::Milestone) {
        files.extend(dispute_files::list(&mut conn, &m.id).await?);
    }
    let held = milestones.iter().map(Milestone::held).sum();
    let open = match kind {
        Kind::Milestone => milestones.iter().any(|m| m.status == MilestoneStatus::Disputed),
        Kind::Project => project.status == ProjectStatus::Disputed,
    };
    Ok(Dispute {
        kind,
        id: id.to_owned(),
        project,
        milestones,
        buyer,
        seller,
        available,
        files,
        held,
        open,
    })
}

fn party(user: Option<&User>, fallback: &str) -> Markup {
    html! {
        @match user {
            Some(u) => a href={ "/console/users/" (u.id) } { (u.full_name) " (" (u.email) ")" },
            None => code { (fallback) },
        }
    }
}

fn summary(d: &Dispute) -> Markup {
    let currency = d.project.currency.code();
    html! {
        dl class="facts" {
            dt { "Project" } dd { (d.project.title) " " code { (d.project.id) } }
            dt { "Buyer" } dd { (party(d.buyer.as_ref(), &d.project.buyer_id)) }
            dt { "Seller" } dd { (party(d.seller.as_ref(), &d.project.seller_id)) }
            dt { "Held for this dispute" } dd id="held" { (money(d.held, currency)) }
        }
        table id="party-balances" {
            caption { "Available balances now (" (currency) ")" }
            thead { tr { th scope="col" { "Buyer" } th scope="col" { "Seller" } } }
            tbody { tr { td class="num" { (money(d.available.0, currency)) } td class="num" { (money(d.available.1, currency)) } } }
        }
        @if let Some(reason) = &d.project.dispute_reason {
            @if d.kind == Kind::Project { h3 { "Why it was disputed" } p class="statement" { (reason) } }
        }
        @for m in &d.milestones {
            @if d.kind == Kind::Milestone {
                h2 { "Milestone: " (m.title) }
                p { "Status " strong { (m.status.as_str()) } ", amount " (money(m.amount, currency))
                    ", released so far " (money(m.released_amount, currency))
                    ", refunded so far " (money(m.refunded_amount, currency)) "." }
                h3 { "Opened by the " (m.disputed_by.as_deref().unwrap_or("?")) }
                p class="statement" { (m.dispute_reason.as_deref().unwrap_or("(no reason given)")) }
                @if let Some(evidence) = &m.dispute_evidence { p class="statement" { "Evidence: " (evidence) } }
                h3 { "The other party's answer" }
                p class="statement" { (m.dispute_response.as_deref().unwrap_or("(no answer yet)")) }
            } @else {
                p { (m.title) ": " (m.status.as_str()) ", holds " (money(m.held(), currency)) }
            }
        }
        @if !d.files.is_empty() {
            h3 { "Evidence files" }
            ul {
                @for f in &d.files {
                    li {
                        a href={ "/console/disputes/milestone/" (f.milestone_id) "/files/" (f.id) } {
                            (f.content_type) ", " (f.size_bytes) " bytes"
                        }
                        " from " (if f.uploaded_by == d.project.buyer_id { "the buyer" } else if f.uploaded_by == d.project.seller_id { "the seller" } else { "an admin" })
                        ", " (f.created_at)
                    }
                }
            }
        }
    }
}

pub async fn detail(
    State(state): State<AppState>,
    console: Console,
    Path((kind, id)): Path<(String, String)>,
    Query(query): Query<NoticeQuery>,
) -> Result<Markup, ConsoleError> {
    let d = load(&state, Kind::parse(&kind)?, &id).await?;
    let action = format!("/console/disputes/{}/{}/preview", d.kind.as_str(), d.id);
    Ok(page(
        "Dispute",
        &console,
        html! {
            (notice(query.notice.as_deref()))
            h1 { "Dispute over " (if d.kind == Kind::Milestone { "a milestone" } else { "a project" }) }
            (summary(&d))
            @if d.open {
                h2 { "Resolve" }
                form method="post" action=(action) class="card" {
                    (console.csrf_field())
                    fieldset {
                        legend { "Where the held money goes" }
                        label { input type="radio" name="outcome" value="release" required; " All to the seller" }
                        label { input type="radio" name="outcome" value="refund"; " All back to the buyer" }
                        label { input type="radio" name="outcome" value="split"; " Split" }
                    }
                    label for="seller_amount" { "With a split: to the seller, in minor units (the rest goes to the buyer)" }
                    input id="seller_amount" name="seller_amount" type="number" min="0" max=(d.held) step="1" inputmode="numeric";
                    label for="notes" { "Note for the record (optional)" }
                    textarea id="notes" name="notes" maxlength="500" {}
                    button type="submit" { "Preview the ledger effect" }
                }
            } @else {
                p role="status" { "This dispute is settled; nothing is held for it." }
            }
        },
    ))
}

#[derive(Deserialize)]
pub struct ResolutionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    seller_amount: String,
    #[serde(default)]
    notes: String,
    /// On the confirmation: the amount held when the preview was shown.
    #[serde(default)]
    held: String,
}

impl ResolutionForm {
    /// The resolution and the seller's share of `held`.
    fn resolution(&self, held: i64) -> Result<(Resolution, i64), ConsoleError> {
        match self.outcome.as_str() {
            "release" => Ok((Resolution::ReleaseToSeller, held)),
            "refund" => Ok((Resolution::RefundToBuyer, 0)),
            "split" => {
                let to_seller = self
                    .seller_amount
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|a| (0..=held).contains(a))
                    .ok_or_else(|| {
                        ConsoleError::bad_input(format!(
                            "For a split, give the seller's share: a whole number of minor units from 0 to {held}."
                        ))
                    })?;
                Ok((Resolution::Split { to_seller }, to_seller))
            }
            _ => Err(ConsoleError::bad_input(
                "Choose where the held money goes: seller, buyer, or a split.",
            )),
        }
    }

    fn notes(&self) -> Result<Option<String>, ConsoleError> {
        if self.notes.trim().is_empty() {
            return Ok(None);
        }
        bounded_text("notes", &self.notes, 500)
            .map(Some)
            .map_err(|e| ConsoleError::bad_input(e.to_string()))
    }
}

/// Shows what the resolution would do to the ledger; nothing moves yet.
pub async fn preview(
    State(state): State<AppState>,
    console: Console,
    Path((kind, id)): Path<(String, String)>,
    Form(form): Form<ResolutionForm>,
) -> Result<Markup, ConsoleError> {
    console.check_csrf(&form.csrf)?;
    let d = load(&state, Kind::parse(&kind)?, &id).await?;
    if !d.open {
        return Err(ConsoleError::new(
            StatusCode::CONFLICT,
            "This dispute is already settled.",
        ));
    }
    let (_, to_seller) = form.resolution(d.held)?;
    let notes = form.notes()?;
    let to_buyer = d.held - to_seller;
    let currency = d.project.currency.code();
    let action = format!("/console/disputes/{}/{}/resolve", d.kind.as_str(), d.id);
    Ok(page(
        "Confirm the resolution",
        &console,
        html! {
            h1 { "Confirm the resolution" }
            p { "Nothing has moved yet. This is what confirming does:" }
            h2 { "Ledger effect" }
            table id="ledger-effect" {
                thead { tr { th scope="col" { "Account" } th scope="col" { "Now" } th scope="col" { "Change" } th scope="col" { "After" } } }
                tbody {
                    tr { th scope="row" { "Escrow for this " (d.kind.as_str()) } td class="num" { (money(d.held, currency)) } td class="num" { "−" (money(d.held, currency)) } td class="num" { (money(0, currency)) } }
                    tr { th scope="row" { "Seller, available" } td class="num" { (money(d.available.1, currency)) } td class="num" { "+" (money(to_seller, currency)) } td class="num" { (money(d.available.1.saturating_add(to_seller), currency)) } }
                    tr { th scope="row" { "Buyer, available" } td class="num" { (money(d.available.0, currency)) } td class="num" { "+" (money(to_buyer, currency)) } td class="num" { (money(d.available.0.saturating_add(to_buyer), currency)) } }
                }
            }
            form method="post" action=(action) class="card" {
                (console.csrf_field())
                input type="hidden" name="outcome" value=(form.outcome);
                input type="hidden" name="seller_amount" value=(form.seller_amount);
                input type="hidden" name="notes" value=(notes.as_deref().unwrap_or(""));
                input type="hidden" name="held" value=(d.held);
                button type="submit" { "Confirm: move the money" }
                " "
                a href={ "/console/disputes/" (d.kind.as_str()) "/" (d.id) } { "Cancel" }
            }
            h2 { "The dispute, as it stands" }
            (summary(&d))
        },
    ))
}

/// Resolves as previewed, unless what is held changed since the preview.
pub async fn resolve(
    State(state): State<AppState>,
    console: Console,
    Path((kind, id)): Path<(String, String)>,
    Form(form): Form<ResolutionForm>,
) -> Result<Redirect, ConsoleError> {
    console.check_csrf(&form.csrf)?;
    let kind = Kind::parse(&kind)?;
    let d = load(&state, kind, &id).await?;
    if form.held.trim().parse::<i64>().ok() != Some(d.held) {
        return Err(ConsoleError::new(
            StatusCode::CONFLICT,
            "What is held for this dispute changed since the preview; open the dispute and preview again.",
        ));
    }
    let (resolution, _) = form.resolution(d.held)?;
    let notes = form.notes()?;
    match kind {
        Kind::Milestone => {
            crate::operations::milestones::resolve_dispute(
                &state.db,
                &console.admin,
                &id,
                resolution,
                notes.as_deref(),
            )
            .await?;
        }
        Kind::Project => {
            crate::operations::projects::resolve(&state.db, &console.admin, &id, resolution, notes.as_deref()).await?;
        }
    }
    Ok(Redirect::to(&format!(
        "/console/disputes/{}/{id}?notice=resolved",
        kind.as_str()
    )))
}

/// An evidence file, decrypted for this request only.
pub async fn file(
    State(state): State<AppState>,
    console: Console,
    Path((id, file_id)): Path<(String, String)>,
) -> Result<Response, ConsoleError> {
    let (content_type, sealed) =
        crate::operations::milestones::evidence_file(&state.db, &console.admin, &id, &file_id).await?;
    let bytes = state
        .sealer
        .open(&sealed)
        .map_err(crate::http::error::ApiError::internal)?;
    Ok(crate::http::files::inline(&content_type, bytes)?)
}
