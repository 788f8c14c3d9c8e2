//! A role whose `packages` hook panics; everything else works.
use cgcloud_plugin_api::prelude::*;

#[derive(Default)]
struct Panicky;

impl Role for Panicky {
    fn packages(&self, _cx: &Cx) -> Result<Vec<String>> {
        let empty: Vec<String> = Vec::new();
        let index = empty.len() + 3;
        Ok(vec![empty[index].clone()])
    }
    fn post_install_packages(&self, cx: &Cx) -> Result<()> {
        cx.sudo("echo still alive")?;
        Ok(())
    }
}

cgcloud_plugin_api::export_plugin! {
    roles: [
        { name: "panicky-box", extends: "generic-debian-bookworm-box", description: "Panics in `packages`", new: Panicky::default },
    ]
}
