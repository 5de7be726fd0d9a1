//! What the analysis amounts to: events folded into per-session reports ([`fold`], with their
//! timing in [`timing`]), and all sessions of a run and where their events go ([`monitor`]).
//! Plain data; `render` turns it into text and metrics.

pub mod fold;
pub mod history;
pub mod monitor;
pub mod timing;

pub use fold::{Report, SessionReport};
