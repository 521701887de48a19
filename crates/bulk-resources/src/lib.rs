#![doc = include_str!("../README.md")]

mod compartment;
mod error;
mod load;
mod migrations;
mod postgres;
mod seed;
mod sqlite;
mod store;

pub use compartment::{compartment_of, group_member_patients, Compartment};
pub use error::ResourceError;
pub use load::{load_files, load_lines, LineError, LoadReport};
pub use postgres::PostgresStore;
pub use seed::{seed, SeedSpec};
pub use sqlite::SqliteStore;
pub use store::{open, NewResource, PatientFilter, ResourceQuery, ResourceStore, StoredResource};
