//! What the analysis amounts to, as plain data ([`model`]): events folded into per-session
//! reports ([`fold`], with their timing in [`timing`]), each replica's history across its
//! links ([`history`]), all sessions of a run and where their events go ([`monitor`]), what a
//! two-connection sync's connections announced against the RDB they got ([`versions`]), and
//! what an active `check` found ([`check`]).
//! `render` turns it into text and metrics.

pub mod check;
pub mod fold;
pub mod history;
pub mod model;
pub mod monitor;
pub mod reports;
pub mod sink;
pub mod status;
pub mod timing;
pub mod versions;

pub use fold::{Report, SessionReport, Settings};
