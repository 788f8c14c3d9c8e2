//! The agent's AWS side against moto: topic/queue wiring, clean-up, one full agent iteration
//! writing keys into a temporary "account", and keeping keys through an AWS failure.
#![allow(clippy::unwrap_used)] // A test crate: an unwrap that fails is a failing test.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_sqs::types::QueueAttributeName;
use cgcloud_agent::{
    delete_instance_wiring, ensure_instance_wiring, keys_hash, parse_body, publish, publish_update,
    queue_name, register_key_notification, sweep_namespace, topic_name, Account, AccountSource,
    Agent, Clients, Config, Message, Received, RunOptions, UpdateSshKeys, MANAGED_FILE,
    TAG_KEYS_APPLIED, TAG_KEYS_HASH, TAG_PROBLEM,
};
use cgcloud_common::Namespace;
use cgcloud_moto::{form, xml_field, xml_fields, Account as MotoAccount, Moto};

const K1: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPYe5EjA90eBhXVCmc2knswjsuRVOSlKWuLZH3BrPWp4 k1";
const K2: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINCLxsGEO7nEn14ASz8NtlLibm4+k1WbT4hCyj9t/JDm k2";
const K3: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJDgF8DmOrvtwnvChzsl/ybScEdNYa3yXIEienP5GyiA k3";

fn moto() -> &'static Moto {
    static M: OnceLock<Moto> = OnceLock::new();
    M.get_or_init(|| Moto::start().expect("moto_server starts"))
}

fn sdk(endpoint: &str, account: &MotoAccount) -> aws_config::SdkConfig {
    let creds = aws_sdk_ec2::config::Credentials::new(
        &account.access_key_id,
        &account.secret_access_key,
        None,
        None,
        "test",
    );
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_timeout(Duration::from_secs(60))
        .build();
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::v2026_01_12())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_credential_types_provider(creds))
        .timeout_config(timeouts)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .build()
}

fn aws_credential_types_provider(
    c: aws_sdk_ec2::config::Credentials,
) -> aws_sdk_ec2::config::SharedCredentialsProvider {
    aws_sdk_ec2::config::SharedCredentialsProvider::new(c)
}

