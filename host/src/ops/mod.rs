//! The work behind the commands.

pub mod access;
pub mod boxes;
pub mod images;
pub mod instances;
pub mod keypairs;
pub mod launch;
pub mod prepare;
pub mod register_key;
