//! The command line: one module per group of commands, each holding its clap arguments and a
//! short `run` that calls into `ops`.
//!
//! Parsing happens in two stages, as in ripgrep: clap produces the plain structs below; `run`
//! then validates the namespace and zone first (before anything else, as the original did) and
//! builds the heavy objects (AWS clients, the role registry) only when a command needs them.

pub mod args;
mod cluster;
mod config;
mod create;
mod docs;
mod images;
mod instances;
mod keys;
mod plugin;
mod roles;
mod security;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::ctx::Globals;
use crate::errors::Result;

/// Create and manage EC2 boxes and their images, provision them over SSH, and keep your team's
/// SSH keys in sync on every box.
#[derive(Parser, Debug)]
#[command(
    name = "cgcloud",
    version,
    propagate_version = true,
    max_term_width = 110
)]
pub struct Cli {
    /// Log details of what cgcloud does, including every AWS and SSH step
    #[arg(long, global = true)]
    pub debug: bool,

    /// Show only warnings and errors on stderr
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,

    /// Load role plugins from this file or directory (repeatable; highest priority; needs no
    /// lock entry). More plugin directories: CGCLOUD_PLUGIN_PATH, the config file's
    /// `[plugins] paths`, and the data directory's `plugins/`
    #[arg(long = "plugin", global = true, value_name = "PATH")]
    pub plugins: Vec<PathBuf>,

    /// Load roles from this plugin file (the original's --script; same as --plugin)
    #[arg(short = 's', long = "script", value_name = "PATH", hide = true)]
    pub scripts: Vec<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    ListRoles(roles::ListRolesArgs),
    ListOptions(roles::ListOptionsArgs),
    Create(create::CreateArgs),
    Recreate(create::RecreateArgs),
    Start(instances::StartArgs),
    Stop(instances::StopArgs),
    Reboot(instances::RebootArgs),
    Terminate(instances::TerminateArgs),
    Image(images::ImageArgs),
    Show(instances::ShowArgs),
    Ssh(instances::SshArgs),
    Rsync(instances::RsyncArgs),
    List(instances::ListArgs),
    ListImages(images::ListImagesArgs),
    DeleteImage(images::DeleteImageArgs),
    RegisterKey(keys::RegisterKeyArgs),
    Cleanup(security::CleanupArgs),
    UpdateInstanceProfile(instances::UpdateInstanceProfileArgs),
    ResetSecurity(security::ResetSecurityArgs),
    CreateCluster(cluster::CreateClusterArgs),
    GrowCluster(cluster::GrowClusterArgs),
    StartCluster(cluster::ClusterLifecycleArgs),
    StopCluster(cluster::ClusterLifecycleArgs),
    TerminateCluster(cluster::TerminateClusterArgs),
    SshCluster(cluster::SshClusterArgs),
    RsyncCluster(cluster::RsyncClusterArgs),
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    Config(config::ConfigArgs),
    Completions(docs::CompletionsArgs),
    Man(docs::ManArgs),
}

