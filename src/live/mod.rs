//! The live driver: the TCP proxy that forwards bytes unchanged and hands copies-free views of
//! them to the analysis thread ([`proxy`]), and the `/metrics` HTTP endpoint ([`http`]).

pub mod http;
pub mod proxy;
