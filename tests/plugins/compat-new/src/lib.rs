//! A plugin built against a (generated) cgcloud-plugin-api 1.1 that added the hook
//! `pre_terminate`; it overrides that hook and a 1.0 hook.
use cgcloud_plugin_api::prelude::*;

#[derive(Default)]
struct Newer;

impl Role for Newer {
    fn packages(&self, cx: &Cx) -> Result<Vec<String>> {
        let mut p = cx.sup().packages()?;
        p.push("newer-tool".into());
        Ok(p)
    }
    fn post_install_packages(&self, cx: &Cx) -> Result<()> {
        cx.sup().post_install_packages()?;
        cx.sudo("newer-tool --init")?;
        Ok(())
    }
    fn pre_terminate(&self, cx: &Cx) -> Result<()> {
        cx.sudo("newer-tool --flush")?;
        Ok(())
    }
}

cgcloud_plugin_api::export_plugin! {
    roles: [
        { name: "newer-box", extends: "generic-ubuntu-noble-box", description: "Built with plugin-api 1.1", new: Newer::default },
    ]
}
