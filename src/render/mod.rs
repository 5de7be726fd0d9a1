//! Renderers: turn the plain data of events and reports into text and Prometheus metrics.
//!
//! Nothing here holds state or decides anything; a new output format is a new file here.

pub mod check;
pub mod event;
pub mod html;
pub mod progress;
pub mod prometheus;
pub mod rdb;
pub mod sinks;
pub mod summary;
