//! Defines `example-web-box`, like the example plugin does.
use cgcloud_plugin_api::prelude::*;

#[derive(Default)]
struct OtherWeb;

impl Role for OtherWeb {}

cgcloud_plugin_api::export_plugin! {
    roles: [
        { name: "example-web-box", extends: "generic-ubuntu-noble-box", description: "Another web box", new: OtherWeb::default },
    ]
}
