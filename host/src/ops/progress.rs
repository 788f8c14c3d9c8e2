//! Marks on boxes cgcloud is still making, so that a run that died half-way (`kill -9`, a lost
//! network, a laptop closed) leaves nothing that `cleanup` cannot find.
//!
//! Every instance `create` (and `create-cluster`, `grow-cluster`, `recreate`) launches carries,
//! from RunInstances on, [`STATE_TAG`] = `setting-up` and [`LEASE_TAG`] = the time until which
//! the run that made it claims it; the run renews the lease every third of
//! `CGCLOUD_TIMEOUT_LEASE` while it works. When the box is done its state becomes `ready` and
//! the lease goes; a box kept after a failure with `-N` becomes `failed`. A box still
//! `setting-up` whose lease ran out was abandoned: `list --json` says `abandoned`, and `cleanup`
//! terminates it and removes its agent wiring and host-key pin. A teammate's run in progress
//! keeps renewing its lease, so its boxes are never taken for abandoned.
//!
//! Images get the same marks from CreateImage on (`ops::images::make`): `setting-up` until the
//! image is available, listed and its snapshots tagged, then `ready`. `create` refuses an
//! unfinished image, and `cleanup` deregisters an abandoned one and deletes its snapshots.

use std::time::Duration;

use aws_sdk_ec2::types::Tag;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::aws::tag;
use crate::ctx::Context;

/// A box's progress: `setting-up`, `ready` or `failed`.
pub const STATE_TAG: &str = "cgcloud:state";
/// Until when the run making a `setting-up` box claims it (RFC 3339, UTC).
pub const LEASE_TAG: &str = "cgcloud:lease";
pub const SETTING_UP: &str = "setting-up";
pub const READY: &str = "ready";
pub const FAILED: &str = "failed";
/// What `list --json` says of a `setting-up` box whose lease ran out.
pub const ABANDONED: &str = "abandoned";

/// The lease's end, `lease` from `now`; at the latest the last second RFC 3339 can write
/// (9999-12-31T23:59:59Z), so that it always reads back.
pub fn lease_until(now: DateTime<Utc>, lease: Duration) -> String {
    let last = last_rfc3339_time();
    let lease = chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
    now.checked_add_signed(lease)
        .unwrap_or(last)
        .min(last)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn last_rfc3339_time() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The tags a box gets at launch.
pub fn launch_tags() -> Vec<(String, String)> {
    vec![
        (STATE_TAG.to_string(), SETTING_UP.to_string()),
        (
            LEASE_TAG.to_string(),
            lease_until(Utc::now(), crate::config::timeouts().lease),
        ),
    ]
}

/// What a box's marks say at `now`: `ready`, `setting-up`, `abandoned` or `failed`; `None` for
/// a box without marks (made by an older cgcloud, or by hand).
pub fn setup_state(tags: &[Tag], now: DateTime<Utc>) -> Option<&'static str> {
    match tag(tags, STATE_TAG)? {
        SETTING_UP => {
            let lease = tag(tags, LEASE_TAG).and_then(|l| DateTime::parse_from_rfc3339(l).ok());
            match lease {
                Some(until) if until >= now => Some(SETTING_UP),
                _ => Some(ABANDONED),
            }
        }
        READY => Some(READY),
        FAILED => Some(FAILED),
        // Anyone may write tags: an unknown value is not trusted to mean anything.
        _ => None,
    }
}

/// Renews the lease of the boxes (or images) a run is making until it is dropped.
pub struct Lease {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts renewing the lease of `ids` every third of `CGCLOUD_TIMEOUT_LEASE`. A failed renewal
/// is said in `--debug` and tried again at the next turn (the lease is long enough for two).
pub fn keep(ctx: &Context, ids: Vec<String>) -> Lease {
    let lease = crate::config::timeouts().lease;
    let ec2 = ctx.aws.ec2();
    let shell = ctx.shell.clone();
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(lease / 3).await;
            let renewed = ec2
                .create_tags()
                .set_resources(Some(ids.clone()))
                .tags(
                    Tag::builder()
                        .key(LEASE_TAG)
                        .value(lease_until(Utc::now(), lease))
                        .build(),
                )
                .send()
                .await;
            if let Err(e) = renewed {
                shell.debug(format!(
                    "failed to renew the lease of `{}`: {}",
                    ids.join("`, `"),
                    crate::aws::describe(&e)
                ));
            }
        }
    });
    Lease { task }
}

/// Marks box (or image) `id` `state` (`ready` or `failed`) and drops its lease. A failure is a
/// warning: the box works, and at worst `list` shows it `abandoned` later.
pub async fn mark(ctx: &Context, id: &str, state: &str) {
    mark_all(ctx, &[id.to_string()], state).await
}

