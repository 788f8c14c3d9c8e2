fn main() {
    std::process::exit(cgcloud::main());
}
