//! End-to-end tests: the API over real HTTP, workers in-process, against the
//! real Redis, PostgreSQL and IPFS node that `make test` starts.

mod helpers;

mod access;
mod auth;
mod cancel;
mod conformance;
mod content;
mod encryption;
mod expiry;
mod exports;
mod faults;
mod flow;
mod gateway;
mod hostile;
mod kickoff;
mod ops;
mod outages;
mod queue;
mod resources;
mod serving;
mod smart;
mod workers;
