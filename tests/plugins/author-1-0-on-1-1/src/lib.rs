//! `author-1-0`'s code, unchanged, against plugin-api 1.1.
#[path = "../../author-1-0/src/author.rs"]
pub mod author;
