//! Sessions that know their owner (SPEC, "Sessions that know their owner"): one contract,
//! every store, through the real [`Sessions`] code. Where the store is Redis, a raw client
//! also looks at what Redis holds: a plain session is still one string key, the subject index
//! is a sorted set that expires with its last session and is healed of dangling members.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::sha256_hex;
use redis::{ConnectionLike, FromRedisValue};
use serde_json::{Value, json};
use sessiond::metrics::Metrics;
use sessiond::session::expiry::ExpiryLimits;
use sessiond::session::record::{self, Record};
use sessiond::session::token;
use sessiond::session::{Introspection, Owner, Selection, Sessions};
use sessiond::store::key::{SessionKey, SubjectKey};
use sessiond::store::{
    ClusterStore, IndexEntry, MemoryStore, RedisStore, SentinelStore, SessionStore,
};

/// Every store key this file writes starts with this (and the ACL users may touch only it).
const PREFIX: &str = "identity:";

/// No session may live past `issued_at` plus this.
const MAX_LIFETIME: u64 = 100;

/// How long one store call may take.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

fn limits() -> ExpiryLimits {
    ExpiryLimits {
        default: 60,
        max: 3_600,
        max_lifetime: Some(MAX_LIFETIME),
    }
}

fn sessions<S: SessionStore>(store: S) -> Sessions<S> {
    Sessions::new(store, limits(), STORE_TIMEOUT, Arc::new(Metrics::default()))
}

fn session_key_name(token: &str) -> String {
    format!("{PREFIX}{}", sha256_hex(token))
}

fn index_key_name(subject: &str) -> String {
    format!("{PREFIX}subject:{}", sha256_hex(subject))
}

fn owner(subject: &str, metadata: Option<Value>) -> Owner {
    Owner {
        subject: Some(subject.to_owned()),
        metadata: metadata.map(|m| m.to_string()),
    }
}

fn ids(listed: &[Introspection]) -> Vec<String> {
    listed.iter().map(|s| s.session_id.clone()).collect()
}

/// What Redis holds, seen from outside the store: `routed` takes each command to the node of
/// its key (a cluster client in a cluster), `masters` are every master (to list all keys).
struct Raw {
    routed: Box<dyn ConnectionLike>,
    masters: Vec<redis::Connection>,
}

impl Raw {
    fn query<T: FromRedisValue>(&mut self, cmd: &redis::Cmd) -> T {
        cmd.query(&mut *self.routed)
            .unwrap_or_else(|e| panic!("raw {:?}: {e}", cmd.args_iter().next()))
    }

    fn one<T: FromRedisValue>(&mut self, name: &str, key: &str) -> T {
        let mut cmd = redis::cmd(name);
        cmd.arg(key);
        self.query(&cmd)
    }

    fn exists(&mut self, key: &str) -> bool {
        self.one::<i64>("EXISTS", key) == 1
    }

    fn zscore(&mut self, index: &str, member: &str) -> Option<f64> {
        let mut cmd = redis::cmd("ZSCORE");
        cmd.arg(index).arg(member);
        self.query(&cmd)
    }

    /// Every key on every master, sorted.
    fn keys(&mut self) -> Vec<String> {
        let mut all: Vec<String> = self
            .masters
            .iter_mut()
            .flat_map(|conn| {
                redis::cmd("KEYS")
                    .arg("*")
                    .query::<Vec<String>>(conn)
                    .expect("KEYS")
            })
            .collect();
        all.sort();
        all
    }
}

/// The behaviour every store must have. Real seconds: Redis's own clock is part of what is
/// tested. `raw` is `None` for the in-process store.
async fn contract<S: SessionStore>(sessions: &Sessions<S>, mut raw: Option<&mut Raw>) {
    plain_sessions_are_unchanged(sessions, raw.as_deref_mut()).await;
    let alice = owned_sessions_say_whose_they_are(sessions, raw.as_deref_mut()).await;
    let (alice, bob) = a_subjects_sessions_are_listed_newest_first(sessions, alice).await;
    extending_is_bounded_and_never_revives(sessions, raw.as_deref_mut(), &alice).await;
    closing_by_subject(sessions, raw.as_deref_mut(), alice, &bob).await;
    the_index_expires_with_its_last_session(sessions, raw.as_deref_mut()).await;
    dangling_index_members_are_skipped_and_pruned(sessions, raw).await;
}

