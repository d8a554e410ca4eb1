//! What was built, from where, with what: embedded at compile time by build.rs.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BuildInfo {
    /// The crate version this binary was built from.
    pub version: &'static str,
    /// The short git commit, or "unknown" when built outside a checkout.
    pub git_sha: &'static str,
    /// UTC build time (RFC 3339).
    pub build_time: &'static str,
    pub rustc: &'static str,
}

impl BuildInfo {
    pub const fn current() -> BuildInfo {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            git_sha: env!("AMANI_GIT_SHA"),
            build_time: env!("AMANI_BUILD_TIME"),
            rustc: env!("AMANI_RUSTC_VERSION"),
        }
    }

    /// `amani@VERSION+SHA`, the release name error tracking groups by.
    pub fn release(&self) -> String {
        format!("amani@{}+{}", self.version, self.git_sha)
    }
}
