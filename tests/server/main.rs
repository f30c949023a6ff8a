//! The token service's integration tests, one binary: the real `tessera`
//! binary over HTTP, its router in-process, and `openapi.yaml`.

mod helpers;
mod introspection_cache;
mod listener;

mod api;
mod browser;
mod browser_api;
mod config;
mod container;
mod dpop;
mod feed;
mod observability;
mod openapi;
#[cfg(feature = "otel")]
mod otel;
mod properties;
mod refresh;
mod reload;
mod replicas;
mod rotation;
mod session_rules;
mod store_faults;
mod throttle;
mod walkthrough;
