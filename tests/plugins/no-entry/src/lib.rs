//! A well-formed shared library that is not a cgcloud plugin (no `export_plugin!`).

#[no_mangle]
pub extern "C" fn not_a_plugin() -> u32 {
    42
}
