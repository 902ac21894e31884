//! Plumbing shared by the test components, so each component's source shows
//! only the behaviour a host test relies on.

pub mod body;
pub mod error_name;
pub mod query;
pub mod response;
pub mod target;
