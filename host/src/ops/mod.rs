//! The work behind the commands.

pub mod images;
pub mod instances;
pub mod keypairs;
pub mod register_key;
