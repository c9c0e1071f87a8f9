//! Prometheus metrics, one registry per app (no global state, so tests and benchmarks can
//! run several apps in one process). Served at `GET /metrics` in the OpenMetrics text format,
//! which Prometheus scrapes natively.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of a JSON-RPC call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The method's name, `unknown` for a name that is not a method, `invalid` when the
    /// request was not valid enough to have one.
    pub method: &'static str,
    /// `result`, or the error code.
    pub outcome: &'static str,
}

/// Labels naming a method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// As in [`CallLabels::method`].
    pub method: &'static str,
}

/// A store operation.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Operation {
    /// `SET … EX … NX`
    create,
    /// `EXISTS`
    exists,
    /// A batch's `EXISTS` calls, sent together (one multi-key `EXISTS` on Redis, then a
    /// pipeline of single-key ones when the count is neither zero nor all)
    exists_batch,
    /// `DEL`
    delete,
    /// `ROLE` (or `PING`): readiness
    ping,
    /// `GET` and `TTL` of one session (introspect)
    read,
    /// The extend script
    extend,
    /// A subject's index updated (after an extend)
    index,
    /// A subject's sessions read (list)
    list,
    /// A subject's sessions closed (close_sessions)
    close_subject,
}

impl Operation {
    /// Every operation, in declaration order (so `EVERY[op as usize] == op`).
    pub const EVERY: [Self; 10] = [
        Self::create,
        Self::exists,
        Self::exists_batch,
        Self::delete,
        Self::ping,
        Self::read,
        Self::extend,
        Self::index,
        Self::list,
        Self::close_subject,
    ];
}

/// Labels of a store operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// Which operation.
    pub operation: Operation,
}

/// Labels of a failed store operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreErrorLabels {
    /// Which operation.
    pub operation: Operation,
    /// `timeout` or `error`.
    pub kind: &'static str,
}

/// Labels of an HTTP response.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// The status code, e.g. `200` or `413`.
    pub code: u16,
}

/// Labels naming an endpoint.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointName {
    /// As in [`EndpointLabels::endpoint`].
    pub endpoint: &'static str,
}

/// Labels of a request to `/auth` or `/oauth2/*`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// `auth`, `oauth2_introspect` or `oauth2_revoke`.
    pub endpoint: &'static str,
    /// What was answered, e.g. `allowed`, `no_token`, `inactive`, `invalid_client`.
    pub outcome: &'static str,
}

/// Labels naming a caller (the API key's name; counted only when keys are configured).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallerLabels {
    /// Who called.
    pub caller: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s, doubling.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Every metric the service exports.
pub struct Metrics {
    registry: Registry,
    /// `sessiond_rpc_calls_total{method,outcome}`
    pub calls: Family<CallLabels, Counter>,
    /// `sessiond_rpc_call_duration_seconds{method}`
    pub call_duration: HistogramFamily<MethodLabels>,
    /// `sessiond_batch_size` (calls per batch request)
    pub batch_size: Histogram,
    /// `sessiond_store_coalesced_batch_size` (verify calls sharing one `MGET`)
    pub coalesced_batch_size: Histogram,
    /// `sessiond_store_operation_duration_seconds{operation}`
    pub store_duration: HistogramFamily<OperationLabels>,
    /// `sessiond_store_errors_total{operation,kind}`
    pub store_errors: Family<StoreErrorLabels, Counter>,
    /// `sessiond_store_up`: 1 when the last store operation succeeded.
    pub store_up: Gauge,
    /// `sessiond_http_requests_in_flight`
    pub in_flight: Gauge,
    /// `sessiond_http_connections_open`
    pub connections: Gauge,
    /// `sessiond_http_connections_refused_total` (over the connection limit)
    pub connections_refused: Counter,
    /// `sessiond_caller_requests_total{caller}`
    pub caller_requests: Family<CallerLabels, Counter>,
    /// `sessiond_unauthorized_requests_total`
    pub unauthorized: Counter,
    /// `sessiond_http_responses_total{code}`
    pub http_responses: Family<StatusLabels, Counter>,
    /// `sessiond_endpoint_requests_total{endpoint,outcome}`
    pub endpoint_requests: Family<EndpointLabels, Counter>,
    /// `sessiond_endpoint_request_duration_seconds{endpoint}`
    pub endpoint_duration: Family<EndpointName, Histogram, fn() -> Histogram>,
    /// Handles to the series every call touches, looked up once at start-up.
    hot: Hot,
}

