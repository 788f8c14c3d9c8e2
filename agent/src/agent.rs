//! The agent's loop: reconcile at start, then long-poll the instance's queue, reconcile when a
//! notification arrives (one reconcile per batch) and at least every `--interval`.
//!
//! On any failure the files keep the last good keys and the step is retried with exponential
//! backoff (1 s, 2 s, 4 s, … capped at a minute or the interval): an AWS outage, throttling or
//! a missing permission never removes a key. Poison and unknown-version messages are logged and
//! deleted. Every AWS call has a timeout, and the loop stops between steps on SIGTERM/SIGINT.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use aws_sdk_ec2::types::Tag;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use cgcloud_common::keypairs::{parse_glob, KeypairGlob};
use cgcloud_common::names::ME_PLACEHOLDER;
use cgcloud_common::{substitute_me, Namespace};

use crate::ack::{problem_tag_value, TAG_KEYS_APPLIED, TAG_KEYS_HASH, TAG_PROBLEM};
use crate::authorized::{render, sync_account, AccountSource, Change};
use crate::aws::{describe, is_missing_queue, Clients};
use crate::keys::{self, Expansion};
use crate::log;
use crate::message::{parse_body, Message, Received};
use crate::names;
use crate::options::RunOptions;
use crate::wiring::{self, InstanceQueue, LONG_POLL_SECONDS};

/// The longest pause between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Slack on top of the long poll before a receive counts as hung.
const RECEIVE_SLACK: Duration = Duration::from_secs(25);
/// How long one reconcile or one wiring attempt may take in all.
const STEP_TIMEOUT: Duration = Duration::from_secs(180);

/// Everything the agent is told, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub namespace: Namespace,
    pub instance_id: String,
    /// The globs, `__me__` already replaced, parsed.
    pub globs: Vec<KeypairGlob>,
    pub accounts: Vec<String>,
    pub account_source: AccountSource,
    pub interval: Duration,
    /// Read the queue (else periodic refreshes only).
    pub notifications: bool,
    /// Tag the instance with the applied key set.
    pub ack: bool,
}

impl Config {
    /// Validates the options; `instance_id` is the option's or the one IMDS gave.
    pub fn from_options(o: &RunOptions, instance_id: &str) -> anyhow::Result<Config> {
        let me = std::env::var("CGCLOUD_ME").ok().filter(|m| !m.is_empty());
        let resolve = |s: &str| -> anyhow::Result<String> {
            if !s.contains(ME_PLACEHOLDER) {
                return Ok(s.to_string());
            }
            match &me {
                Some(me) => Ok(substitute_me(s, me, false)),
                None => bail!(
                    "`{s}` contains `__me__` but CGCLOUD_ME is not set; pass the name itself \
                     (the box has no IAM user to ask)"
                ),
            }
        };
        // As in the original, a namespace takes `me` up to the first `@`, a keypair all of it.
        let namespace = match (&me, o.namespace.contains(ME_PLACEHOLDER)) {
            (Some(me), true) => Namespace::parse(&substitute_me(&o.namespace, me, true))?,
            _ => Namespace::parse(&resolve(&o.namespace)?)?,
        };
        if !names::is_instance_id(instance_id) {
            bail!("`{instance_id}` is not an EC2 instance ID (`i-` and 8 or 17 hex digits)");
        }
        let globs = o
            .keypairs
            .iter()
            .map(|g| Ok(parse_glob(&resolve(g)?)?))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if o.accounts
            .iter()
            .any(|a| a.is_empty() || a.contains(['/', ':']))
        {
            bail!("account names must not be empty nor contain `/` or `:`");
        }
        Ok(Config {
            namespace,
            instance_id: instance_id.to_string(),
            globs,
            accounts: o.accounts.clone(),
            account_source: AccountSource::System,
            interval: o.interval(),
            notifications: !o.no_notifications,
            ack: !o.no_ack,
        })
    }
}

