#![doc = include_str!("../README.md")]

mod auth;
mod error;
mod estimate;
mod gzip;
mod observe;
mod range;
mod routes;
mod smart;
mod startup;
mod state;
mod throttle;

pub use auth::{AuthConfigError, Claims, Verifier};
pub use error::ApiError;
pub use smart::{http_client, BackendServices, OAuthCode, OAuthError};
pub use startup::Application;
pub use state::AppState;
pub use throttle::Throttle;
