//! Request ids: the caller's `X-Request-Id` when it is sane, otherwise one made up, echoed in
//! the response; and the id of the request being served, for the problems logged while
//! serving it.
//!
//! The id reaches those log lines through a task-local, not a `tracing` span: a span made on
//! every request costs a formatting of its fields whether or not anything is logged
//! (measured in docs/BENCHMARKS.md). The `request` span exists at `debug` only.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::header::{HeaderMap, HeaderName, HeaderValue};

/// The header the id comes in and goes out in.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: HeaderValue;
}

/// Runs `future` as the serving of the request with id `id`. A plain function, not an
/// `async fn`: an `async fn` would hold `future` twice (as its argument and inside the scope),
/// doubling the size of every request's future.
pub fn scope<F: Future>(id: HeaderValue, future: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(id, future)
}

/// Calls `f` with the id of the request being served on this task, or `""` outside one. For
/// log lines: `with_current(|id| tracing::warn!(request_id = id, …))`.
pub fn with_current<R>(f: impl FnOnce(&str) -> R) -> R {
    match CURRENT.try_with(|id| id.clone()) {
        Ok(id) => f(id.to_str().unwrap_or_default()),
        Err(_) => f(""),
    }
}

/// The caller's request id when it is a sane header value, otherwise a new one.
pub fn from_headers(headers: &HeaderMap) -> HeaderValue {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    if let Some(given) = headers.get(&HEADER) {
        let sane = given.len() <= 128 && given.as_bytes().iter().all(u8::is_ascii_graphic);
        if sane && !given.is_empty() {
            return given.clone();
        }
    }
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // `<boot id, 8 hex digits>-<counter in hex>`, written without the formatting machinery:
    // this runs on every request.
    let mut made = [0u8; 8 + 1 + 16];
    write_hex(&mut made[..8], u64::from(boot_id()));
    made[8] = b'-';
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    write_hex(&mut made[9..9 + digits], n);
    HeaderValue::from_bytes(&made[..9 + digits])
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// Fills `out` with the low `out.len()` hex digits of `n`, most significant first.
fn write_hex(out: &mut [u8], mut n: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for digit in out.iter_mut().rev() {
        *digit = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
}

/// A random number fixed for the life of the process, so request ids differ across replicas.
fn boot_id() -> u32 {
    static BOOT: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *BOOT.get_or_init(|| uuid::Uuid::new_v4().as_u128() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_request_ids_are_the_boot_id_and_a_counter_in_hex() {
        let first = from_headers(&HeaderMap::new());
        let second = from_headers(&HeaderMap::new());
        let parse = |id: &HeaderValue| {
            let text = id.to_str().expect("ascii").to_owned();
            let (boot, n) = text.split_once('-').expect("two parts");
            assert_eq!(boot, format!("{:08x}", boot_id()));
            u64::from_str_radix(n, 16).expect("hex")
        };
        assert!(parse(&second) > parse(&first));
        let mut out = [0u8; 3];
        write_hex(&mut out, 0xabc);
        assert_eq!(&out, b"abc");
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_static("given-1"));
        assert_eq!(from_headers(&headers), "given-1");
    }

    #[tokio::test]
    async fn the_current_id_is_the_scope_s_and_none_outside() {
        assert_eq!(with_current(str::to_owned), "");
        let seen = scope(HeaderValue::from_static("id-1"), async {
            tokio::task::yield_now().await;
            with_current(str::to_owned)
        })
        .await;
        assert_eq!(seen, "id-1");
    }
}
