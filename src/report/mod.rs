//! What the analysis amounts to: events folded into per-session reports ([`fold`], with the
//! timing fold in [`timing`]), all sessions of a run and where their events go ([`monitor`]),
//! and the Prometheus rendering of it all ([`metrics`]).

pub mod fold;
pub mod metrics;
pub mod monitor;
pub mod timing;

pub use fold::{Report, SessionReport};
