//! The work behind the commands.

pub mod access;
pub mod agent;
pub mod boot;
pub mod cleanup;
pub mod cluster;
pub mod create;
pub mod hostkeys;
pub mod images;
pub mod instances;
pub mod keypairs;
pub mod keys;
pub mod launch;
pub mod plan;
pub mod power;
pub mod prepare;
pub mod progress;
pub mod register_key;
pub mod security;
pub mod volumes;
