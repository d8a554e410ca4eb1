//! The sandbox gateway: no network, deterministic, and every payment is
//! settled at once. The embedded default, so the whole money flow works on a
//! laptop with no account anywhere.

use super::{Accepted, BoxFuture, GatewayError, PaymentGateway, PaymentRequest};

pub struct Sandbox;

impl PaymentGateway for Sandbox {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    fn checkout<'a>(&'a self, request: PaymentRequest<'a>) -> BoxFuture<'a, Result<Accepted, GatewayError>> {
        Box::pin(async move {
            Ok(Accepted {
                checkout_url: Some(format!("sandbox://checkout/{}", request.reference)),
                confirmed: true,
            })
        })
    }

    fn payout<'a>(&'a self, _request: PaymentRequest<'a>) -> BoxFuture<'a, Result<Accepted, GatewayError>> {
        Box::pin(async move {
            Ok(Accepted {
                checkout_url: None,
                confirmed: true,
            })
        })
    }
}