/// What one reconcile did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciled {
    pub hash: String,
    pub keys: usize,
    /// Accounts whose file was rewritten.
    pub written: Vec<String>,
    /// Accounts that do not exist (yet).
    pub missing: Vec<String>,
}

/// What one receive got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub messages: usize,
    /// At least one asked for a key update.
    pub update: bool,
}

/// The agent and its state between steps.
pub struct Agent {
    config: Config,
    clients: Clients,
    queue: Option<InstanceQueue>,
    last_good: Option<Expansion>,
    tagged: Option<String>,
    failures: u32,
    wiring_failures: u32,
    receive_failures: u32,
    next_reconcile: Instant,
    next_wiring: Instant,
    /// What went wrong last with each kind of step, so that a problem is logged once.
    reconcile_problem: Problem,
    receive_problem: Problem,
    wiring_problem: Problem,
    /// What the instance's [`TAG_PROBLEM`] says: `None` until the agent wrote or cleared it
    /// once (a tag left by an earlier run is cleared at the first turn).
    reported: Option<Option<String>>,
    /// A failed write of the tag is tried again after this.
    report_after: Instant,
}

/// How long after a failed write of the problem tag it is tried again.
const REPORT_RETRY: Duration = Duration::from_secs(10);
/// How long a write of the problem tag may take.
const REPORT_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a problem that goes on is logged again (once when it starts, then this often).
const REPEAT_PROBLEM: Duration = Duration::from_secs(600);

/// One kind of step's current problem: each distinct problem is logged once, again every
/// [`REPEAT_PROBLEM`] while it lasts, and its end once, so a long outage is a few lines in the
/// journal, not a line per retry.
#[derive(Debug, Default)]
pub struct Problem {
    text: Option<String>,
    since: Option<Instant>,
    said: Option<Instant>,
    tries: u32,
}

impl Problem {
    /// A failed try; the line to log, if it is worth one.
    pub fn failed(&mut self, text: &str, now: Instant) -> Option<String> {
        self.tries += 1;
        let since = *self.since.get_or_insert(now);
        if self.text.as_deref() != Some(text) {
            self.text = Some(text.to_string());
            self.said = Some(now);
            return Some(text.to_string());
        }
        if self
            .said
            .is_some_and(|s| now.saturating_duration_since(s) >= REPEAT_PROBLEM)
        {
            self.said = Some(now);
            return Some(format!(
                "{text} (still failing: {} tries in {} s)",
                self.tries,
                now.saturating_duration_since(since).as_secs()
            ));
        }
        None
    }

    /// The problem now, if any.
    pub fn current(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// A successful try; the line saying the problem ended, if there was one.
    pub fn ended(&mut self, now: Instant) -> Option<String> {
        let since = self.since.take()?;
        let tries = std::mem::take(&mut self.tries);
        self.text = None;
        self.said = None;
        Some(format!(
            "recovered after {tries} failed tries in {} s",
            now.saturating_duration_since(since).as_secs()
        ))
    }
}

fn backoff(failures: u32, cap: Duration) -> Duration {
    let secs = 1u64 << failures.saturating_sub(1).min(16);
    Duration::from_secs(secs).min(cap).min(MAX_BACKOFF)
}

async fn bounded<T>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, fut)
        .await
        .map_err(|_| anyhow!("{what} did not finish within {limit:?}"))?
}

impl Agent {
    /// Production constructor: clients from the standard credential chain in `region`.
    pub async fn try_new(config: Config, region: &str) -> Agent {
        Agent::with_clients(config, Clients::load(region).await)
    }

    /// Test constructor: given clients (moto).
    pub fn with_clients(config: Config, clients: Clients) -> Agent {
        let now = Instant::now();
        Agent {
            config,
            clients,
            queue: None,
            last_good: None,
            tagged: None,
            failures: 0,
            wiring_failures: 0,
            receive_failures: 0,
            next_reconcile: now,
            next_wiring: now,
            reconcile_problem: Problem::default(),
            receive_problem: Problem::default(),
            wiring_problem: Problem::default(),
            reported: None,
            report_after: now,
        }
    }

