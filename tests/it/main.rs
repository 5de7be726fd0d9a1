//! The one integration-test crate: real servers, the real binary, live sessions re-fed.
#![allow(unreachable_pub, dead_code)]

mod chunking;
mod cli;
mod forwarding;
mod proxy;
mod rdb;
mod recording;
mod replay;
mod support;
mod timing;
