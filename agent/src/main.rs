//! cgcloud-agent: keeps a box's authorized keys in sync with the namespace's key pairs.

fn main() {
    eprintln!("ERROR: cgcloud-agent is not implemented yet");
    std::process::exit(255);
}
