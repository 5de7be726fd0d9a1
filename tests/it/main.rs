//! The one integration-test crate: real servers, the real binary, live sessions re-fed.
#![allow(unreachable_pub)]

/// Runs each scenario against Redis 7.0 (Debian) and 6.0.9 (PyPI): generates a module per
/// scenario with one test per version (`scenario::redis_7_0`, `scenario::redis_6_0`).
macro_rules! on_both_versions {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            fn redis_7_0() {
                super::$scenario(crate::support::Version::V7)
            }
            #[test]
            fn redis_6_0() {
                super::$scenario(crate::support::Version::V6)
            }
        }
    )*};
}

mod chunking;
mod cli;
mod defects;
mod fixtures;
mod forwarding;
mod proxy;
mod rdb;
mod recording;
mod replay;
mod splits;
mod support;
mod timing;
mod two_connection;
