//! The base behaviour at the root of every role chain (the original's `Box` class): what a
//! hook does when neither the role nor any parent overrides it. One function per hook of the
//! table in `role.rs`, with the same name and arguments.

use crate::cx::Cx;
use crate::error::{Result, RoleError};
use crate::proto::{
    Arch, BaseImageQuery, BlockDevice, CloudConfig, IamPolicy, RoleOption, RuleSource,
    SecurityGroupRule, Substitution, Virtualization,
};

fn missing(cx: &Cx<'_>, what: &str, hook: &str) -> RoleError {
    let role = cx
        .role_name()
        .unwrap_or_else(|_| cx.current_role().to_string());
    RoleError::failed(format!(
        "role `{role}` declares no {what}; extend a built-in role or implement `{hook}`"
    ))
}

pub fn options(_cx: &Cx<'_>) -> Result<Vec<RoleOption>> {
    Ok(Vec::new())
}

pub fn validate_options(_cx: &Cx<'_>) -> Result<()> {
    Ok(())
}

pub fn recommended_instance_type(_cx: &Cx<'_>) -> Result<String> {
    Ok("t3.micro".into())
}

pub fn virtualization_types(_cx: &Cx<'_>) -> Result<Vec<Virtualization>> {
    Ok(vec![Virtualization::Hvm])
}

pub fn architectures(_cx: &Cx<'_>) -> Result<Vec<Arch>> {
    Ok(vec![Arch::X86_64])
}

pub fn admin_account(cx: &Cx<'_>) -> Result<String> {
    Err(missing(cx, "admin account", "admin_account"))
}

pub fn default_account(cx: &Cx<'_>) -> Result<String> {
    cx.this().admin_account()
}

pub fn base_image(cx: &Cx<'_>) -> Result<BaseImageQuery> {
    Err(missing(cx, "base image", "base_image"))
}

pub fn security_group_rules(_cx: &Cx<'_>) -> Result<Vec<SecurityGroupRule>> {
    Ok(vec![
        SecurityGroupRule::tcp(22, RuleSource::SshClients),
        // Path-MTU discovery: ICMP type 3 ("destination unreachable") code 4.
        SecurityGroupRule::icmp(3, 4, RuleSource::Cidr("0.0.0.0/0".into())),
    ])
}

pub fn iam_role_features(_cx: &Cx<'_>) -> Result<Vec<String>> {
    Ok(Vec::new())
}

pub fn iam_policies(_cx: &Cx<'_>) -> Result<Vec<IamPolicy>> {
    Ok(Vec::new())
}

pub fn image_name_prefix(cx: &Cx<'_>) -> Result<String> {
    cx.role_name()
}

pub fn features(_cx: &Cx<'_>) -> Result<Vec<String>> {
    Ok(Vec::new())
}

pub fn block_devices(_cx: &Cx<'_>) -> Result<Vec<BlockDevice>> {
    Ok(Vec::new())
}

pub fn cloud_config(_cx: &Cx<'_>) -> Result<CloudConfig> {
    Ok(CloudConfig::default())
}

pub fn init_commands(_cx: &Cx<'_>) -> Result<Vec<String>> {
    Ok(Vec::new())
}

pub fn on_instance_running(_cx: &Cx<'_>, _first_boot: bool) -> Result<()> {
    Ok(())
}

pub fn on_instance_ready(_cx: &Cx<'_>, _first_boot: bool) -> Result<()> {
    Ok(())
}

pub fn setup_package_repos(_cx: &Cx<'_>) -> Result<()> {
    Ok(())
}

pub fn sync_package_repos(_cx: &Cx<'_>) -> Result<()> {
    Ok(())
}

pub fn pre_install_packages(_cx: &Cx<'_>) -> Result<()> {
    Ok(())
}

pub fn package_substitutions(_cx: &Cx<'_>) -> Result<Vec<Substitution>> {
    Ok(Vec::new())
}

pub fn packages(_cx: &Cx<'_>) -> Result<Vec<String>> {
    Ok(Vec::new())
}

pub fn install_packages(cx: &Cx<'_>, packages: Vec<String>) -> Result<()> {
    if packages.is_empty() {
        Ok(())
    } else {
        Err(missing(cx, "package manager", "install_packages"))
    }
}

pub fn post_install_packages(_cx: &Cx<'_>) -> Result<()> {
    Ok(())
}

pub fn upgrade_packages(cx: &Cx<'_>) -> Result<()> {
    Err(missing(cx, "package manager", "upgrade_packages"))
}
