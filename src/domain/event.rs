//! What the event log says happened: a closed list of event types, each
//! named `<object>.<what happened>`, with the object its `data` snapshots.
//! The list is the contract with the marketplace (README, "Events and
//! webhooks"); a new type is added here, never renamed.

use serde::{Deserialize, Serialize};

/// The object an event's `data` is a snapshot of (after the change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A project without its milestones.
    Project,
    Milestone,
    /// An escrow transaction (hold, release, refund, deposit, withdrawal).
    Transaction,
    /// A KYC decision (the submission's id, status and reason; no documents
    /// or personal data).
    Kyc,
}

impl Subject {
    pub fn as_str(self) -> &'static str {
        match self {
            Subject::Project => "project",
            Subject::Milestone => "milestone",
            Subject::Transaction => "transaction",
            Subject::Kyc => "kyc_submission",
        }
    }
}

macro_rules! event_types {
    ($($variant:ident => $text:literal, $subject:ident, $doc:literal;)+) => {
        /// Every event type Amani writes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum EventType {
            $( #[doc = $doc] #[serde(rename = $text)] $variant, )+
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $text),+ }
            }

            /// What `data` holds.
            pub fn subject(self) -> Subject {
                match self { $(EventType::$variant => Subject::$subject),+ }
            }

            /// One line for the documentation.
            pub fn describe(self) -> &'static str {
                match self { $(EventType::$variant => $doc),+ }
            }

            pub fn parse(text: &str) -> Option<EventType> {
                match text { $($text => Some(EventType::$variant),)+ _ => None }
            }
        }
    };
}

event_types! {
    ProjectCreated => "project.created", Project, "A buyer created a project (a draft).";
    ProjectSent => "project.sent", Project, "The buyer sent the draft to the seller.";
    ProjectAccepted => "project.accepted", Project, "The seller accepted: the project is active.";
    ProjectDisputed => "project.disputed", Project, "A party opened a dispute over the whole project.";
    ProjectResolved => "project.resolved", Project, "An admin resolved the dispute (the money moves are escrow.* events).";
    ProjectCancelled => "project.cancelled", Project, "The project was cancelled (refunds are escrow.refunded events).";
    ProjectCompleted => "project.completed", Project, "Every milestone is settled.";
    ProjectExpired => "project.expired", Project, "The project was not fully funded by its funding deadline and was cancelled by the system (refunds are escrow.refunded events).";
    MilestoneFunded => "milestone.funded", Milestone, "The buyer's money for the milestone is held in escrow.";
    MilestoneSubmitted => "milestone.submitted", Milestone, "The seller delivered the milestone.";
    MilestoneApproved => "milestone.approved", Milestone, "The buyer approved the delivery.";
    MilestoneAutoReleased => "milestone.auto_released", Milestone, "The buyer did not answer a delivery within its inspection period: the system approved it and released it (milestone.released follows).";
    MilestoneRejected => "milestone.rejected", Milestone, "The buyer rejected the delivery (with a reason).";
    MilestoneReleased => "milestone.released", Milestone, "The milestone's escrow went to the seller.";
    MilestoneRefunded => "milestone.refunded", Milestone, "The milestone's escrow went back to the buyer.";
    MilestoneSplit => "milestone.split", Milestone, "The milestone settled with part of its escrow to each side (released_amount and refunded_amount say how much).";
    MilestoneOverdue => "milestone.overdue", Milestone, "The milestone passed its due_date undelivered (pending, funded or rejected); written once.";
    MilestoneDisputed => "milestone.disputed", Milestone, "A party disputed this milestone (the others go on); the other party may answer until dispute_respond_by.";
    MilestoneDisputeAnswered => "milestone.dispute_answered", Milestone, "The other party answered a milestone's dispute: an admin resolves it.";
    EscrowHeld => "escrow.held", Transaction, "Money moved from the buyer's balance into escrow (with the fee).";
    EscrowReleased => "escrow.released", Transaction, "Money moved from escrow to the seller's balance.";
    EscrowRefunded => "escrow.refunded", Transaction, "Money moved from escrow back to the buyer's balance.";
    DepositCompleted => "wallet.deposit.completed", Transaction, "A deposit landed: the balance is credited.";
    DepositFailed => "wallet.deposit.failed", Transaction, "A deposit failed or expired; nothing was credited.";
    DepositReview => "wallet.deposit.review", Transaction, "A deposit's money did not match; held for a person.";
    WithdrawalCompleted => "wallet.withdrawal.completed", Transaction, "A payout reached the destination.";
    WithdrawalFailed => "wallet.withdrawal.failed", Transaction, "A payout failed; the money is back in the balance (the transaction's status is `reversed`).";
    WithdrawalReview => "wallet.withdrawal.review", Transaction, "A payout's outcome needs a person.";
    KycApproved => "kyc.approved", Kyc, "A KYC submission was approved.";
    KycRejected => "kyc.rejected", Kyc, "A KYC submission was rejected (with a reason).";
}

/// By hand: the derive would list the variants' Rust names, not the
/// `serde(rename)`s a macro gives them.
impl utoipa::PartialSchema for EventType {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let described: Vec<String> = EventType::ALL
            .iter()
            .map(|e| format!("- `{}`: {}", e.as_str(), e.describe()))
            .collect();
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(EventType::ALL.iter().map(|e| e.as_str())))
            .description(Some(format!("What happened:\n{}", described.join("\n"))))
            .into()
    }
}

impl utoipa::ToSchema for EventType {}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_serialize_as_written() {
        for event in EventType::ALL {
            assert_eq!(EventType::parse(event.as_str()), Some(*event));
            assert_eq!(serde_json::to_value(event).unwrap(), serde_json::json!(event.as_str()));
            let object = event.as_str().split('.').next().unwrap();
            let expected = match event.subject() {
                Subject::Project => "project",
                Subject::Milestone => "milestone",
                Subject::Transaction if object == "wallet" => "wallet",
                Subject::Transaction => "escrow",
                Subject::Kyc => "kyc",
            };
            assert_eq!(object, expected, "{event} names its object");
        }
        assert_eq!(EventType::parse("milestone.paid"), None);
    }
}