/// Marks boxes `ids` `state` in one call (a cluster is marked done all at once, or not at all),
/// then drops their leases.
pub async fn mark_all(ctx: &Context, ids: &[String], state: &str) {
    if ids.is_empty() {
        return;
    }
    let ec2 = ctx.aws.ec2();
    let tagged = ec2
        .create_tags()
        .set_resources(Some(ids.to_vec()))
        .tags(Tag::builder().key(STATE_TAG).value(state).build())
        .send()
        .await;
    let untagged = match tagged {
        Ok(_) => ec2
            .delete_tags()
            .set_resources(Some(ids.to_vec()))
            .tags(Tag::builder().key(LEASE_TAG).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| crate::aws::describe(&e)),
        Err(e) => Err(crate::aws::describe(&e)),
    };
    if let Err(why) = untagged {
        ctx.shell.warn(format!(
            "could not mark `{}` as {state} ({why}); `cgcloud list --json` may call it abandoned later",
            ids.join("`, `")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
        pairs
            .iter()
            .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
            .collect()
    }

    #[test]
    fn a_box_is_abandoned_once_its_lease_ran_out() {
        let now = DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let later = lease_until(now, Duration::from_secs(600));
        assert_eq!(later, "2026-12-04T12:10:00Z");
        let earlier = "2026-12-04T11:59:59Z";
        assert_eq!(
            setup_state(&tags(&[(STATE_TAG, SETTING_UP), (LEASE_TAG, &later)]), now),
            Some(SETTING_UP)
        );
        assert_eq!(
            setup_state(&tags(&[(STATE_TAG, SETTING_UP), (LEASE_TAG, earlier)]), now),
            Some(ABANDONED)
        );
        for lease in [&[][..], &[(LEASE_TAG, "soon")][..]] {
            let mut t = vec![(STATE_TAG, SETTING_UP)];
            t.extend_from_slice(lease);
            assert_eq!(setup_state(&tags(&t), now), Some(ABANDONED), "{lease:?}");
        }
        assert_eq!(setup_state(&tags(&[(STATE_TAG, READY)]), now), Some(READY));
        assert_eq!(
            setup_state(&tags(&[(STATE_TAG, FAILED)]), now),
            Some(FAILED)
        );
        assert_eq!(setup_state(&tags(&[(STATE_TAG, "gone")]), now), None);
        assert_eq!(setup_state(&tags(&[]), now), None);
        assert_eq!(
            lease_until(now, Duration::from_secs(u64::MAX)),
            "9999-12-31T23:59:59Z"
        );
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        /// Tag values as anyone may write them: the known words, times around `now` in and out
        /// of shape, and any text.
        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(SETTING_UP.to_string()),
                Just(READY.to_string()),
                Just(FAILED.to_string()),
                Just(ABANDONED.to_string()),
                (-100_000i64..100_000).prop_map(|s| {
                    (now() + chrono::Duration::seconds(s))
                        .to_rfc3339_opts(SecondsFormat::Secs, true)
                }),
                (-100_000i64..100_000)
                    .prop_map(|s| (now() + chrono::Duration::seconds(s)).to_rfc3339()),
                ".{0,40}",
            ]
        }

        fn now() -> DateTime<Utc> {
            DateTime::parse_from_rfc3339("2026-12-04T12:00:00Z")
                .unwrap()
                .with_timezone(&Utc)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Whatever the tags hold, only a `setting-up` box with a lease still to come counts as
            /// claimed; a state cgcloud does not write means nothing; nothing panics.
            #[test]
            fn marks_read_back_mean_no_more_than_they_say(
                state in proptest::option::of(value()),
                lease in proptest::option::of(value()),
                other in ".{0,20}",
            ) {
                let mut pairs: Vec<(&str, &str)> = vec![("Name", other.as_str())];
                if let Some(s) = &state {
                    pairs.push((STATE_TAG, s));
                }
                if let Some(l) = &lease {
                    pairs.push((LEASE_TAG, l));
                }
                let got = setup_state(&tags(&pairs), now());
                let claimed = lease
                    .as_deref()
                    .and_then(|l| DateTime::parse_from_rfc3339(l).ok())
                    .is_some_and(|l| l >= now());
                let want = match state.as_deref() {
                    Some(SETTING_UP) if claimed => Some(SETTING_UP),
                    Some(SETTING_UP) => Some(ABANDONED),
                    Some(READY) => Some(READY),
                    Some(FAILED) => Some(FAILED),
                    _ => None,
                };
                prop_assert_eq!(got, want);
            }

            /// A lease of any length from any time is a time, never a panic.
            #[test]
            fn any_lease_is_a_time(secs in any::<u64>(), from in 0i64..253_402_300_800) {
                let start = DateTime::<Utc>::from_timestamp(from, 0).unwrap_or(now());
                let until = lease_until(start, Duration::from_secs(secs));
                prop_assert!(DateTime::parse_from_rfc3339(&until).is_ok(), "{}", until);
            }
        }
    }
}
