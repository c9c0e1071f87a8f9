//! One contract, every store: each backend must behave as Redis does for the three commands
//! the service uses. Add a backend by adding one test that calls [`contract`].

mod common;

use std::time::Duration;

use sessiond::store::key::SessionKey;
use sessiond::store::{ClusterStore, MemoryStore, RedisStore, SentinelStore, SessionStore};

/// The behaviour every store must have. Uses real seconds for the TTL, as Redis's own clock
/// is what is being tested.
async fn contract<S: SessionStore>(store: &S) {
    let key = SessionKey::of(&sessiond::session::token::generate());
    let other = SessionKey::of(&sessiond::session::token::generate());

    store.ping().await.expect("ping");
    assert!(
        !store.exists(&key).await.expect("exists"),
        "absent at first"
    );
    assert!(store.create(&key, 60).await.expect("create"), "created");
    assert!(
        store.exists(&key).await.expect("exists"),
        "present after create"
    );
    assert!(
        !store.exists(&other).await.expect("exists"),
        "other keys unaffected"
    );
    assert!(
        !store.create(&key, 60).await.expect("create again"),
        "never overwrites a live key"
    );

    store.delete(&key).await.expect("delete");
    assert!(
        !store.exists(&key).await.expect("exists"),
        "gone after delete"
    );
    store
        .delete(&key)
        .await
        .expect("deleting a missing key is not an error");
    assert!(
        store.create(&key, 60).await.expect("create"),
        "a deleted key may be created again"
    );

    let short = SessionKey::of(&sessiond::session::token::generate());
    assert!(store.create(&short, 1).await.expect("create"));
    assert!(store.exists(&short).await.expect("exists"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        !store.exists(&short).await.expect("exists"),
        "expired after its TTL"
    );
    assert!(
        store.create(&short, 60).await.expect("create"),
        "an expired key may be created again"
    );
    assert!(
        store.exists(&key).await.expect("exists"),
        "the long-lived key outlived the short one"
    );
    exists_many(store, &key, &short).await;
}

/// `exists_many` answers each key in order, whatever mix of live and absent keys it is asked
/// about (the Redis store asks one multi-key `EXISTS` first and goes key by key only when its
/// count is neither zero nor all of them; a key named twice counts twice).
async fn exists_many<S: SessionStore>(store: &S, live: &SessionKey, other_live: &SessionKey) {
    let absent = SessionKey::of(&sessiond::session::token::generate());
    let other_absent = SessionKey::of(&sessiond::session::token::generate());
    let (l, m, a, b) = (*live, *other_live, absent, other_absent);
    let cases: &[(&[SessionKey], &[bool], &str)] = &[
        (&[], &[], "nothing asked"),
        (&[l, m], &[true, true], "all live"),
        (&[a, b], &[false, false], "none live"),
        (
            &[a, l, b, m, a],
            &[false, true, false, true, false],
            "some of each",
        ),
        (
            &[l, l, a],
            &[true, true, false],
            "a live key twice and an absent one",
        ),
        (
            &[a, a, l],
            &[false, false, true],
            "an absent key twice and a live one",
        ),
        (
            &[l, a, a],
            &[true, false, false],
            "twice absent after a live key",
        ),
    ];
    for (keys, expected, case) in cases {
        let found = store.exists_many(keys).await.expect("exists_many");
        assert_eq!(&found, expected, "{case}");
    }
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    contract(&MemoryStore::new()).await;
}

#[tokio::test]
async fn redis_store_keeps_the_contract() {
    let redis = common::RedisServer::start();
    let store = RedisStore::new(&redis.url(), "contract:", Duration::from_secs(1)).expect("store");
    contract(&store).await;
}

/// A standalone URL that leads to a server refusing one command naming keys of different hash
/// slots (as a sharding proxy may) still gets every batch answered: here a real one-node Redis
/// Cluster, which answers single-key commands for every slot and `CROSSSLOT` to a multi-key
/// `EXISTS`.
#[tokio::test]
async fn redis_store_keeps_the_contract_where_multi_key_commands_are_refused() {
    let bus = common::free_port().to_string();
    let redis = common::RedisServer::start_with(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-port",
        &bus,
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    let mut admin = redis.client();
    let added: String = redis::cmd("CLUSTER")
        .arg(&["ADDSLOTSRANGE", "0", "16383"][..])
        .query(&mut admin)
        .expect("CLUSTER ADDSLOTSRANGE");
    assert_eq!(added, "OK");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query(&mut admin)
            .expect("CLUSTER INFO");
        if info.contains("cluster_state:ok") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the one-node cluster is not ok: {info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused: redis::RedisResult<u64> = redis::cmd("EXISTS")
        .arg(&["contract:a", "contract:b"][..])
        .query(&mut admin);
    assert!(
        refused.is_err(),
        "the server refuses a multi-key command across slots"
    );
    let store = RedisStore::new(&redis.url(), "contract:", Duration::from_secs(1)).expect("store");
    contract(&store).await;
}

/// The ACL rules a least-privilege user needs on a cluster node: the four commands, the slot
/// map (`CLUSTER SLOTS`) and `ASKING` (to follow an `ASK` redirection). README, "Redis
/// Cluster and Sentinel".
const CLUSTER_ACL: &[&str] = &[
    "~contract:*",
    "+set",
    "+exists",
    "+del",
    "+ping",
    "+cluster|slots",
    "+asking",
];

/// On the master (and the replica, for after a failover): the four commands and `ROLE`.
const SENTINEL_DATA_ACL: &[&str] = &["~contract:*", "+set", "+exists", "+del", "+ping", "+role"];

/// On the sentinels: `ROLE` (the client checks that it talks to a sentinel) and
/// `SENTINEL MASTERS`, the question that finds the master.
const SENTINEL_ACL: &[&str] = &["+role", "+sentinel|masters"];

#[tokio::test]
async fn cluster_store_keeps_the_contract() {
    // Nodes that require a password, reached as a least-privilege ACL user: the credentials
    // in the seed URLs reach every node, and the documented rules are enough.
    let cluster = common::cluster::RedisCluster::start_with_password("cluster-secret");
    let seeds = cluster.add_user("sessiond", "user-secret", CLUSTER_ACL);
    let seeds: Vec<String> = seeds.split(',').map(str::to_owned).collect();
    let store =
        ClusterStore::new(&seeds, "contract:", Duration::from_secs(1)).expect("cluster store");
    contract(&store).await;
}

#[tokio::test]
async fn sentinel_store_keeps_the_contract() {
    // A password on the master, the replica and the sentinels alike, reached as a
    // least-privilege ACL user that exists on all of them.
    let group = common::sentinel::SentinelGroup::start_with_password("sentinel-secret");
    let sentinels = group.add_user("sessiond", "user-secret", SENTINEL_DATA_ACL, SENTINEL_ACL);
    let sentinels: Vec<String> = sentinels.split(',').map(str::to_owned).collect();
    let store = SentinelStore::new(
        &sentinels,
        common::sentinel::SENTINEL_MASTER_NAME,
        "contract:",
        Duration::from_secs(1),
    )
    .expect("sentinel store");
    contract(&store).await;
}
