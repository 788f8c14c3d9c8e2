//! The local cloud: moto_server's EC2 instances played by real, isolated Linux boxes.
//!
//! | module | job | entry point |
//! |---|---|---|
//! | `host` | root, kernel features, host tools, the host's Debian mirror | [`preflight`] |
//! | `rootfs` | debootstrapped, baked, cached root file systems | [`rootfs::recipe`] |
//! | `boxes` | one box: overlay, netns on the hub bridge, cgroup, nspawn | [`boxes::Layout`] |
//! | `daemon` | one cloud: hub, relays, lazy boot, lifecycle watcher | [`daemon::up`] |
//! | `imds` | the metadata stand-in at 169.254.169.254 | – |
//! | `dns` | the VPC's resolver at 169.254.169.253: instances' private names | – |
//! | `cleanup` | finding and removing everything a cloud left | [`cleanup::down`] |
//! | `moto` | moto's state over plain HTTP | [`moto::MotoApi`] |
//! | `pipe` | byte pipes across network namespaces | – |
//! | `fixture` | the Rust end-to-end test fixture | [`LocalCloud`] |
//! | `cli` | the `cgcloud-localcloud` command line | [`cli::main`] |
// The local cloud is a command-line tool whose output is its interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod boxes;
pub mod cleanup;
pub mod cli;
pub mod daemon;
mod dns;
mod ebs;
mod fixture;
pub mod host;
mod imds;
pub mod moto;
mod pipe;
pub mod rootfs;
mod util;
pub mod vpc;

pub use fixture::{amis_path, locate_binary, max_clouds, LocalCloud, REGION, ZONE};
pub use host::preflight;
