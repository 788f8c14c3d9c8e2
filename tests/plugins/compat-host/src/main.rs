//! Loads a plugin built against plugin-api 1.0 into a host built with plugin-api 1.1, runs the
//! hook 1.1 added and the set-up, and prints what happened as JSON.
//!
//! Usage: compat-host PLUGIN_FILE ROLE

use cgcloud_plugin_api::testing::FakeHost;
use cgcloud_plugin_host::{PluginSources, Registry};
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(file), Some(role)) = (args.get(1), args.get(2)) else {
        eprintln!("ERROR: usage: compat-host PLUGIN_FILE ROLE");
        std::process::exit(255);
    };
    let sources = PluginSources {
        cli: vec![PathBuf::from(file)],
        data_dir: std::env::temp_dir().join("compat-host-no-data-dir"),
        ..PluginSources::default()
    };
    let result = Registry::load(&sources)
        .and_then(|reg| reg.role(role))
        .map_err(|e| e.to_string())
        .and_then(|handle| {
            let host = FakeHost::new();
            let pre_terminate = handle
                .hooks(&host)
                .pre_terminate()
                .map_err(|e| e.to_string());
            let setup = handle.setup(&host, false).map_err(|e| e.to_string());
            let logs: Vec<String> = host.logs().into_iter().map(|(_, m)| m).collect();
            Ok(serde_json::json!({
                "api": cgcloud_plugin_api::API_VERSION,
                "pre_terminate": pre_terminate.err(),
                "setup": setup.err(),
                "commands": host.commands(),
                "logs": logs,
            }))
        });
    match result {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("ERROR: {e}");
            std::process::exit(255);
        }
    }
}
