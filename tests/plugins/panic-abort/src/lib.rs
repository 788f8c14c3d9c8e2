//! A plugin meant to be built with `panic = "abort"` (the `abort` profile).
use cgcloud_plugin_api::prelude::*;

#[derive(Default)]
struct Aborting;

impl Role for Aborting {}

cgcloud_plugin_api::export_plugin! {
    roles: [
        { name: "aborting-box", extends: "generic-debian-bookworm-box", description: "Built with panic = abort", new: Aborting::default },
    ]
}
