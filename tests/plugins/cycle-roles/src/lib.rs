//! Two roles that extend each other.
use cgcloud_plugin_api::prelude::*;

#[derive(Default)]
struct Chicken;
impl Role for Chicken {}

#[derive(Default)]
struct Egg;
impl Role for Egg {}

cgcloud_plugin_api::export_plugin! {
    roles: [
        { name: "chicken-box", extends: "egg-box", description: "First?", new: Chicken::default },
        { name: "egg-box", extends: "chicken-box", description: "Or first?", new: Egg::default },
    ]
}
