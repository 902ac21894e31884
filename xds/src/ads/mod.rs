//! The ADS client: a sans-IO protocol state machine ([`AdsState`]) and the tokio task that
//! drives it over a tonic channel ([`AdsClient`]).

mod cache;
mod client;
mod state;

pub use client::{AdsClient, AdsClientConfig, AdsHandle, Backoff};
pub use state::{AdsState, Incoming, Outgoing, Step};
