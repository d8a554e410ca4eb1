//! Projects and milestones: the agreement between a buyer and a seller, and
//! the only ways it may change. Each transition is a method that refuses
//! when the current state does not allow it; handlers never compare strings.
//!
//! Project: `draft → awaiting_seller → active → completed`, plus `cancelled`
//! (from draft, awaiting_seller, or active before any work is submitted) and
//! `disputed` (from active; an admin resolves it to `completed`).
//!
//! Milestone: `pending → funded → submitted → approved → released`; the buyer
//! may reject a submission (`rejected`, back to the seller, who submits
//! again); unreleased money goes back to the buyer as `refunded`. Part of a
//! milestone's money may go either way before it settles; a milestone
//! settled with money to both sides is `split`. Either party may dispute
//! one milestone (`disputed`) while the others go on.

use super::DomainError;

string_enum!(ProjectStatus {
    Draft => "draft",
    AwaitingSeller => "awaiting_seller",
    Active => "active",
    Completed => "completed",
    Cancelled => "cancelled",
    Disputed => "disputed",
});

/// Most milestones one project may have.
pub const MAX_MILESTONES: usize = 100;

string_enum!(MilestoneStatus {
    Pending => "pending",
    Funded => "funded",
    Submitted => "submitted",
    Approved => "approved",
    Released => "released",
    Rejected => "rejected",
    Refunded => "refunded",
    Disputed => "disputed",
    Split => "split",
});

/// Who is acting on a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Buyer,
    Seller,
    Admin,
}

fn refuse(what: &str, status: &str) -> DomainError {
    DomainError::conflict(format!("cannot {what}: the project is {status}"))
}

fn refuse_milestone(what: &str, status: MilestoneStatus) -> DomainError {
    DomainError::conflict(format!("cannot {what}: the milestone is {}", status.as_str()))
}

impl ProjectStatus {
    /// Editing the terms (title, milestones, amounts): only while a draft.
    pub fn check_editable(self) -> Result<(), DomainError> {
        match self {
            ProjectStatus::Draft => Ok(()),
            other => Err(refuse("change the terms", other.as_str())),
        }
    }

    /// The buyer sends the draft to the seller.
    pub fn send(self, by: Party) -> Result<ProjectStatus, DomainError> {
        match (self, by) {
            (ProjectStatus::Draft, Party::Buyer) => Ok(ProjectStatus::AwaitingSeller),
            (ProjectStatus::Draft, _) => Err(DomainError::conflict("only the buyer sends a project to the seller")),
            (other, _) => Err(refuse("send the project", other.as_str())),
        }
    }

    /// The seller accepts the terms; from then on milestones can be funded.
    pub fn accept(self, by: Party) -> Result<ProjectStatus, DomainError> {
        match (self, by) {
            (ProjectStatus::AwaitingSeller, Party::Seller) => Ok(ProjectStatus::Active),
            (ProjectStatus::AwaitingSeller, _) => Err(DomainError::conflict("only the seller accepts a project")),
            (other, _) => Err(refuse("accept the project", other.as_str())),
        }
    }

    /// Money moves (hold, release) only on an active project.
    pub fn check_active(self, what: &str) -> Result<(), DomainError> {
        match self {
            ProjectStatus::Active => Ok(()),
            other => Err(refuse(what, other.as_str())),
        }
    }

    /// Cancel: before acceptance freely; once active, only while no work has
    /// been submitted (held money goes back to the buyer).
    pub fn cancel(self, milestones: &[MilestoneStatus]) -> Result<ProjectStatus, DomainError> {
        match self {
            ProjectStatus::Draft | ProjectStatus::AwaitingSeller => Ok(ProjectStatus::Cancelled),
            ProjectStatus::Active => {
                let worked = milestones.iter().any(|m| {
                    matches!(
                        m,
                        MilestoneStatus::Submitted
                            | MilestoneStatus::Approved
                            | MilestoneStatus::Released
                            | MilestoneStatus::Rejected
                            | MilestoneStatus::Disputed
                            | MilestoneStatus::Split
                    )
                });
                if worked {
                    Err(DomainError::conflict(
                        "cannot cancel: work has been delivered on this project; open a dispute instead",
                    ))
                } else {
                    Ok(ProjectStatus::Cancelled)
                }
            }
            other => Err(refuse("cancel", other.as_str())),
        }
    }

