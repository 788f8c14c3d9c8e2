//! The agent's command line, shared by the binary and by the host, which renders it into the
//! systemd unit ([`RunOptions::to_args`]).

use std::time::Duration;

use clap::Args;

/// Default seconds between periodic refreshes.
pub const DEFAULT_INTERVAL_SECONDS: u64 = 300;

/// What `cgcloud-agent run` (and `once`, `unit`) is told.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct RunOptions {
    /// The box's namespace, e.g. `/alice/`. `__me__` is replaced by `CGCLOUD_ME` if set.
    #[arg(long, short = 'n', env = "CGCLOUD_NAMESPACE")]
    pub namespace: String,

    /// The box's availability zone, e.g. `us-west-2a`; its region is the one the agent uses.
    #[arg(long, short = 'z', env = "CGCLOUD_ZONE")]
    pub zone: String,

    /// The keypair globs, unexpanded: names, shell globs, `@user`, `@@group`. They are expanded
    /// again on every refresh, so key pairs added later are picked up.
    #[arg(long, short = 'k', env = "CGCLOUD_KEYPAIRS", num_args = 1.., value_delimiter = ' ', required = true)]
    pub keypairs: Vec<String>,

    /// The local accounts whose `~/.ssh/authorized_keys.cgcloud` the agent keeps.
    #[arg(long, num_args = 1.., required = true)]
    pub accounts: Vec<String>,

    /// Seconds between periodic refreshes, the backstop for changes made outside cgcloud.
    #[arg(long, short = 'i', default_value_t = DEFAULT_INTERVAL_SECONDS, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub interval: u64,

    /// This instance's ID; asked from the instance metadata service if not given.
    #[arg(long)]
    pub instance_id: Option<String>,

    /// Do not create or read the SQS queue: refresh periodically only.
    #[arg(long)]
    pub no_notifications: bool,

    /// Do not tag the instance with the applied key set.
    #[arg(long)]
    pub no_ack: bool,
}

impl RunOptions {
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval)
    }

    /// The options as arguments after `run`, long form, in a fixed order.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            "--namespace".to_string(),
            self.namespace.clone(),
            "--zone".to_string(),
            self.zone.clone(),
            "--keypairs".to_string(),
        ];
        a.extend(self.keypairs.iter().cloned());
        a.push("--accounts".to_string());
        a.extend(self.accounts.iter().cloned());
        a.push("--interval".to_string());
        a.push(self.interval.to_string());
        if let Some(id) = &self.instance_id {
            a.push("--instance-id".to_string());
            a.push(id.clone());
        }
        if self.no_notifications {
            a.push("--no-notifications".to_string());
        }
        if self.no_ack {
            a.push("--no-ack".to_string());
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Wrapper {
        #[command(flatten)]
        options: RunOptions,
    }

    fn parse(args: &[String]) -> RunOptions {
        let argv = std::iter::once("cgcloud-agent".to_string()).chain(args.iter().cloned());
        Wrapper::try_parse_from(argv).unwrap().options
    }

    #[test]
    fn to_args_round_trips() {
        let o = RunOptions {
            namespace: "/alice/".into(),
            zone: "us-west-2a".into(),
            keypairs: vec![
                "alice".into(),
                "team-*".into(),
                "@bob".into(),
                "@@ops".into(),
            ],
            accounts: vec!["admin".into(), "jenkins".into()],
            interval: 60,
            instance_id: Some("i-12345678".into()),
            no_notifications: true,
            no_ack: true,
        };
        assert_eq!(parse(&o.to_args()), o);
        let plain = RunOptions {
            instance_id: None,
            no_notifications: false,
            no_ack: false,
            ..o
        };
        assert_eq!(parse(&plain.to_args()), plain);
    }

    #[test]
    fn interval_defaults_to_300_and_is_bounded() {
        let args: Vec<String> = [
            "-n",
            "/a/",
            "-z",
            "us-east-1a",
            "-k",
            "a",
            "--accounts",
            "admin",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(parse(&args).interval, 300);
        let mut zero = args.clone();
        zero.extend(["--interval".to_string(), "0".to_string()]);
        let argv = std::iter::once("x".to_string()).chain(zero);
        assert!(Wrapper::try_parse_from(argv).is_err());
    }
}
