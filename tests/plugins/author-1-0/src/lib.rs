//! Code written against cgcloud-plugin-api 1.0.
pub mod author;