/// A plain open: introspect says active, the TTL, the issue time and the id; no subject or
/// metadata; verify is true. On Redis it is exactly one string key with a TTL, and nothing
/// else was written.
async fn plain_sessions_are_unchanged<S: SessionStore>(
    sessions: &Sessions<S>,
    mut raw: Option<&mut Raw>,
) {
    let before_keys = raw.as_deref_mut().map(Raw::keys);
    let before = record::now();
    let opened = sessions.open(60, Owner::default()).await.expect("open");
    let after = record::now();
    assert_eq!(opened.expires_in, 60, "granted what was asked");
    let seen = sessions
        .introspect(&opened.access_token)
        .await
        .expect("introspect")
        .expect("a fresh session is live");
    assert!(
        (58..=60).contains(&seen.expires_in),
        "seconds left ≤ granted: {}",
        seen.expires_in
    );
    let issued_at = seen.record.issued_at.expect("an issue time");
    assert!(
        (before..=after).contains(&issued_at),
        "issued_at {issued_at} is now ({before}..={after})"
    );
    assert_eq!(seen.session_id, sha256_hex(&opened.access_token));
    assert_eq!(seen.record.subject, None, "a plain session has no subject");
    assert_eq!(
        seen.record.metadata, None,
        "a plain session has no metadata"
    );
    assert!(sessions.verify(&opened.access_token).await.expect("verify"));

    if let (Some(raw), Some(before_keys)) = (raw, before_keys) {
        let key = session_key_name(&opened.access_token);
        let mut expected = before_keys;
        expected.push(key.clone());
        expected.sort();
        assert_eq!(raw.keys(), expected, "one key written, and only that one");
        assert_eq!(raw.one::<String>("TYPE", &key), "string");
        let ttl: i64 = raw.one("TTL", &key);
        assert!((1..=60).contains(&ttl), "the session's TTL: {ttl}");
        let value: String = raw.one("GET", &key);
        assert_eq!(
            value,
            issued_at.to_string(),
            "a plain value is its issue time (session::record)"
        );
    }
}

/// A session opened with a subject and metadata says both; any letter case of its token
/// names it. Returns alice's first token.
async fn owned_sessions_say_whose_they_are<S: SessionStore>(
    sessions: &Sessions<S>,
    raw: Option<&mut Raw>,
) -> String {
    let metadata = json!({"device": "phone", "ip": "10.0.0.1", "nested": {"n": [1, 2]}});
    let opened = sessions
        .open(60, owner("alice", Some(metadata.clone())))
        .await
        .expect("open with an owner");
    assert_eq!(opened.expires_in, 60);
    let seen = sessions
        .introspect(&opened.access_token)
        .await
        .expect("introspect")
        .expect("live");
    assert_eq!(seen.record.subject.as_deref(), Some("alice"));
    let kept: Value =
        serde_json::from_str(seen.record.metadata.as_deref().expect("metadata")).expect("json");
    assert_eq!(kept, metadata);
    assert_eq!(seen.session_id, sha256_hex(&opened.access_token));

    let upper = opened.access_token.to_ascii_uppercase();
    assert_ne!(upper, opened.access_token);
    let same = sessions
        .introspect(&upper)
        .await
        .expect("introspect")
        .expect("the upper-case token names the live session");
    assert_eq!(same.session_id, seen.session_id);
    assert_eq!(same.record, seen.record);
    assert!(sessions.verify(&upper).await.expect("verify"));

    if let Some(raw) = raw {
        let key = session_key_name(&opened.access_token);
        let value: String = raw.one("GET", &key);
        let issued_at = seen.record.issued_at.expect("issued_at");
        assert!(
            value.starts_with(&format!("{issued_at} {{")),
            "issue time first, then the JSON: {value}"
        );
        assert!(!value.contains(&opened.access_token), "no token in Redis");
        let index = index_key_name("alice");
        assert_eq!(raw.one::<String>("TYPE", &index), "zset");
        let score = raw
            .zscore(&index, &seen.session_id)
            .expect("indexed under its subject");
        let expiry = (issued_at + 60) as f64;
        assert!(
            (expiry - 1.0..=expiry + 1.0).contains(&score),
            "the member's score is its expiry: {score} vs {expiry}"
        );
        let ttl: i64 = raw.one("TTL", &index);
        assert!((1..=61).contains(&ttl), "the index expires: TTL {ttl}");
    }
    opened.access_token
}

