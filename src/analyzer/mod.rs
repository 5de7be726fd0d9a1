//! The sans-IO analyzer: what drivers tell it ([`input`]), the state machine of one
//! connection ([`session`]), and what it says back ([`event`]). It reads no clock and touches
//! no socket or file.

pub mod event;
pub mod input;
pub mod links;
pub mod pairing;
pub mod session;
