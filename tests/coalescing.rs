//! Verify calls that arrive together on a worker share one Redis `MGET`: under concurrent load
//! Redis sees fewer commands than calls, every call still gets its own answer, and the batch
//! sizes are exported.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::spawn_redis_app;
use serde_json::json;

fn commandstat(redis: &common::RedisServer, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut redis.client())
        .expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_verify_calls_share_mget_commands_and_each_gets_its_answer() {
    let (redis, app) = spawn_redis_app().await;
    let live = app.open(Some(600)).await;
    let never = "00890640-ec03-4663-82ce-456ea993807d";
    let before = commandstat(&redis, "mget");
    const CONNECTIONS: usize = 48;
    const CALLS_EACH: usize = 20;
    let addr = app.addr;
    // Every connection sends its calls pipelined, so many calls are in flight at once.
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let token = if i % 2 == 0 {
                live.clone()
            } else {
                never.to_owned()
            };
            std::thread::spawn(move || {
                let body = json!({"jsonrpc": "2.0", "method": "session.verify_session_token",
                                  "params": {"token": token}, "id": i})
                .to_string();
                let request = format!(
                    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let mut stream = TcpStream::connect(addr).expect("connect");
                stream
                    .write_all(request.repeat(CALLS_EACH).as_bytes())
                    .expect("write");
                stream
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .expect("write");
                let mut answers = String::new();
                stream.read_to_string(&mut answers).expect("read");
                (i % 2 == 0, answers)
            })
        })
        .collect();
    for thread in threads {
        let (live, answers) = thread.join().expect("client");
        let expected = format!(r#""result":{{"active":{live}}}"#);
        assert_eq!(
            answers.matches(&expected).count(),
            CALLS_EACH,
            "every call answered for its own token: {answers}"
        );
    }
    let calls = (CONNECTIONS * CALLS_EACH) as u64;
    let mgets = commandstat(&redis, "mget") - before;
    assert!(mgets > 0, "verify calls go through MGET");
    assert!(
        mgets < calls,
        "{calls} concurrent verify calls shared {mgets} MGET commands"
    );
    println!("{calls} verify calls took {mgets} MGET commands");
    let (_, metrics) = app.get("/metrics").await;
    let count: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sessiond_store_coalesced_batch_size_count "))
        .and_then(|n| n.trim().parse().ok())
        .expect("the batch size histogram is exported");
    assert!(count >= mgets, "{metrics}");
}
