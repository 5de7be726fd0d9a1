//! The one integration-test crate: real servers, the real binary, live sessions re-fed.
#![allow(unreachable_pub)]

/// Runs each scenario against Redis 7.0 (Debian), 6.0.9 and 8.2.3, Valkey 8.1.8 and 9.1.2
/// (PyPI): generates a module per scenario with one test per version (`scenario::redis_7_0`,
/// `…::redis_6_0`, `…::redis_8_2`, `…::valkey_8_1`, `…::valkey_9_1`).
macro_rules! on_every_version {
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
            #[test]
            fn redis_8_2() {
                super::$scenario(crate::support::Version::V8)
            }
            #[test]
            fn valkey_8_1() {
                super::$scenario(crate::support::Version::Valkey8)
            }
            #[test]
            fn valkey_9_1() {
                super::$scenario(crate::support::Version::Valkey9)
            }
        }
    )*};
}

mod architecture;
mod boundaries;
mod chunking;
mod cli;
mod cluster;
mod compression;
mod diagnosis;
mod faults;
mod faults_link;
mod faults_load;
mod figures;
mod forwarding;
mod html;
mod offsets;
mod prometheus;
mod proxy;
mod rdb;
mod rdb_options_and_slot_sync;
mod recording;
mod replay;
mod secrets;
mod sniff;
mod support;
mod timing;
mod two_connection;
mod wire;