fn clients(account: &MotoAccount) -> Clients {
    Clients::from_sdk_config(&sdk(&moto().endpoint(), account))
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn ec2(account: &MotoAccount, pairs: &[(&str, &str)]) -> String {
    let mut all = pairs.to_vec();
    all.push(("Version", "2016-11-15"));
    moto().call(&account.id, "ec2", &form(&all)).unwrap()
}

fn iam(account: &MotoAccount, pairs: &[(&str, &str)]) {
    let mut all = pairs.to_vec();
    all.push(("Version", "2010-05-08"));
    moto().iam(&account.id, &form(&all)).unwrap();
}

fn import(account: &MotoAccount, name: &str, key: &str) {
    ec2(
        account,
        &[
            ("Action", "ImportKeyPair"),
            ("KeyName", name),
            ("PublicKeyMaterial", &b64(key)),
        ],
    );
}

fn launch(account: &MotoAccount) -> String {
    let images = ec2(
        account,
        &[("Action", "DescribeImages"), ("Owner.1", "amazon")],
    );
    let ami = xml_field(&images, "imageId").expect("moto ships Amazon images");
    let body = ec2(
        account,
        &[
            ("Action", "RunInstances"),
            ("ImageId", &ami),
            ("MinCount", "1"),
            ("MaxCount", "1"),
            ("InstanceType", "t3.micro"),
        ],
    );
    xml_field(&body, "instanceId").expect("RunInstances returns an instance")
}

fn instance_tag(account: &MotoAccount, id: &str, key: &str) -> Option<String> {
    let body = ec2(
        account,
        &[
            ("Action", "DescribeTags"),
            ("Filter.1.Name", "resource-id"),
            ("Filter.1.Value.1", id),
            ("Filter.2.Name", "key"),
            ("Filter.2.Value.1", key),
        ],
    );
    xml_field(&body, "value")
}

fn instance_arn(id: &str) -> String {
    format!("arn:aws:ec2:us-east-1:123456789012:instance/{id}")
}

fn ns(s: &str) -> Namespace {
    Namespace::parse(s).unwrap()
}

async fn receive_bodies(c: &Clients, url: &str) -> Vec<String> {
    let out = c
        .sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap();
    out.messages()
        .iter()
        .map(|m| m.body().unwrap_or_default().to_string())
        .collect()
}

async fn subscription_endpoints(c: &Clients, topic_arn: &str) -> Vec<String> {
    let out = c
        .sns
        .list_subscriptions_by_topic()
        .topic_arn(topic_arn)
        .send()
        .await
        .unwrap();
    out.subscriptions()
        .iter()
        .map(|s| s.endpoint().unwrap_or_default().to_string())
        .collect()
}

async fn queue_names(c: &Clients) -> Vec<String> {
    let out = c.sqs.list_queues().send().await.unwrap();
    let mut v: Vec<String> = out
        .queue_urls()
        .iter()
        .map(|u| u.rsplit('/').next().unwrap().to_string())
        .collect();
    v.sort();
    v
}

const I1: &str = "i-0000000000000000a";
const I2: &str = "i-0000000000000000b";

#[tokio::test]
async fn publish_reaches_the_instance_queue_and_wiring_is_idempotent() {
    let account = moto().new_account("alice").unwrap();
    let c = clients(&account);
    let n = ns("/alice/team.x/");
    let w = ensure_instance_wiring(&c.sqs, &c.sns, &n, I1, &instance_arn(I1))
        .await
        .unwrap();
    let again = ensure_instance_wiring(&c.sqs, &c.sns, &n, I1, &instance_arn(I1))
        .await
        .unwrap();
    assert_eq!(w.queue_url, again.queue_url);
    // The queue carries its instance's ARN (the agent's policy matches it), and the agent
    // finds it.
    let tags = c
        .sqs
        .list_queue_tags()
        .queue_url(&w.queue_url)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags.tags().and_then(|t| t.get("cgcloud:instance-arn")),
        Some(&instance_arn(I1))
    );
    let found = cgcloud_agent::find_instance_queue(&c.sqs, &n, I1)
        .await
        .unwrap();
    assert_eq!(
        (found.queue_url, found.queue_arn),
        (w.queue_url.clone(), w.queue_arn.clone())
    );
    let none = cgcloud_agent::find_instance_queue(&c.sqs, &n, I2)
        .await
        .unwrap_err();
    assert!(
        format!("{none:#}").contains("cgcloud makes it when it creates the box"),
        "{none:#}"
    );
    assert!(
        w.topic_arn.ends_with(&format!(":{}", topic_name(&n))),
        "{}",
        w.topic_arn
    );
    assert!(w
        .queue_arn
        .ends_with(&format!(":{}", queue_name(&n, I1).unwrap())));
    assert_eq!(
        subscription_endpoints(&c, &w.topic_arn).await,
        vec![w.queue_arn.clone()],
        "one subscription"
    );
    let attrs = c
        .sqs
        .get_queue_attributes()
        .queue_url(&w.queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let attrs = attrs.attributes().unwrap();
    assert_eq!(
        attrs
            .get(&QueueAttributeName::ReceiveMessageWaitTimeSeconds)
            .map(String::as_str),
        Some("20")
    );
    assert!(attrs
        .get(&QueueAttributeName::Policy)
        .unwrap()
        .contains(&w.topic_arn));

    // A queue left with other attributes (another version made it) is adopted and updated.
    let n2 = ns("/alice/old/");
    c.sqs
        .create_queue()
        .queue_name(queue_name(&n2, I1).unwrap())
        .attributes(QueueAttributeName::VisibilityTimeout, "45")
        .send()
        .await
        .unwrap();
    let adopted = ensure_instance_wiring(&c.sqs, &c.sns, &n2, I1, &instance_arn(I1))
        .await
        .unwrap();
    let attrs = c
        .sqs
        .get_queue_attributes()
        .queue_url(&adopted.queue_url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attrs
            .attributes()
            .unwrap()
            .get(&QueueAttributeName::VisibilityTimeout)
            .cloned(),
        Some(cgcloud_agent::VISIBILITY_TIMEOUT_SECONDS.to_string())
    );
    delete_instance_wiring(&c.sqs, &c.sns, &n2, I1)
        .await
        .unwrap();

    let update = UpdateSshKeys {
        keypair: Some("alice".into()),
        ..Default::default()
    };
    assert!(publish_update(&c.sns, &n, &update).await.unwrap());
    let bodies = receive_bodies(&c, &w.queue_url).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(
        parse_body(&bodies[0]),
        Received::Message(Message::UpdateSshKeys(update))
    );

    // What the original cgcloud publishes: base64 JSON, version 1.
    assert!(publish(&c.sns, &n, &b64(r#"{"version": 1, "type": 1}"#))
        .await
        .unwrap());
    let bodies = receive_bodies(&c, &w.queue_url).await;
    assert_eq!(
        parse_body(&bodies[0]),
        Received::Message(Message::UpdateSshKeys(UpdateSshKeys::default()))
    );

    // Another namespace has no topic yet: nothing is published, nothing created.
    assert!(!publish(&c.sns, &ns("/bob/"), "x").await.unwrap());
    let topics = c.sns.list_topics().send().await.unwrap();
    assert_eq!(
        topics.topics().len(),
        2,
        "`/alice/team.x/` and `/alice/old/`"
    );
}

#[tokio::test]
async fn deleting_wiring_leaves_no_dangling_subscription_and_nothing_foreign() {
    let account = moto().new_account("alice").unwrap();
    let c = clients(&account);
    let n = ns("/alice/");
    let w1 = ensure_instance_wiring(&c.sqs, &c.sns, &n, I1, &instance_arn(I1))
        .await
        .unwrap();
    let w2 = ensure_instance_wiring(&c.sqs, &c.sns, &n, I2, &instance_arn(I2))
        .await
        .unwrap();
    let other = ensure_instance_wiring(&c.sqs, &c.sns, &ns("/alice/sub/"), I1, &instance_arn(I1))
        .await
        .unwrap();
    c.sqs
        .create_queue()
        .queue_name("not-cgcloud")
        .send()
        .await
        .unwrap();
    let foreign_prefix = format!("{}not-an-instance", cgcloud_agent::queue_prefix(&n));
    c.sqs
        .create_queue()
        .queue_name(&foreign_prefix)
        .send()
        .await
        .unwrap();

    // Each queue names its subscription in a tag, so removing it lists nothing.
    for w in [&w1, &w2] {
        let tags = c
            .sqs
            .list_queue_tags()
            .queue_url(&w.queue_url)
            .send()
            .await
            .unwrap();
        assert_eq!(
            tags.tags()
                .unwrap()
                .get(cgcloud_agent::QUEUE_SUBSCRIPTION_TAG),
            Some(&w.subscription_arn)
        );
    }
    let removed = delete_instance_wiring(&c.sqs, &c.sns, &n, I2)
        .await
        .unwrap();
    assert_eq!(removed.subscriptions, vec![w2.subscription_arn.clone()]);
    let w2 = ensure_instance_wiring(&c.sqs, &c.sns, &n, I2, &instance_arn(I2))
        .await
        .unwrap();
    // A tag naming a subscription of another topic is never taken at its word: this queue
    // claims `/alice/sub/`'s subscription; the removal finds its own on the topic instead.
    c.sqs
        .tag_queue()
        .queue_url(&w1.queue_url)
        .tags(
            cgcloud_agent::QUEUE_SUBSCRIPTION_TAG,
            &other.subscription_arn,
        )
        .send()
        .await
        .unwrap();
    let removed = delete_instance_wiring(&c.sqs, &c.sns, &n, I1)
        .await
        .unwrap();
    assert_eq!(removed.queues, vec![queue_name(&n, I1).unwrap()]);
    assert_eq!(removed.subscriptions, vec![w1.subscription_arn.clone()]);
    assert_eq!(
        subscription_endpoints(&c, &other.topic_arn).await,
        vec![other.queue_arn.clone()]
    );
    assert_eq!(
        subscription_endpoints(&c, &w1.topic_arn).await,
        vec![w2.queue_arn.clone()]
    );
    // NOTE: on moto a dangling subscription would make this Publish fail.
    assert!(publish_update(&c.sns, &n, &UpdateSshKeys::default())
        .await
        .unwrap());
    assert_eq!(receive_bodies(&c, &w2.queue_url).await.len(), 1);
    // Idempotent.
    let again = delete_instance_wiring(&c.sqs, &c.sns, &n, I1)
        .await
        .unwrap();
    assert!(
        again.queues.is_empty() && again.subscriptions.is_empty(),
        "{again:?}"
    );

    // A subscription whose queue is gone (what the original leaked) breaks Publish on moto;
    // cleanup removes it.
    let ghost_arn = w2.queue_arn.replace(I2, "i-0000000000000000c");
    c.sns
        .subscribe()
        .topic_arn(&w1.topic_arn)
        .protocol("sqs")
        .endpoint(&ghost_arn)
        .send()
        .await
        .unwrap();
    assert!(
        publish_update(&c.sns, &n, &UpdateSshKeys::default())
            .await
            .is_err(),
        "moto's quirk"
    );
    let swept = sweep_namespace(&c.sqs, &c.sns, &n, |id| id == I2)
        .await
        .unwrap();
    assert!(swept.queues.is_empty(), "{swept:?}");
    assert_eq!(swept.subscriptions.len(), 1, "{swept:?}");
    assert!(publish_update(&c.sns, &n, &UpdateSshKeys::default())
        .await
        .unwrap());

    // Nothing is live any more: I2's wiring goes; other namespaces and foreign queues stay.
    let swept = sweep_namespace(&c.sqs, &c.sns, &n, |_| false)
        .await
        .unwrap();
    assert_eq!(swept.queues, vec![queue_name(&n, I2).unwrap()]);
    assert!(subscription_endpoints(&c, &w1.topic_arn).await.is_empty());
    let mut expected = vec![
        "not-cgcloud".to_string(),
        foreign_prefix,
        queue_name(&ns("/alice/sub/"), I1).unwrap(),
    ];
    expected.sort();
    assert_eq!(queue_names(&c).await, expected);
    assert_eq!(
        subscription_endpoints(&c, &other.topic_arn).await,
        vec![other.queue_arn]
    );
}

fn account_in(home: &Path, name: &str) -> Account {
    let m = std::fs::metadata(home).unwrap();
    Account {
        name: name.into(),
        home: home.to_path_buf(),
        uid: m.uid(),
        gid: m.gid(),
    }
}

fn config(instance_id: &str, globs: &[&str], accounts: Vec<Account>, interval: u64) -> Config {
    let options = RunOptions {
        namespace: "/alice/".into(),
        zone: "us-east-1a".into(),
        keypairs: globs.iter().map(|s| s.to_string()).collect(),
        accounts: accounts.iter().map(|a| a.name.clone()).collect(),
        interval,
        instance_id: Some(instance_id.into()),
        no_notifications: false,
        no_ack: false,
    };
    let mut c = Config::from_options(&options, instance_id).unwrap();
    c.account_source = AccountSource::Fixed(accounts);
    c
}

fn managed(home: &Path) -> String {
    std::fs::read_to_string(home.join(".ssh").join(MANAGED_FILE)).unwrap_or_default()
}

fn line(key: &str) -> &str {
    key.rsplit_once(' ').unwrap().0
}

#[tokio::test]
async fn one_agent_iteration_writes_keys_reacts_to_notifications_and_acknowledges() {
    let account = moto().new_account("alice").unwrap();
    import(&account, "alice", K1);
    import(&account, "bob", K2);
    import(&account, "zed", K3);
    iam(&account, &[("Action", "CreateGroup"), ("GroupName", "ops")]);
    iam(&account, &[("Action", "CreateUser"), ("UserName", "bob")]);
    iam(
        &account,
        &[
            ("Action", "AddUserToGroup"),
            ("GroupName", "ops"),
            ("UserName", "bob"),
        ],
    );
    let instance = launch(&account);
    let admin = tempfile::tempdir().unwrap();
    let jenkins = tempfile::tempdir().unwrap();
    std::fs::create_dir(jenkins.path().join(".ssh")).unwrap();
    std::fs::write(
        jenkins.path().join(".ssh/authorized_keys"),
        "ssh-ed25519 HAND by-hand\n",
    )
    .unwrap();
    let accounts = vec![
        account_in(admin.path(), "admin"),
        account_in(jenkins.path(), "jenkins"),
    ];
    // cgcloud wires the instance when it creates the box; the agent finds the queue.
    {
        let c = clients(&account);
        ensure_instance_wiring(
            &c.sqs,
            &c.sns,
            &ns("/alice/"),
            &instance,
            &instance_arn(&instance),
        )
        .await
        .unwrap();
    }
    let mut agent = Agent::with_clients(
        config(&instance, &["alice", "@@ops", "@ghost"], accounts, 300),
        clients(&account),
    );

    // First step: wiring, then the start-up reconcile.
    let r = agent
        .step()
        .await
        .expect("the first step reconciles")
        .unwrap();
    assert_eq!(r.written, ["admin", "jenkins"]);
    assert!(agent.queue().is_some());
    for home in [admin.path(), jenkins.path()] {
        let text = managed(home);
        assert!(
            text.contains(&format!(
                "{} cgcloud:alice\n{} cgcloud:bob\n",
                line(K1),
                line(K2)
            )),
            "{text}"
        );
        assert!(!text.contains(line(K3)));
    }
    assert_eq!(
        std::fs::read_to_string(jenkins.path().join(".ssh/authorized_keys")).unwrap(),
        "ssh-ed25519 HAND by-hand\n",
        "hand-added keys stay"
    );
    assert_eq!(
        instance_tag(&account, &instance, TAG_KEYS_HASH),
        Some(keys_hash([K1, K2]))
    );
    let applied = instance_tag(&account, &instance, TAG_KEYS_APPLIED).expect("applied time");
    assert!(applied.ends_with('Z') && applied.len() == 20, "{applied}");

    // `register-key` for a new member of `ops`: the next step hears of it at once.
    import(&account, "carol", K3);
    iam(&account, &[("Action", "CreateUser"), ("UserName", "carol")]);
    iam(
        &account,
        &[
            ("Action", "AddUserToGroup"),
            ("GroupName", "ops"),
            ("UserName", "carol"),
        ],
    );
    let c = clients(&account);
    assert!(cgcloud_agent::publish(
        &c.sns,
        &ns("/alice/"),
        &register_key_notification("/alice/", "carol")
    )
    .await
    .unwrap());
    let started = Instant::now();
    let r = agent
        .step()
        .await
        .expect("a notification triggers a reconcile")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(r.keys, 3);
    assert!(managed(admin.path()).contains(&format!("{} cgcloud:carol\n", line(K3))));
    assert_eq!(
        instance_tag(&account, &instance, TAG_KEYS_HASH),
        Some(keys_hash([K1, K2, K3]))
    );

    // Poison and unknown versions are deleted without a reconcile and without stopping.
    let url = agent.queue().unwrap().queue_url.clone();
    for body in ["garbage", r#"{"version":99,"type":"x"}"#] {
        c.sqs
            .send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let batch = agent.receive(5).await.unwrap();
    assert_eq!((batch.messages, batch.update), (2, false));
    let left = c
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let left = left.attributes().unwrap();
    assert_eq!(
        left.get(&QueueAttributeName::ApproximateNumberOfMessages)
            .map(String::as_str),
        Some("0")
    );
    assert_eq!(
        left.get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .map(String::as_str),
        Some("0")
    );

    // A key pair deleted directly through EC2 goes at the next reconcile.
    ec2(&account, &[("Action", "DeleteKeyPair"), ("KeyName", "bob")]);
    let r = agent.reconcile().await.unwrap();
    assert_eq!(r.keys, 2);
    assert!(!managed(jenkins.path()).contains(line(K2)));
    assert_eq!(
        instance_tag(&account, &instance, TAG_KEYS_HASH),
        Some(keys_hash([K1, K3]))
    );
}

#[tokio::test]
async fn an_aws_failure_keeps_the_last_good_keys() {
    let account = moto().new_account("alice").unwrap();
    import(&account, "alice", K1);
    let instance = launch(&account);
    let home = tempfile::tempdir().unwrap();
    let accounts = vec![account_in(home.path(), "admin")];
    let mut good = Agent::with_clients(
        config(&instance, &["alice"], accounts.clone(), 300),
        clients(&account),
    );
    good.reconcile().await.unwrap();
    let before = managed(home.path());
    assert!(before.contains(line(K1)));

    // The same agent configuration, but AWS cannot be reached (nothing listens on port 1).
    let dead = Clients::from_sdk_config(&sdk("http://127.0.0.1:1", &account));
    let mut cut_off = Agent::with_clients(config(&instance, &["alice"], accounts, 1), dead);
    let e = cut_off.reconcile().await.unwrap_err();
    assert!(e.to_string().contains("failed to list key pairs"), "{e:#}");
    assert_eq!(managed(home.path()), before, "nothing removed");
    // The loop retries with backoff rather than giving up.
    let step = cut_off
        .step()
        .await
        .expect("a failing reconcile is retried at once the first time");
    assert!(step.is_err());
    assert_eq!(managed(home.path()), before);
    let started = Instant::now();
    // Steps that only retried the queue set-up return `None`.
    let step = loop {
        if let Some(r) = cut_off.step().await {
            break r;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no retry");
    };
    assert!(step.is_err());
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );

    // An IAM group that does not exist is an answer, not a failure: it contributes no keys.
    let r = good_with(&account, &instance, home.path(), &["alice", "@@nobody"]).await;
    assert_eq!(r.keys, 1);
    // Deleting every key pair is also an answer: the file is emptied of keys.
    ec2(
        &account,
        &[("Action", "DeleteKeyPair"), ("KeyName", "alice")],
    );
    let r = good_with(&account, &instance, home.path(), &["alice"]).await;
    assert_eq!(r.keys, 0);
    assert!(!managed(home.path()).contains("ssh-"));
    assert_eq!(
        xml_fields(&ec2(&account, &[("Action", "DescribeKeyPairs")]), "keyName").len(),
        0
    );
}

async fn good_with(
    account: &MotoAccount,
    instance: &str,
    home: &Path,
    globs: &[&str],
) -> cgcloud_agent::Reconciled {
    let mut a = Agent::with_clients(
        config(instance, globs, vec![account_in(home, "admin")], 300),
        clients(account),
    );
    a.reconcile().await.unwrap()
}

#[tokio::test]
async fn failing_aws_calls_keep_the_keys_and_the_agent_recovers_by_itself() {
    use cgcloud_moto::faults::{Fault, FaultProxy, Rule};
    let account = moto().new_account("alice").unwrap();
    import(&account, "alice", K1);
    let instance = launch(&account);
    let home = tempfile::tempdir().unwrap();
    let accounts = vec![account_in(home.path(), "admin")];
    let proxy = FaultProxy::start(moto().port(), 3).unwrap();
    // The agent's own retry policy (the SDK's standard mode), through the proxy.
    let through = sdk(&proxy.endpoint(), &account)
        .into_builder()
        .retry_config(aws_config::retry::RetryConfig::standard())
        .build();
    let mut agent = Agent::with_clients(
        config(&instance, &["alice*"], accounts, 1),
        Clients::from_sdk_config(&through),
    );
    // A failed first attempt of every call is retried away.
    proxy.add(Rule::first_attempts("*", Fault::Throttle));
    agent.reconcile().await.unwrap();
    assert!(proxy.injected("DescribeKeyPairs") >= 1);
    proxy.clear();
    let before = managed(home.path());
    assert!(before.contains(line(K1)));

    // An outage of every kind: the keys written last stay.
    import(&account, "alice2", K2);
    for (class, fault) in [
        ("throttled", Fault::Throttle),
        ("500", Fault::Status(500)),
        ("503", Fault::Status(503)),
        ("dropped", Fault::Drop),
        ("cut short", Fault::Truncate),
        ("denied (a revoked instance profile)", Fault::Denied),
    ] {
        proxy.add(Rule::always("DescribeKeyPairs", fault));
        let e = agent.reconcile().await.unwrap_err();
        assert!(
            e.to_string().contains("failed to list key pairs"),
            "{class}: {e:#}"
        );
        assert_eq!(managed(home.path()), before, "{class}: nothing removed");
        proxy.clear();
    }
    // The loop, failing meanwhile, brings the key added during the outage once AWS answers.
    proxy.add(Rule::always("DescribeKeyPairs", Fault::Status(503)));
    let started = Instant::now();
    let seen = proxy.seen("DescribeKeyPairs");
    let mut failed_steps = 0;
    while proxy.seen("DescribeKeyPairs") < seen + 6 {
        if let Some(r) = agent.step().await {
            assert!(r.is_err());
            failed_steps += 1;
            assert_eq!(
                managed(home.path()),
                before,
                "nothing removed while it fails"
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the loop retries"
        );
    }
    assert!(failed_steps >= 2, "{failed_steps}");
    // The problem is in the instance's tag (EC2 takes the tag: only DescribeKeyPairs fails).
    let reported = instance_tag(&account, &instance, TAG_PROBLEM).expect("the problem tag");
    assert!(
        reported.contains("keys: failed to list key pairs: InternalError"),
        "{reported}"
    );
    assert!(
        agent
            .problem()
            .is_some_and(|p| p.starts_with("keys: failed to list key pairs")),
        "{:?}",
        agent.problem()
    );
    proxy.clear();
    let started = Instant::now();
    loop {
        if let Some(Ok(_)) = agent.step().await {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "it recovers by itself"
        );
    }
    let after = managed(home.path());
    assert!(
        after.contains(line(K1)) && after.contains(line(K2)),
        "{after}"
    );
    // The keys' problem is over; what the tag says now is the agent's other problem (this box
    // has no notification queue), if any.
    let now = agent.problem();
    assert!(
        now.as_deref()
            .is_none_or(|p| p.starts_with("notification queue:")),
        "{now:?}"
    );
    let tag = instance_tag(&account, &instance, TAG_PROBLEM);
    assert_eq!(
        tag.as_deref().map(|t| t.split_once(' ').unwrap().1),
        now.as_deref(),
        "the tag follows the problem"
    );

    // A clock 20 minutes off AWS's: the SDK learns the difference from the first refusal and
    // the keys are read all the same.
    proxy.add(Rule::always(
        "*",
        Fault::ClockAhead(Duration::from_secs(1200)),
    ));
    let r = agent.reconcile().await.unwrap();
    assert_eq!(r.keys, 2);
    assert!(proxy.skew_refused("DescribeKeyPairs") >= 1);
}
