//! The `cgcloud` binary against moto: each test runs in its own moto account and checks the
//! AWS state afterwards, not just what was printed.
#![allow(clippy::unwrap_used, clippy::print_stderr)] // A test crate: an unwrap that fails is a failing test; it prints what it ran.

mod agent;
mod bad_input;
mod boxes;
mod config;
mod faults;
mod help;
mod images;
mod instances;
mod killed;
mod namespace;
mod plugins;
mod preflight;
mod register_key;
mod security;
mod slurm;
mod team;