    /// The agent's problem now, one line: the keys first, then notifications, then the queue.
    pub fn problem(&self) -> Option<String> {
        [
            ("keys", &self.reconcile_problem),
            ("notifications", &self.receive_problem),
            ("notification queue", &self.wiring_problem),
        ]
        .iter()
        .find_map(|(what, p)| p.current().map(|t| format!("{what}: {t}")))
    }

    /// Writes the problem now to the instance's [`TAG_PROBLEM`], or removes the tag once there
    /// is none, when that changed. Best effort: a failed write is tried again after
    /// [`REPORT_RETRY`] (a problem with EC2 may be why), and never logged on its own.
    async fn report(&mut self) {
        if !self.config.ack {
            return;
        }
        let now = self.problem();
        if self.reported.as_ref() == Some(&now) || Instant::now() < self.report_after {
            return;
        }
        let id = &self.config.instance_id;
        let ec2 = &self.clients.ec2;
        let write = async {
            match &now {
                Some(p) => {
                    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                    ec2.create_tags()
                        .resources(id)
                        .tags(
                            Tag::builder()
                                .key(TAG_PROBLEM)
                                .value(problem_tag_value(&at, p))
                                .build(),
                        )
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| describe(&e))
                }
                None => ec2
                    .delete_tags()
                    .resources(id)
                    .tags(Tag::builder().key(TAG_PROBLEM).build())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| describe(&e)),
            }
        };
        let done = tokio::time::timeout(REPORT_TIMEOUT, write)
            .await
            .unwrap_or_else(|_| Err("timed out".to_string()));
        match done {
            Ok(()) => self.reported = Some(now),
            Err(_) => self.report_after = Instant::now() + REPORT_RETRY,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The instance's queue, once [`Agent::ensure_wiring`] found it.
    pub fn queue(&self) -> Option<&InstanceQueue> {
        self.queue.as_ref()
    }

    /// The keys written last, if any reconcile succeeded.
    pub fn last_good(&self) -> Option<&Expansion> {
        self.last_good.as_ref()
    }

    /// Finds the instance's notification queue (cgcloud made it with the box).
    pub async fn ensure_wiring(&mut self) -> anyhow::Result<&InstanceQueue> {
        let c = &self.clients;
        let q = bounded(
            "finding the notification queue",
            STEP_TIMEOUT,
            wiring::find_instance_queue(&c.sqs, &self.config.namespace, &self.config.instance_id),
        )
        .await?;
        Ok(self.queue.insert(q))
    }

    /// Expands the globs and writes every account's file; tags the instance with the hash when
    /// it changed. On error nothing was removed: files keep the last good keys.
    pub async fn reconcile(&mut self) -> anyhow::Result<Reconciled> {
        bounded("refreshing the keys", STEP_TIMEOUT, self.reconcile_inner()).await
    }

    async fn reconcile_inner(&mut self) -> anyhow::Result<Reconciled> {
        let c = &self.clients;
        let expansion = keys::expand(&c.ec2, &c.iam, &self.config.globs)
            .await
            .map_err(|e| anyhow!("{e:#}; the keys written last stay"))?;
        for w in &expansion.warnings {
            log::warn(w);
        }
        let content = render(&expansion.keys);
        let mut written = Vec::new();
        let mut missing = Vec::new();
        let mut failed = Vec::new();
        for name in &self.config.accounts {
            let account = match self.config.account_source.lookup(name).await {
                Ok(Some(a)) => a,
                Ok(None) => {
                    missing.push(name.clone());
                    continue;
                }
                Err(e) => {
                    log::error(format!("failed to look up account `{name}`: {e:#}"));
                    failed.push(name.clone());
                    continue;
                }
            };
            match sync_account(&account, &content) {
                Ok(Change::Written) => written.push(name.clone()),
                Ok(Change::Unchanged) => {}
                Err(e) => {
                    log::error(format!("failed to update the keys of `{name}`: {e:#}"));
                    failed.push(name.clone());
                }
            }
        }
        if !failed.is_empty() {
            bail!("the keys of `{}` could not be updated", failed.join("`, `"));
        }
        let hash = expansion.hash();
        if self.config.ack && self.tagged.as_deref() != Some(hash.as_str()) {
            self.tag(&hash).await?;
            self.tagged = Some(hash.clone());
        }
        let keys = expansion.keys.len();
        self.last_good = Some(expansion);
        Ok(Reconciled {
            hash,
            keys,
            written,
            missing,
        })
    }

    async fn tag(&self, hash: &str) -> anyhow::Result<()> {
        let applied = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let id = &self.config.instance_id;
        self.clients
            .ec2
            .create_tags()
            .resources(id)
            .tags(Tag::builder().key(TAG_KEYS_HASH).value(hash).build())
            .tags(Tag::builder().key(TAG_KEYS_APPLIED).value(applied).build())
            .send()
            .await
            .map_err(|e| {
                anyhow!(
                    "failed to record the applied keys on instance `{id}`: {}",
                    describe(&e)
                )
            })?;
        Ok(())
    }

    /// One long poll of up to `wait_seconds`; every message received is classified, logged if
    /// it is not an update, and deleted.
    pub async fn receive(&mut self, wait_seconds: i32) -> anyhow::Result<Batch> {
        let (batch, delete) = self.receive_only(wait_seconds).await?;
        delete.await;
        Ok(batch)
    }

    /// [`Agent::receive`] without the deletion, which it returns to run beside the reconcile
    /// that the batch asks for: the keys reach the files one SQS round trip sooner.
    async fn receive_only(
        &mut self,
        wait_seconds: i32,
    ) -> anyhow::Result<(Batch, impl Future<Output = ()> + 'static)> {
        let Some(w) = &self.queue else {
            bail!("the notification queue is not set up");
        };
        let wait = wait_seconds.clamp(0, LONG_POLL_SECONDS);
        let limit = Duration::from_secs(wait as u64) + RECEIVE_SLACK;
        let got = tokio::time::timeout(
            limit,
            self.clients
                .sqs
                .receive_message()
                .queue_url(&w.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(wait)
                .visibility_timeout(wiring::VISIBILITY_TIMEOUT_SECONDS)
                .send(),
        )
        .await
        .map_err(|_| anyhow!("SQS did not answer a {wait} s long poll within {limit:?}"))?;
        let out = match got {
            Ok(o) => o,
            Err(e) if is_missing_queue(&e) => {
                self.queue = None;
                bail!("the notification queue is gone; looking for it again");
            }
            Err(e) => bail!("failed to read the notification queue: {}", describe(&e)),
        };
        let mut batch = Batch::default();
        let mut entries = Vec::new();
        for (i, m) in out.messages().iter().enumerate() {
            batch.messages += 1;
            match parse_body(m.body().unwrap_or_default()) {
                Received::Message(Message::UpdateSshKeys(u)) => {
                    batch.update = true;
                    if let Some(k) = u.keypair {
                        // What a message says is anyone's text: escaped and cut short.
                        log::info(format!(
                            "notified: key pair `{}` changed ({})",
                            crate::message::excerpt(&k),
                            crate::message::excerpt(
                                u.reason.as_deref().unwrap_or("no reason given")
                            )
                        ));
                    }
                }
                Received::Message(Message::Unknown { kind }) => log::warn(format!(
                    "ignoring a message of unknown type `{}`",
                    crate::message::excerpt(&kind)
                )),
                Received::UnknownVersion { version } => log::warn(format!(
                    "ignoring a message of version {version}; this agent reads versions 1 and {}; \
                     update the agent",
                    crate::message::VERSION
                )),
                Received::Poison { reason } => {
                    log::warn(format!("deleting an unreadable message: {reason}"))
                }
            }
            if let Some(handle) = m.receipt_handle() {
                entries.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .build()
                        .context("a batch entry has an ID and a receipt handle")?,
                );
            }
        }
        let sqs = self.clients.sqs.clone();
        let queue_url = w.queue_url.clone();
        let delete = async move {
            if entries.is_empty() {
                return;
            }
            let deleted = tokio::time::timeout(
                RECEIVE_SLACK,
                sqs.delete_message_batch()
                    .queue_url(queue_url)
                    .set_entries(Some(entries))
                    .send(),
            )
            .await;
            match deleted {
                Ok(Ok(out)) if out.failed().is_empty() => {}
                Ok(Ok(out)) => log::warn(format!(
                    "{} messages could not be deleted; they come back and are read again",
                    out.failed().len()
                )),
                Ok(Err(e)) => log::warn(format!("failed to delete messages: {}", describe(&e))),
                Err(_) => log::warn("deleting messages timed out"),
            }
        };
        Ok((batch, delete))
    }

    /// One turn of the loop: set up the queue if due, wait for a notification or the next
    /// refresh, refresh if notified or due, then report a problem that started or ended in the
    /// instance's tag. Returns the reconcile result if one ran.
    pub async fn step(&mut self) -> Option<anyhow::Result<Reconciled>> {
        let result = self.turn().await;
        self.report().await;
        result
    }

    async fn turn(&mut self) -> Option<anyhow::Result<Reconciled>> {
        let cap = self.config.interval;
        if self.config.notifications && self.queue.is_none() && Instant::now() >= self.next_wiring {
            match self.ensure_wiring().await {
                Ok(w) => {
                    log::info(format!("listening on `{}`", w.queue_url));
                    self.wiring_failures = 0;
                    if let Some(line) = self.wiring_problem.ended(Instant::now()) {
                        log::info(format!("notification queue: {line}"));
                    }
                }
                Err(e) => {
                    self.wiring_failures += 1;
                    let wait = backoff(self.wiring_failures, cap);
                    if let Some(line) = self
                        .wiring_problem
                        .failed(&format!("{e:#}"), Instant::now())
                    {
                        log::error(format!(
                            "{line}; refreshing periodically only, retrying with backoff (at most {:?})",
                            cap.min(MAX_BACKOFF)
                        ));
                    }
                    self.next_wiring = Instant::now() + wait;
                }
            }
        }
        let now = Instant::now();
        let due_in = self.next_reconcile.saturating_duration_since(now);
        let mut update = false;
        let mut delete = None;
        if self.queue.is_some() && due_in >= Duration::from_secs(1) {
            let wait = due_in.as_secs().min(LONG_POLL_SECONDS as u64) as i32;
            match self.receive_only(wait).await {
                Ok((b, d)) => {
                    self.receive_failures = 0;
                    update = b.update;
                    delete = Some(d);
                    if let Some(line) = self.receive_problem.ended(Instant::now()) {
                        log::info(format!("notifications: {line}"));
                    }
                }
                Err(e) => {
                    self.receive_failures += 1;
                    let pause = backoff(self.receive_failures, cap).min(due_in);
                    if let Some(line) = self
                        .receive_problem
                        .failed(&format!("{e:#}"), Instant::now())
                    {
                        log::warn(line);
                    }
                    tokio::time::sleep(pause).await;
                }
            }
        } else if !due_in.is_zero() {
            let mut pause = due_in;
            if self.config.notifications && self.queue.is_none() {
                pause = pause.min(self.next_wiring.saturating_duration_since(now));
            }
            tokio::time::sleep(pause).await;
        }
        if !update && Instant::now() < self.next_reconcile {
            if let Some(d) = delete {
                d.await;
            }
            return None;
        }
        // The messages are deleted while the keys are fetched and written, not before.
        let started = Instant::now();
        let (result, ()) = tokio::join!(self.reconcile(), async {
            if let Some(d) = delete {
                d.await;
            }
        });
        match &result {
            Ok(r) => {
                self.failures = 0;
                self.next_reconcile = Instant::now() + self.config.interval;
                if let Some(line) = self.reconcile_problem.ended(Instant::now()) {
                    log::info(format!("keys: {line}"));
                }
                if !r.written.is_empty() {
                    log::info(format!(
                        "wrote {} keys ({}) for `{}` in {} ms{}",
                        r.keys,
                        r.hash,
                        r.written.join("`, `"),
                        started.elapsed().as_millis(),
                        if update { ", notified" } else { "" }
                    ));
                }
                for m in &r.missing {
                    log::warn(format!("there is no account `{m}` yet; skipping it"));
                }
            }
            Err(e) => {
                self.failures += 1;
                let wait = backoff(self.failures, cap);
                self.next_reconcile = Instant::now() + wait;
                if let Some(line) = self
                    .reconcile_problem
                    .failed(&format!("{e:#}"), Instant::now())
                {
                    log::error(format!(
                        "{line}; retrying with backoff (at most {:?})",
                        cap.min(MAX_BACKOFF)
                    ));
                }
            }
        }
        Some(result)
    }

    /// Runs until `shutdown` completes. A step in flight is dropped at its next await point;
    /// files are replaced atomically, so that is safe.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = self.step() => {}
            }
        }
        log::info("stopping");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_logged_once_then_rarely_and_its_end_once() {
        let t0 = Instant::now();
        let mut p = Problem::default();
        assert_eq!(p.ended(t0), None, "no problem, nothing to say");
        assert_eq!(p.failed("throttled", t0).as_deref(), Some("throttled"));
        for s in 1..100 {
            assert_eq!(p.failed("throttled", t0 + Duration::from_secs(s)), None);
        }
        // Another problem is news.
        assert_eq!(
            p.failed("no route", t0 + Duration::from_secs(100))
                .as_deref(),
            Some("no route")
        );
        assert_eq!(p.failed("no route", t0 + Duration::from_secs(101)), None);
        let again = p.failed("no route", t0 + Duration::from_secs(700)).unwrap();
        assert_eq!(again, "no route (still failing: 103 tries in 700 s)");
        assert_eq!(
            p.ended(t0 + Duration::from_secs(710)).as_deref(),
            Some("recovered after 103 failed tries in 710 s")
        );
        assert_eq!(p.ended(t0 + Duration::from_secs(711)), None);
        assert_eq!(
            p.failed("throttled", t0 + Duration::from_secs(720))
                .as_deref(),
            Some("throttled"),
            "a new outage is news again"
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let cap = Duration::from_secs(300);
        let got: Vec<u64> = (1..=9).map(|n| backoff(n, cap).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(5, Duration::from_secs(3)), Duration::from_secs(3));
        assert_eq!(backoff(u32::MAX, cap), Duration::from_secs(60));
    }

    fn options() -> RunOptions {
        RunOptions {
            namespace: "/alice/".into(),
            zone: "us-west-2a".into(),
            keypairs: vec!["alice".into(), "@@ops".into()],
            accounts: vec!["admin".into()],
            interval: 300,
            instance_id: None,
            no_notifications: false,
            no_ack: false,
        }
    }

    #[test]
    fn config_validates_its_options() {
        let c = Config::from_options(&options(), "i-0123456789abcdef0").unwrap();
        assert_eq!(
            c.globs,
            vec![
                KeypairGlob::Pattern("alice".into()),
                KeypairGlob::Group("ops".into())
            ]
        );
        assert!(Config::from_options(&options(), "ip-10-0-0-1").is_err());
        let mut o = options();
        o.keypairs.push("@bad*".into());
        let e = Config::from_options(&o, "i-12345678").unwrap_err();
        assert!(
            e.to_string().contains("mixes `@` with glob characters"),
            "{e}"
        );
        let mut o = options();
        o.namespace = "/Alice/".into();
        assert!(Config::from_options(&o, "i-12345678").is_err());
        let mut o = options();
        o.accounts = vec!["../etc".into()];
        assert!(Config::from_options(&o, "i-12345678").is_err());
    }
}
