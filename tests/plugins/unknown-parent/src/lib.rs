//! A role whose parent nobody defines.
use cgcloud_plugin_api::prelude::*;

#[derive(Default)]
struct Orphan;
impl Role for Orphan {}

cgcloud_plugin_api::export_plugin! {
    roles: [
        { name: "orphan-box", extends: "no-such-box", description: "Has no parent", new: Orphan::default },
    ]
}
