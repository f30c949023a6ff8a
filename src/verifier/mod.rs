//! Offline verification of tessera's access tokens for services (work in progress).
