//! Property test: random sequences of money operations, driven through the
//! HTTP API, against a simple in-memory model of who holds what. After each
//! step the balances match the model and `ledger check` passes.

use proptest::prelude::*;
use serde_json::json;

use crate::escrow::{active_project, assert_books_balance, available, money_post, post, verified_user};
use crate::helpers::{Engine, TestApp, TestDb};

#[derive(Debug, Clone)]
enum Op {
    Deposit(i64),
    Hold(usize),
    Submit(usize),
    Approve(usize),
    Reject(usize),
    Release(usize),
    Refund(usize),
    Withdraw(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1_000i64..60_000).prop_map(Op::Deposit),
        (0usize..3).prop_map(Op::Hold),
        (0usize..3).prop_map(Op::Submit),
        (0usize..3).prop_map(Op::Approve),
        (0usize..3).prop_map(Op::Reject),
        (0usize..3).prop_map(Op::Release),
        (0usize..3).prop_map(Op::Refund),
        (1_000i64..40_000).prop_map(Op::Withdraw),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum M {
    Pending,
    Funded,
    Submitted,
    Approved,
    Released,
    Rejected,
    Refunded,
}

struct Model {
    buyer: i64,
    seller: i64,
    escrow: i64,
    active: bool,
    milestones: Vec<(i64, M)>,
}

impl Model {
    fn settle(&mut self) {
        if self
            .milestones
            .iter()
            .all(|(_, m)| matches!(m, M::Released | M::Refunded))
        {
            self.active = false;
        }
    }
}

const FEE_BPS: i64 = 250;

fn fee(amount: i64) -> i64 {
    (amount * FEE_BPS + 5_000) / 10_000
}

async fn run(engine: Engine, amounts: Vec<i64>, ops: Vec<Op>) {
    let db = TestDb::create(engine).await;
    let app = TestApp::spawn(&db).await;
    let admin = app.admin().await;
    let buyer = verified_user(&app, "client", &admin).await;
    let seller = verified_user(&app, "freelancer", &admin).await;
    let (project, ids) = active_project(&app, &buyer, &seller, &amounts).await;
    let destination = crate::escrow::bank_destination(&app, &seller).await;
    let mut model = Model {
        buyer: 0,
        seller: 0,
        escrow: 0,
        active: true,
        milestones: amounts.iter().map(|a| (*a, M::Pending)).collect(),
    };
    for op in ops {
        let (status, allowed) = match op {
            Op::Deposit(amount) => {
                let (status, _) = money_post(
                    &app,
                    &buyer,
                    "/api/v1/wallet/deposit",
                    json!({"amount": amount, "currency": "NGN"}),
                )
                .await;
                model.buyer += amount;
                (status, true)
            }
            Op::Hold(i) => {
                let (amount, state) = model.milestones[i];
                let allowed = model.active && state == M::Pending && model.buyer >= amount + fee(amount);
                let (status, _) = money_post(
                    &app,
                    &buyer,
                    "/api/v1/escrow/hold",
                    json!({"project_id": project, "milestone_id": ids[i]}),
                )
                .await;
                if allowed {
                    model.buyer -= amount + fee(amount);
                    model.escrow += amount;
                    model.milestones[i].1 = M::Funded;
                }
                (status, allowed)
            }
            Op::Submit(i) => {
                let allowed = model.active && matches!(model.milestones[i].1, M::Funded | M::Rejected);
                let (status, _) = post(
                    &app,
                    &seller,
                    &format!("/api/v1/milestones/{}/submit", ids[i]),
                    json!({}),
                )
                .await;
                if allowed {
                    model.milestones[i].1 = M::Submitted;
                }
                (status, allowed)
            }
            Op::Approve(i) | Op::Reject(i) => {
                let approve = matches!(op, Op::Approve(_));
                let allowed = model.active && model.milestones[i].1 == M::Submitted;
                let (status, _) = post(
                    &app,
                    &buyer,
                    &format!("/api/v1/milestones/{}/approve", ids[i]),
                    json!({"approve": approve, "reason": "not yet"}),
                )
                .await;
                if allowed {
                    model.milestones[i].1 = if approve { M::Approved } else { M::Rejected };
                }
                (status, allowed)
            }
            Op::Release(i) => {
                let (amount, state) = model.milestones[i];
                let allowed = model.active && state == M::Approved;
                let (status, _) =
                    money_post(&app, &buyer, "/api/v1/escrow/release", json!({"milestone_id": ids[i]})).await;
                if allowed {
                    model.escrow -= amount;
                    model.seller += amount;
                    model.milestones[i].1 = M::Released;
                    model.settle();
                }
                (status, allowed)
            }
            Op::Refund(i) => {
                let (amount, state) = model.milestones[i];
                let allowed = model.active && matches!(state, M::Funded | M::Submitted | M::Rejected);
                let (status, _) = money_post(
                    &app,
                    &seller,
                    "/api/v1/escrow/refund",
                    json!({"project_id": project, "milestone_id": ids[i]}),
                )
                .await;
                if allowed {
                    model.escrow -= amount;
                    model.buyer += amount;
                    model.milestones[i].1 = M::Refunded;
                    model.settle();
                }
                (status, allowed)
            }
            Op::Withdraw(amount) => {
                let allowed = model.seller >= amount;
                let (status, _) = money_post(
                    &app,
                    &seller,
                    "/api/v1/wallet/withdraw",
                    json!({"amount": amount, "currency": "NGN", "destination_id": destination}),
                )
                .await;
                if allowed {
                    model.seller -= amount;
                }
                (status, allowed)
            }
        };
        if allowed {
            assert!((200..300).contains(&status), "{op:?} should succeed, got {status}");
        } else {
            assert!((400..500).contains(&status), "{op:?} should be refused, got {status}");
        }
        assert_eq!(available(&app, &buyer).await, model.buyer, "buyer after {op:?}");
        assert_eq!(available(&app, &seller).await, model.seller, "seller after {op:?}");
        assert_eq!(assert_books_balance(&app).await, model.escrow, "escrow after {op:?}");
    }
}

fn check(engine: Engine, cases: u32) {
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(amounts in proptest::collection::vec(1_000i64..30_000, 3), ops in proptest::collection::vec(op(), 5..30))| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(run(engine, amounts, ops));
    });
}

#[test]
fn random_operations_match_the_model_and_keep_the_books_on_sqlite() {
    check(Engine::Sqlite, 12);
}

#[test]
fn random_operations_match_the_model_and_keep_the_books_on_postgres() {
    check(Engine::Postgres, 6);
}
