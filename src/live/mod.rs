//! The live drivers: the TCP proxy that forwards bytes unchanged and hands copies-free views
//! of them to the analysis thread ([`proxy`]), the `/metrics` HTTP endpoint ([`http`]), and
//! the active write/verify check of a master and its replica ([`check`]), and the analysis
//! thread's request to the scheduler ([`sched`]).

pub mod check;
pub mod http;
pub mod proxy;
#[allow(unsafe_code)] // sched_getattr/sched_setattr, each with its SAFETY reason
pub mod sched;