impl Command {
    /// The command's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::ListRoles(_) => "list-roles",
            Command::ListOptions(_) => "list-options",
            Command::Create(_) => "create",
            Command::Recreate(_) => "recreate",
            Command::Start(_) => "start",
            Command::Stop(_) => "stop",
            Command::Reboot(_) => "reboot",
            Command::Terminate(_) => "terminate",
            Command::Image(_) => "image",
            Command::Show(_) => "show",
            Command::Ssh(_) => "ssh",
            Command::Rsync(_) => "rsync",
            Command::List(_) => "list",
            Command::ListImages(_) => "list-images",
            Command::DeleteImage(_) => "delete-image",
            Command::RegisterKey(_) => "register-key",
            Command::Cleanup(_) => "cleanup",
            Command::UpdateInstanceProfile(_) => "update-instance-profile",
            Command::ResetSecurity(_) => "reset-security",
            Command::CreateCluster(_) => "create-cluster",
            Command::GrowCluster(_) => "grow-cluster",
            Command::StartCluster(_) => "start-cluster",
            Command::StopCluster(_) => "stop-cluster",
            Command::TerminateCluster(_) => "terminate-cluster",
            Command::SshCluster(_) => "ssh-cluster",
            Command::RsyncCluster(_) => "rsync-cluster",
            Command::Plugin(_) => "plugin",
            Command::Keys(_) => "keys",
            Command::Config(_) => "config",
            Command::Completions(_) => "completions",
            Command::Man(_) => "man",
        }
    }

    /// The context options of the command, if it takes them.
    fn context_args(&self) -> Option<&args::ContextArgs> {
        Some(match self {
            Command::ListRoles(_)
            | Command::Plugin(_)
            | Command::Completions(_)
            | Command::Man(_) => return None,
            Command::Config(a) => &a.context,
            Command::Keys(k) => k.context(),
            Command::ListOptions(a) => &a.context,
            Command::Create(a) => &a.context,
            Command::Recreate(a) => &a.context,
            Command::Start(a) => &a.context,
            Command::Stop(a) => &a.context,
            Command::Reboot(a) => &a.context,
            Command::Terminate(a) => &a.context,
            Command::Image(a) => &a.context,
            Command::Show(a) => &a.context,
            Command::Ssh(a) => &a.context,
            Command::Rsync(a) => &a.context,
            Command::List(a) => &a.context,
            Command::ListImages(a) => &a.context,
            Command::DeleteImage(a) => &a.context,
            Command::RegisterKey(a) => &a.context,
            Command::Cleanup(a) => &a.context,
            Command::UpdateInstanceProfile(a) => &a.context,
            Command::ResetSecurity(a) => &a.context,
            Command::CreateCluster(a) => &a.context,
            Command::GrowCluster(a) => &a.context,
            Command::StartCluster(a) => &a.context,
            Command::StopCluster(a) => &a.context,
            Command::TerminateCluster(a) => &a.context,
            Command::SshCluster(a) => &a.context,
            Command::RsyncCluster(a) => &a.context,
        })
    }
}

/// Runs a parsed command line; returns the process exit status.
pub async fn run(cli: Cli, globals: Globals) -> Result<i32> {
    // The namespace is validated before anything else, whatever the command's other arguments.
    if let Some(context) = cli.command.context_args() {
        crate::ctx::prevalidate_namespace(&context.namespace)?;
    }
    // The configuration file and cgcloud's environment values, checked once before any work.
    crate::config::load()?;
    match cli.command {
        Command::ListRoles(a) => roles::list_roles(a, &globals).map(|_| 0),
        Command::ListOptions(a) => roles::list_options(a, &globals).map(|_| 0),
        Command::Create(a) => create::create(a, &globals).await,
        Command::Recreate(a) => create::recreate(a, &globals).await,
        Command::Start(a) => instances::start(a, &globals).await,
        Command::Stop(a) => instances::stop(a, &globals).await,
        Command::Reboot(a) => instances::reboot(a, &globals).await,
        Command::Terminate(a) => instances::terminate(a, &globals).await.map(|_| 0),
        Command::Image(a) => instances::image(a, &globals).await,
        Command::Show(a) => instances::show(a, &globals).await.map(|_| 0),
        Command::Ssh(a) => instances::ssh(a, &globals).await,
        Command::Rsync(a) => instances::rsync(a, &globals).await,
        Command::List(a) => instances::list(a, &globals).await.map(|_| 0),
        Command::ListImages(a) => images::list_images(a, &globals).await.map(|_| 0),
        Command::DeleteImage(a) => images::delete_image(a, &globals).await.map(|_| 0),
        Command::RegisterKey(a) => keys::register_key(a, &globals).await.map(|_| 0),
        Command::Cleanup(a) => security::cleanup(a, &globals).await,
        Command::UpdateInstanceProfile(a) => instances::update_instance_profile(a, &globals).await,
        Command::ResetSecurity(a) => security::reset_security(a, &globals).await,
        Command::StartCluster(a) => cluster::start_cluster(a, &globals).await,
        Command::StopCluster(a) => cluster::stop_cluster(a, &globals).await,
        Command::TerminateCluster(a) => cluster::terminate_cluster(a, &globals).await,
        Command::SshCluster(a) => cluster::ssh_cluster(a, &globals).await,
        Command::RsyncCluster(a) => cluster::rsync_cluster(a, &globals).await,
        Command::CreateCluster(a) => cluster::create_cluster(a, &globals).await,
        Command::GrowCluster(a) => cluster::grow_cluster(a, &globals).await,
        Command::Plugin(c) => plugin::run(c, &globals).map(|_| 0),
        Command::Keys(c) => keys::keys(c, &globals).await,
        Command::Config(a) => config::run(a, &globals).await,
        Command::Completions(a) => docs::completions(a, &globals).map(|_| 0),
        Command::Man(a) => docs::man(a, &globals).map(|_| 0),
    }
}