/// Several sessions of alice (issued at different seconds) and one of bob: alice's list is
/// hers only, newest first. Returns alice's tokens (oldest first) and bob's.
async fn a_subjects_sessions_are_listed_newest_first<S: SessionStore>(
    sessions: &Sessions<S>,
    first: String,
) -> (Vec<String>, String) {
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let second = sessions
        .open(60, owner("alice", None))
        .await
        .expect("open")
        .access_token;
    let bob = sessions
        .open(60, owner("bob", Some(json!({"device": "laptop"}))))
        .await
        .expect("open")
        .access_token;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let third = sessions
        .open(45, owner("alice", Some(json!({"n": 3}))))
        .await
        .expect("open")
        .access_token;
    let alice = vec![first, second, third];

    let listed = sessions.list("alice").await.expect("list");
    let newest_first: Vec<String> = alice.iter().rev().map(|t| sha256_hex(t)).collect();
    assert_eq!(ids(&listed), newest_first, "alice's, newest first");
    let times: Vec<u64> = listed
        .iter()
        .map(|s| s.record.issued_at.expect("issued_at"))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] > w[1]),
        "issued_at strictly decreasing: {times:?}"
    );
    for (session, ttl) in listed.iter().zip([45, 60, 60]) {
        assert!(
            (ttl - 5..=ttl).contains(&session.expires_in),
            "expires_in {} of {ttl}",
            session.expires_in
        );
        assert_eq!(session.record.subject.as_deref(), Some("alice"));
    }
    assert_eq!(listed[0].record.metadata.as_deref(), Some(r#"{"n":3}"#));
    assert_eq!(listed[1].record.metadata, None, "no metadata was given");
    assert!(listed[2].record.metadata.is_some());

    let bobs = sessions.list("bob").await.expect("list");
    assert_eq!(ids(&bobs), vec![sha256_hex(&bob)]);
    assert_eq!(
        bobs[0].record.metadata.as_deref(),
        Some(r#"{"device":"laptop"}"#)
    );
    assert!(
        sessions.list("nobody").await.expect("list").is_empty(),
        "an unknown subject has no sessions"
    );
    assert!(
        sessions.list("Alice").await.expect("list").is_empty(),
        "subjects are exact"
    );
    (alice, bob)
}

/// Extending within bounds sets the TTL; the lifetime cap holds; an ended session is never
/// revived.
async fn extending_is_bounded_and_never_revives<S: SessionStore>(
    sessions: &Sessions<S>,
    mut raw: Option<&mut Raw>,
    alice: &[String],
) {
    let token = &alice[1];
    let granted = sessions.extend(token, 30).await.expect("extend");
    assert_eq!(granted, Some(30), "shortened to what was asked");
    let seen = sessions.introspect(token).await.expect("i").expect("live");
    assert!((28..=30).contains(&seen.expires_in), "{}", seen.expires_in);
    if let Some(raw) = raw.as_deref_mut() {
        let ttl: i64 = raw.one("TTL", &session_key_name(token));
        assert!((28..=30).contains(&ttl), "Redis TTL {ttl}");
        let score = raw
            .zscore(&index_key_name("alice"), &sha256_hex(token))
            .expect("still indexed");
        let expiry = (record::now() + 30) as f64;
        assert!(
            (expiry - 2.0..=expiry + 1.0).contains(&score),
            "the index score follows the extension: {score} vs {expiry}"
        );
    }
    let granted = sessions.extend(token, 90).await.expect("extend");
    assert_eq!(granted, Some(90), "lengthened within the lifetime");
    let seen = sessions.introspect(token).await.expect("i").expect("live");
    assert!((88..=90).contains(&seen.expires_in), "{}", seen.expires_in);

    // The lifetime cap: no extension past issued_at + MAX_LIFETIME.
    let issued_at = seen.record.issued_at.expect("issued_at");
    let age_before = record::now() - issued_at;
    let granted = sessions
        .extend(token, 500)
        .await
        .expect("extend")
        .expect("live");
    let age_after = record::now() - issued_at;
    assert!(
        granted <= MAX_LIFETIME - age_before && granted + 1 >= MAX_LIFETIME - age_after,
        "granted {granted}, lifetime left {}",
        MAX_LIFETIME - age_before
    );
    let seen = sessions.introspect(token).await.expect("i").expect("live");
    assert!(
        seen.expires_in <= granted,
        "{} > {granted}",
        seen.expires_in
    );

    // A session already past its lifetime (opened 200 s ago, as far as its value says) is
    // not extended at all.
    let old = token::generate();
    let value = Record {
        issued_at: Some(record::now() - 200),
        subject: None,
        metadata: None,
    }
    .encode();
    assert!(
        sessions
            .store()
            .create_with(&SessionKey::of(&old), 20, &value, None)
            .await
            .expect("create")
    );
    let granted = sessions
        .extend(&old, 500)
        .await
        .expect("extend")
        .expect("still live");
    assert!(granted <= 20, "not extended past its lifetime: {granted}");
    let seen = sessions.introspect(&old).await.expect("i").expect("live");
    assert!(seen.expires_in <= 20, "{}", seen.expires_in);

    // A closed session is never revived.
    let closed = sessions
        .open(60, owner("carl", None))
        .await
        .expect("open")
        .access_token;
    sessions.close(&closed).await.expect("close");
    assert_eq!(sessions.extend(&closed, 60).await.expect("extend"), None);
    assert!(!sessions.verify(&closed).await.expect("verify"));
    assert!(sessions.introspect(&closed).await.expect("i").is_none());
    if let Some(raw) = raw {
        assert!(!raw.exists(&session_key_name(&closed)), "not written again");
    }
    // Tokens of the wrong shape, or never issued, are simply not live.
    assert_eq!(sessions.extend("not-a-token", 60).await.expect("e"), None);
    assert_eq!(
        sessions.extend(&token::generate(), 60).await.expect("e"),
        None
    );
}

/// close_sessions: all but one, only the named ids of that subject, then all.
async fn closing_by_subject<S: SessionStore>(
    sessions: &Sessions<S>,
    raw: Option<&mut Raw>,
    mut alice: Vec<String>,
    bob: &str,
) {
    for _ in 0..2 {
        alice.push(
            sessions
                .open(60, owner("alice", None))
                .await
                .expect("open")
                .access_token,
        );
    }
    assert_eq!(sessions.list("alice").await.expect("list").len(), 5);

    // Another subject's session, named under alice, is not hers to close.
    let closed = sessions
        .close_sessions(
            "alice",
            Selection {
                except_token: None,
                session_ids: Some(vec![sha256_hex(bob), "not-an-id".into()]),
            },
        )
        .await
        .expect("close_sessions");
    assert_eq!(closed, 0, "bob's session is not alice's");
    assert!(sessions.verify(bob).await.expect("verify"));
    assert_eq!(sessions.list("alice").await.expect("list").len(), 5);

    // One of hers, named by id: exactly that one.
    let device = alice.remove(3);
    let closed = sessions
        .close_sessions(
            "alice",
            Selection {
                except_token: None,
                session_ids: Some(vec![sha256_hex(&device)]),
            },
        )
        .await
        .expect("close_sessions");
    assert_eq!(closed, 1);
    assert!(!sessions.verify(&device).await.expect("verify"));
    let listed = sessions.list("alice").await.expect("list");
    assert_eq!(listed.len(), 4);
    assert!(!ids(&listed).contains(&sha256_hex(&device)));
    for token in &alice {
        assert!(sessions.verify(token).await.expect("verify"), "others live");
    }

    // All but this one ("sign out everywhere else").
    let kept = alice.remove(0);
    let closed = sessions
        .close_sessions(
            "alice",
            Selection {
                except_token: Some(kept.to_ascii_uppercase()),
                session_ids: None,
            },
        )
        .await
        .expect("close_sessions");
    assert_eq!(closed, 3, "all but the kept one (n - 1)");
    assert_eq!(
        ids(&sessions.list("alice").await.expect("list")),
        vec![sha256_hex(&kept)]
    );
    assert!(sessions.verify(&kept).await.expect("verify"));
    for token in alice.iter().chain([&device]) {
        assert!(!sessions.verify(token).await.expect("verify"), "closed");
        assert!(sessions.introspect(token).await.expect("i").is_none());
    }

    // All of them ("sign out everywhere"), and bob keeps his.
    let closed = sessions
        .close_sessions("alice", Selection::default())
        .await
        .expect("close_sessions");
    assert_eq!(closed, 1);
    assert!(!sessions.verify(&kept).await.expect("verify"));
    assert!(sessions.list("alice").await.expect("list").is_empty());
    assert!(sessions.verify(bob).await.expect("verify"), "bob untouched");
    assert_eq!(sessions.list("bob").await.expect("list").len(), 1);
    let again = sessions
        .close_sessions("alice", Selection::default())
        .await
        .expect("close_sessions");
    assert_eq!(again, 0, "nothing left to close");
    if let Some(raw) = raw {
        assert!(
            !raw.exists(&index_key_name("alice")),
            "an emptied index is gone"
        );
        assert!(raw.exists(&index_key_name("bob")));
        for token in alice.iter().chain([&device, &kept]) {
            assert!(!raw.exists(&session_key_name(token)));
        }
    }
    let gone = sessions
        .close_sessions("nobody", Selection::default())
        .await
        .expect("close_sessions of an unknown subject");
    assert_eq!(gone, 0);
}

/// A subject's only session, opened for 1 s: once it has expired, its index is gone too
/// (it got `EXPIREAT` its last member's expiry), list is empty and extend revives nothing.
async fn the_index_expires_with_its_last_session<S: SessionStore>(
    sessions: &Sessions<S>,
    mut raw: Option<&mut Raw>,
) {
    let short = sessions
        .open(1, owner("dora", Some(json!({"short": true}))))
        .await
        .expect("open")
        .access_token;
    let index = index_key_name("dora");
    if let Some(raw) = raw.as_deref_mut() {
        let pttl: i64 = raw.one("PTTL", &index);
        assert!(
            (1..=2_000).contains(&pttl),
            "the index expires with its only session: PTTL {pttl}"
        );
    }
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    if let Some(raw) = raw.as_deref_mut() {
        assert!(
            !raw.exists(&index),
            "the index expired by itself, before anything read it"
        );
    }
    assert!(sessions.list("dora").await.expect("list").is_empty());
    assert!(!sessions.verify(&short).await.expect("verify"));
    assert_eq!(
        sessions.extend(&short, 60).await.expect("extend"),
        None,
        "an expired session is not revived"
    );
    assert!(!sessions.verify(&short).await.expect("verify"));
    assert!(sessions.introspect(&short).await.expect("i").is_none());
    if let Some(raw) = raw {
        assert!(!raw.exists(&session_key_name(&short)));
        assert!(!raw.exists(&index), "extend did not index it again");
    }
}

/// Index members whose session is missing are skipped by list and pruned from the index:
/// a session deleted behind the index's back, and a member written without its session.
///
/// Redis Cluster caveat: the index and the sessions live in different slots, so opening a
/// session there is two steps, index first (`reindex`), then `SET … NX`; a crash or a failed
/// `SET` in between leaves a member with a future score and no session. Such a member must be
/// skipped and pruned by list, which is what the index entries without sessions below
/// simulate (through the store, and by a raw `ZADD` where the store is Redis).
async fn dangling_index_members_are_skipped_and_pruned<S: SessionStore>(
    sessions: &Sessions<S>,
    mut raw: Option<&mut Raw>,
) {
    let deleted = sessions
        .open(60, owner("erin", None))
        .await
        .expect("open")
        .access_token;
    let kept = sessions
        .open(60, owner("erin", None))
        .await
        .expect("open")
        .access_token;
    let index = index_key_name("erin");

    sessions
        .store()
        .delete(&SessionKey::of(&deleted))
        .await
        .expect("delete behind the index's back");
    assert_eq!(
        ids(&sessions.list("erin").await.expect("list")),
        vec![sha256_hex(&kept)],
        "the deleted session is not listed"
    );
    if let Some(raw) = raw.as_deref_mut() {
        assert_eq!(
            raw.zscore(&index, &sha256_hex(&deleted)),
            None,
            "list pruned the dangling member"
        );
        assert!(raw.zscore(&index, &sha256_hex(&kept)).is_some());
    }

    // The cluster's half-open session: the index member was written, the SET never happened.
    let now = record::now();
    let never_set = SessionKey::of(&token::generate());
    sessions
        .store()
        .reindex(&IndexEntry {
            subject: SubjectKey::of("erin"),
            session: never_set,
            expires_at: now + 600,
            now,
        })
        .await
        .expect("index without a session");
    let bogus = sha256_hex("a session id whose SET never happened");
    if let Some(raw) = raw.as_deref_mut() {
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(&index).arg(now + 600).arg(&bogus);
        let added: i64 = raw.query(&zadd);
        assert_eq!(added, 1);
        let members: i64 = raw.one("ZCARD", &index);
        assert_eq!(members, 3, "kept, and two members without sessions");
    }
    assert_eq!(
        ids(&sessions.list("erin").await.expect("list")),
        vec![sha256_hex(&kept)],
        "members without a session are skipped"
    );
    if let Some(raw) = raw {
        assert_eq!(raw.zscore(&index, &never_set.id()), None, "pruned");
        assert_eq!(raw.zscore(&index, &bogus), None, "pruned");
        let members: i64 = raw.one("ZCARD", &index);
        assert_eq!(members, 1, "only the live session is left");
    }
    // They are not closed (they were never live) and the live one still is.
    let closed = sessions
        .close_sessions("erin", Selection::default())
        .await
        .expect("close_sessions");
    assert_eq!(closed, 1);
    assert!(!sessions.verify(&kept).await.expect("verify"));
}

/// The ACL rules the identity commands add, on a cluster node or a Sentinel-managed master,
/// to the three methods' own (README, "Redis Cluster and Sentinel"): the plain reads and
/// writes, the index's sorted-set commands, and the scripts (`EVALSHA`, and `SCRIPT LOAD` on
/// `NOSCRIPT`); a script's own `redis.call`s are checked against the user's rules too.
/// Each one is needed: without any single rule, both topologies' contract tests fail.
const IDENTITY_ACL: &[&str] = &[
    "+get",
    "+ttl",
    "+expire",
    "+expireat",
    "+zadd",
    "+zrange",
    "+zrangebyscore",
    "+zrem",
    "+zremrangebyscore",
    "+evalsha",
    "+script|load",
];

/// The three methods' rules on a cluster node (tests/store_contract.rs), then the identity
/// ones.
fn cluster_acl() -> Vec<&'static str> {
    let base = [
        "~identity:*",
        "+set",
        "+exists",
        "+del",
        "+ping",
        "+cluster|slots",
        "+asking",
    ];
    base.into_iter()
        .chain(IDENTITY_ACL.iter().copied())
        .collect()
}

/// The three methods' rules on the master and the replica, then the identity ones.
fn sentinel_data_acl() -> Vec<&'static str> {
    let base = ["~identity:*", "+set", "+exists", "+del", "+ping", "+role"];
    base.into_iter()
        .chain(IDENTITY_ACL.iter().copied())
        .collect()
}

