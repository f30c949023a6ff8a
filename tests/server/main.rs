//! The token service's integration tests, one binary: the real `tessera`
//! binary over HTTP, its router in-process, and `openapi.yaml`.

mod helpers;
mod listener;

mod api;
mod browser;
mod browser_api;
mod dpop;
mod feed;
mod openapi;
mod properties;
mod refresh;
mod replicas;
mod rotation;
mod session_rules;
mod store_faults;
mod throttle;
