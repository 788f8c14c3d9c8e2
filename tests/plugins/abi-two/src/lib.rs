//! A plugin built against a (generated) cgcloud-plugin-api 2.0, which speaks ABI 2.
use cgcloud_plugin_api::prelude::*;

#[derive(Default)]
struct Future;
impl Role for Future {}

cgcloud_plugin_api::export_plugin! {
    roles: [
        { name: "future-box", extends: "generic-debian-bookworm-box", description: "From ABI 2", new: Future::default },
    ]
}
