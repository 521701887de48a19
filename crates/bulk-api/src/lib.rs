#![doc = include_str!("../README.md")]

mod auth;
mod error;
mod observe;
mod routes;
mod startup;
mod state;

pub use auth::{AuthConfigError, Claims, Verifier};
pub use error::ApiError;
pub use startup::Application;
pub use state::AppState;
