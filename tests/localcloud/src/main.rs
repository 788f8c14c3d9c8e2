//! `cgcloud-localcloud`: set up, run and tear down the local cloud. See the library's docs.
// The local cloud is a command-line tool whose output is its interface.
#![allow(clippy::print_stdout, clippy::print_stderr)]

fn main() {
    std::process::exit(cgcloud_localcloud::cli::main());
}
