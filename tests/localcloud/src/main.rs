//! `cgcloud-localcloud`: set up, run and tear down the local cloud. See the library's docs.

fn main() {
    std::process::exit(cgcloud_localcloud::cli::main());
}