    /// Held money may go back to the buyer while the project is active or
    /// disputed.
    pub fn check_refundable(self) -> Result<(), DomainError> {
        match self {
            ProjectStatus::Active | ProjectStatus::Disputed => Ok(()),
            other => Err(refuse("refund", other.as_str())),
        }
    }

    pub fn open_dispute(self) -> Result<ProjectStatus, DomainError> {
        match self {
            ProjectStatus::Active => Ok(ProjectStatus::Disputed),
            other => Err(refuse("open a dispute", other.as_str())),
        }
    }

    pub fn resolve_dispute(self) -> Result<ProjectStatus, DomainError> {
        match self {
            ProjectStatus::Disputed => Ok(ProjectStatus::Completed),
            other => Err(refuse("resolve a dispute", other.as_str())),
        }
    }
}

impl MilestoneStatus {
    /// Money for this milestone is in escrow now.
    pub fn holds_funds(self) -> bool {
        matches!(
            self,
            MilestoneStatus::Funded
                | MilestoneStatus::Submitted
                | MilestoneStatus::Approved
                | MilestoneStatus::Rejected
                | MilestoneStatus::Disputed
        )
    }

    /// Nothing is held any more: its money went to the seller, the buyer, or both.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            MilestoneStatus::Released | MilestoneStatus::Refunded | MilestoneStatus::Split
        )
    }

    /// What a milestone is called once nothing is held, from what each side
    /// received: never "released" when the buyer got part back.
    pub fn settled(released: i64, refunded: i64) -> MilestoneStatus {
        match (released > 0, refunded > 0) {
            (true, true) => MilestoneStatus::Split,
            (true, false) => MilestoneStatus::Released,
            _ => MilestoneStatus::Refunded,
        }
    }

    /// Part of the held money to the seller, by the buyer's choice: any
    /// time the milestone holds money and is not under dispute.
    pub fn check_partial_release(self) -> Result<(), DomainError> {
        match self {
            MilestoneStatus::Funded
            | MilestoneStatus::Submitted
            | MilestoneStatus::Approved
            | MilestoneStatus::Rejected => Ok(()),
            other => Err(refuse_milestone("release part of it", other)),
        }
    }

    /// Either party disputes a milestone holding money; an admin (or the
    /// other party's silence) settles it.
    pub fn open_dispute(self, by: Party) -> Result<MilestoneStatus, DomainError> {
        if by == Party::Admin {
            return Err(DomainError::conflict("a dispute is opened by the buyer or the seller"));
        }
        match self {
            MilestoneStatus::Funded
            | MilestoneStatus::Submitted
            | MilestoneStatus::Approved
            | MilestoneStatus::Rejected => Ok(MilestoneStatus::Disputed),
            other => Err(refuse_milestone("dispute it", other)),
        }
    }

    pub fn fund(self) -> Result<MilestoneStatus, DomainError> {
        match self {
            MilestoneStatus::Pending => Ok(MilestoneStatus::Funded),
            other => Err(refuse_milestone("fund it", other)),
        }
    }

    /// The seller delivers (again, after a rejection).
    pub fn submit(self, by: Party) -> Result<MilestoneStatus, DomainError> {
        if by != Party::Seller {
            return Err(DomainError::conflict("only the seller submits a milestone"));
        }
        match self {
            MilestoneStatus::Funded | MilestoneStatus::Rejected => Ok(MilestoneStatus::Submitted),
            other => Err(refuse_milestone("submit it", other)),
        }
    }

    /// The buyer approves or rejects a submission.
    pub fn review(self, by: Party, approve: bool) -> Result<MilestoneStatus, DomainError> {
        if by != Party::Buyer {
            return Err(DomainError::conflict("only the buyer approves or rejects a milestone"));
        }
        match self {
            MilestoneStatus::Submitted if approve => Ok(MilestoneStatus::Approved),
            MilestoneStatus::Submitted => Ok(MilestoneStatus::Rejected),
            other => Err(refuse_milestone("review it", other)),
        }
    }

    pub fn release(self) -> Result<MilestoneStatus, DomainError> {
        match self {
            MilestoneStatus::Approved => Ok(MilestoneStatus::Released),
            other => Err(refuse_milestone("release it", other)),
        }
    }

    /// Unreleased money back to the buyer: funded work not yet approved.
    pub fn refund(self) -> Result<MilestoneStatus, DomainError> {
        match self {
            MilestoneStatus::Funded | MilestoneStatus::Submitted | MilestoneStatus::Rejected => {
                Ok(MilestoneStatus::Refunded)
            }
            other => Err(refuse_milestone("refund it", other)),
        }
    }

    /// An admin settles a disputed milestone.
    pub fn check_disputed(self) -> Result<(), DomainError> {
        match self {
            MilestoneStatus::Disputed => Ok(()),
            other => Err(refuse_milestone("resolve its dispute", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MilestoneStatus as M;
    use ProjectStatus as P;

    #[test]
    fn a_project_goes_from_draft_to_active_only_through_both_parties() {
        assert_eq!(P::Draft.send(Party::Buyer).unwrap(), P::AwaitingSeller);
        assert!(P::Draft.send(Party::Seller).is_err());
        assert_eq!(P::AwaitingSeller.accept(Party::Seller).unwrap(), P::Active);
        assert!(P::AwaitingSeller.accept(Party::Buyer).is_err());
        assert!(P::Active.accept(Party::Seller).is_err());
        assert!(P::Active.check_editable().is_err());
    }

    #[test]
    fn milestones_follow_the_delivery_cycle() {
        let funded = M::Pending.fund().unwrap();
        assert!(funded.release().is_err(), "no release before approval");
        let submitted = funded.submit(Party::Seller).unwrap();
        assert!(funded.submit(Party::Buyer).is_err());
        let rejected = submitted.review(Party::Buyer, false).unwrap();
        assert_eq!(rejected, M::Rejected);
        let approved = rejected
            .submit(Party::Seller)
            .unwrap()
            .review(Party::Buyer, true)
            .unwrap();
        assert!(approved.refund().is_err(), "approved work is the seller's");
        assert_eq!(approved.release().unwrap(), M::Released);
        assert!(M::Released.release().is_err(), "no double release");
    }

    #[test]
    fn cancellation_protects_delivered_work() {
        assert_eq!(P::Active.cancel(&[M::Funded, M::Pending]).unwrap(), P::Cancelled);
        assert!(P::Active.cancel(&[M::Submitted]).is_err());
        assert!(P::Completed.cancel(&[]).is_err());
        assert!(P::Active.cancel(&[M::Disputed]).is_err());
    }

    #[test]
    fn a_settled_milestone_says_who_got_the_money() {
        assert_eq!(M::settled(100, 0), M::Released);
        assert_eq!(M::settled(0, 100), M::Refunded);
        assert_eq!(M::settled(60, 40), M::Split, "never released for a split");
        assert!(M::Disputed.holds_funds() && !M::Split.holds_funds());
        assert_eq!(M::Submitted.open_dispute(Party::Buyer).unwrap(), M::Disputed);
        assert!(M::Submitted.open_dispute(Party::Admin).is_err());
        assert!(M::Released.open_dispute(Party::Seller).is_err());
        assert!(
            M::Disputed.check_partial_release().is_err(),
            "a disputed milestone waits for its resolution"
        );
    }
}