/// The series of the common path, resolved once: `Family::get_or_create` takes a lock and
/// hashes the labels, which cost more than the observation itself.
struct Hot {
    /// Per method the service has: its name, its `outcome="result"` counter, its latency.
    calls: Vec<(&'static str, Counter, Histogram)>,
    /// Latency per store operation, indexed by `Operation as usize`.
    store: Vec<Histogram>,
    /// `sessiond_http_responses_total{code="200"}`
    ok: Counter,
}

impl Hot {
    fn resolve(
        calls: &Family<CallLabels, Counter>,
        call_duration: &HistogramFamily<MethodLabels>,
        store_duration: &HistogramFamily<OperationLabels>,
        http_responses: &Family<StatusLabels, Counter>,
    ) -> Self {
        let calls = crate::calls::methods::TABLE
            .iter()
            .map(|&(method, _)| {
                let result = CallLabels {
                    method,
                    outcome: "result",
                };
                (
                    method,
                    calls.get_or_create(&result).clone(),
                    call_duration
                        .get_or_create(&MethodLabels { method })
                        .clone(),
                )
            })
            .collect();
        let store = Operation::EVERY
            .into_iter()
            .map(|operation| {
                store_duration
                    .get_or_create(&OperationLabels { operation })
                    .clone()
            })
            .collect();
        let ok = http_responses
            .get_or_create(&StatusLabels { code: 200 })
            .clone();
        Self { calls, store, ok }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new("unknown")
    }
}

impl Metrics {
    /// A registry with every metric, and `sessiond_build_info` naming this build and `store`.
    pub fn new(store: &'static str) -> Self {
        let mut registry = Registry::with_prefix("sessiond");
        let calls = Family::default();
        let call_duration = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let store_duration = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let http_responses = Family::default();
        let metrics = Self {
            hot: Hot::resolve(&calls, &call_duration, &store_duration, &http_responses),
            calls,
            call_duration,
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            coalesced_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            store_duration,
            store_errors: Family::default(),
            store_up: Gauge::default(),
            in_flight: Gauge::default(),
            connections: Gauge::default(),
            connections_refused: Counter::default(),
            caller_requests: Family::default(),
            unauthorized: Counter::default(),
            http_responses,
            endpoint_requests: Family::default(),
            endpoint_duration: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            registry: Registry::default(),
        };
        registry.register(
            "build",
            "Version and git revision of this build, and the store in use",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION")),
                (
                    "revision",
                    option_env!("SESSIOND_GIT_REVISION").unwrap_or("unknown"),
                ),
                ("store", store),
            ]),
        );
        registry.register(
            "rpc_calls",
            "JSON-RPC calls answered, by method and outcome (result or error code)",
            metrics.calls.clone(),
        );
        registry.register_with_unit(
            "rpc_call_duration",
            "Time to answer one JSON-RPC call, by method",
            Unit::Seconds,
            metrics.call_duration.clone(),
        );
        registry.register(
            "batch_size",
            "Entries per JSON-RPC batch request",
            metrics.batch_size.clone(),
        );
        registry.register(
            "store_coalesced_batch_size",
            "Verify calls that shared one Redis MGET (calls arriving together on a worker)",
            metrics.coalesced_batch_size.clone(),
        );
        registry.register_with_unit(
            "store_operation_duration",
            "Time of one session store operation, by operation",
            Unit::Seconds,
            metrics.store_duration.clone(),
        );
        registry.register(
            "store_errors",
            "Session store operations that failed or timed out",
            metrics.store_errors.clone(),
        );
        registry.register(
            "store_up",
            "1 when the last session store operation succeeded, 0 when it failed",
            metrics.store_up.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being answered now",
            metrics.in_flight.clone(),
        );
        registry.register(
            "http_connections_open",
            "Client connections open now",
            metrics.connections.clone(),
        );
        registry.register(
            "http_connections_refused",
            "Connections closed at once because SESSIOND_MAX_CONNECTIONS were open",
            metrics.connections_refused.clone(),
        );
        registry.register(
            "caller_requests",
            "JSON-RPC HTTP requests by authenticated caller",
            metrics.caller_requests.clone(),
        );
        registry.register(
            "unauthorized_requests",
            "Requests refused for a missing or wrong API key (401; 403 on /auth)",
            metrics.unauthorized.clone(),
        );
        registry.register(
            "http_responses",
            "HTTP responses by status code (every path, refusals such as 404, 405, 408, 413 included)",
            metrics.http_responses.clone(),
        );
        registry.register(
            "endpoint_requests",
            "Requests to /auth and /oauth2/*, by endpoint and outcome",
            metrics.endpoint_requests.clone(),
        );
        registry.register_with_unit(
            "endpoint_request_duration",
            "Time to answer one request to /auth or /oauth2/*, by endpoint",
            Unit::Seconds,
            metrics.endpoint_duration.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Records one store operation's duration and outcome.
    pub fn store_operation(
        &self,
        operation: Operation,
        took: Duration,
        failure: Option<&'static str>,
    ) {
        match self.hot.store.get(operation as usize) {
            Some(histogram) => histogram.observe(took.as_secs_f64()),
            None => self
                .store_duration
                .get_or_create(&OperationLabels { operation })
                .observe(took.as_secs_f64()),
        }
        match failure {
            None => {
                self.store_up.set(1);
            }
            Some(kind) => {
                self.store_errors
                    .get_or_create(&StoreErrorLabels { operation, kind })
                    .inc();
                self.store_up.set(0);
            }
        }
    }

    /// Counts one HTTP response. The 200 series is resolved once; others are looked up.
    pub fn http_response(&self, status: hyper::StatusCode) {
        if status == hyper::StatusCode::OK {
            self.hot.ok.inc();
        } else {
            self.http_responses
                .get_or_create(&StatusLabels {
                    code: status.as_u16(),
                })
                .inc();
        }
    }

    /// Records one answered request to `/auth` or `/oauth2/*`.
    pub fn endpoint(&self, endpoint: &'static str, outcome: &'static str, took: Duration) {
        self.endpoint_requests
            .get_or_create(&EndpointLabels { endpoint, outcome })
            .inc();
        self.endpoint_duration
            .get_or_create(&EndpointName { endpoint })
            .observe(took.as_secs_f64());
    }

    /// Records one answered call.
    pub fn call(&self, method: &'static str, outcome: &'static str, took: Duration) {
        let hot = self.hot.calls.iter().find(|(name, ..)| *name == method);
        match hot {
            Some((_, result, _)) if outcome == "result" => {
                result.inc();
            }
            _ => {
                self.calls
                    .get_or_create(&CallLabels { method, outcome })
                    .inc();
            }
        }
        match hot {
            Some((.., duration)) => duration.observe(took.as_secs_f64()),
            None => self
                .call_duration
                .get_or_create(&MethodLabels { method })
                .observe(took.as_secs_f64()),
        }
    }
}

/// Keeps a gauge raised while alive.
pub struct GaugeGuard<'a>(&'a Gauge);

impl<'a> GaugeGuard<'a> {
    /// Raises `gauge` until the guard is dropped.
    pub fn new(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