#[tokio::test]
async fn memory_store_keeps_the_identity_contract() {
    contract(&sessions(MemoryStore::new()), None).await;
}

#[tokio::test]
async fn redis_store_keeps_the_identity_contract() {
    let redis = common::RedisServer::start();
    let store = RedisStore::new(&redis.url(), PREFIX, STORE_TIMEOUT).expect("store");
    let mut raw = Raw {
        routed: Box::new(redis.client()),
        masters: vec![redis.client()],
    };
    contract(&sessions(store), Some(&mut raw)).await;
}

#[tokio::test]
async fn cluster_store_keeps_the_identity_contract() {
    // A least-privilege ACL user with the documented rules, on every node.
    let cluster = common::cluster::RedisCluster::start_with_password("cluster-secret");
    let seeds = cluster.add_user("sessiond", "user-secret", &cluster_acl());
    let seeds: Vec<String> = seeds.split(',').map(str::to_owned).collect();
    let store = ClusterStore::new(&seeds, PREFIX, STORE_TIMEOUT).expect("cluster store");
    let admin: Vec<String> = cluster.seed_urls().split(',').map(str::to_owned).collect();
    let routed = redis::cluster::ClusterClient::new(admin)
        .and_then(|c| c.get_connection())
        .expect("a cluster client");
    let mut raw = Raw {
        routed: Box::new(routed),
        masters: cluster
            .masters()
            .into_iter()
            .map(|port| cluster.connection(port))
            .collect(),
    };
    assert_eq!(raw.masters.len(), 3);
    contract(&sessions(store), Some(&mut raw)).await;
}

