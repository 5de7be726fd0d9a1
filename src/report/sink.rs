//! Where a run's output goes: [`Sink`]s take events and ended sessions' reports (text,
//! JSON lines, progress), a [`Tap`] takes the inputs themselves (a recording).

use crate::analyzer::event::Event;
use crate::analyzer::input::Input;
pub use crate::analyzer::links::Secrets;
use crate::report::SessionReport;

/// Where events go.
pub trait Sink: Send {
    /// Called for every event, in order.
    fn event(&mut self, e: &Event);
    /// Called once when a session has ended, with the report that holds it (a paired RDB
    /// connection's is its main connection's).
    fn session_done(&mut self, _report: &SessionReport) {}
}

/// Sees every input, right after the analysis did (recordings).
pub trait Tap: Send {
    /// One input; `secrets` is empty except for the replica's bytes.
    fn input(&mut self, input: &Input, secrets: &Secrets<'_>);
}