#[tokio::test]
async fn sentinel_store_keeps_the_identity_contract() {
    let group = common::sentinel::SentinelGroup::start_with_password("sentinel-secret");
    let sentinels = group.add_user(
        "sessiond",
        "user-secret",
        &sentinel_data_acl(),
        &["+role", "+sentinel|masters"],
    );
    let sentinels: Vec<String> = sentinels.split(',').map(str::to_owned).collect();
    let store = SentinelStore::new(
        &sentinels,
        common::sentinel::SENTINEL_MASTER_NAME,
        PREFIX,
        STORE_TIMEOUT,
    )
    .expect("sentinel store");
    let master = group.master_port();
    let mut raw = Raw {
        routed: Box::new(group.connection(master)),
        masters: vec![group.connection(master)],
    };
    contract(&sessions(store), Some(&mut raw)).await;
}

/// Sleeps until the wall clock's fraction of a second is at least `fraction`.
async fn sleep_until_fraction(fraction: f64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    let into = f64::from(now.subsec_nanos()) / 1e9;
    let wait = if into >= fraction {
        0.0
    } else {
        fraction - into
    };
    tokio::time::sleep(Duration::from_secs_f64(wait + 0.01)).await;
}

/// A session is listed and closable for as long as it is live, to its last second: its index
/// score and the index's expiry must not come before the session's own expiry.
///
/// `now` is whole seconds (floored) while the session's TTL runs from the real instant, up to
/// a second later, so the score is rounded up (`now + expires_in + 1`); were it not, in the
/// session's last (fraction of a) second the index would have expired (Redis) or been swept
/// (memory): list would omit a live session and close_sessions would leave it live.
/// `sweep` stands for the store's own housekeeping having run just now (the memory store's
/// sweeper runs every second).
async fn listed_and_closed_to_the_last_second<S: SessionStore>(
    sessions: &Sessions<S>,
    sweep: impl Fn(&S),
) {
    sleep_until_fraction(0.7).await;
    let listed = sessions
        .open(2, owner("late-list", None))
        .await
        .expect("open")
        .access_token;
    let closed = sessions
        .open(2, owner("late-close", None))
        .await
        .expect("open")
        .access_token;
    let opened_at = record::now();
    // Into the sessions' last second: past opened_at + 2 (a whole second after the
    // fraction 0.7), before their TTL runs out at opened_at + 2.7 or later.
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock");
        if now.as_secs() >= opened_at + 2 && now.subsec_millis() >= 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sweep(sessions.store());
    assert!(
        sessions.verify(&closed).await.expect("verify"),
        "the session is live in its last second"
    );
    let count = sessions
        .close_sessions("late-close", Selection::default())
        .await
        .expect("close_sessions");
    let still_live = sessions.verify(&closed).await.expect("verify");
    let list = ids(&sessions.list("late-list").await.expect("list"));
    assert!(
        sessions.verify(&listed).await.expect("verify"),
        "the listed session was still live when listed"
    );
    assert_eq!(
        (count, still_live, list),
        (1, false, vec![sha256_hex(&listed)]),
        "(closed by close_sessions, verify after it, list of a live session)"
    );
}

#[tokio::test]
async fn redis_lists_and_closes_a_session_to_its_last_second() {
    let redis = common::RedisServer::start();
    let store = RedisStore::new(&redis.url(), PREFIX, STORE_TIMEOUT).expect("store");
    listed_and_closed_to_the_last_second(&sessions(store), |_| ()).await;
}

#[tokio::test]
async fn memory_lists_and_closes_a_session_to_its_last_second() {
    listed_and_closed_to_the_last_second(&sessions(MemoryStore::new()), |store| {
        store.sweep();
    })
    .await;
}
