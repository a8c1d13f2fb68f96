//! Prometheus metrics for the node: one registry, rendered in text format at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LinkLabels {
    pub link: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub kind: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub trx_ingested: Counter,
    pub trx_included: Counter,
    pub blocks_produced: Counter,
    pub api_latency: Family<RouteLabels, Histogram>,
    pub stream_clients: Family<StreamLabels, Gauge>,
    pub api_connections: Gauge,
    pub api_connections_refused: Counter,
    pub link_outbox_depth: Family<LinkLabels, Gauge>,
    pub link_health: Family<LinkLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("rumgate");
        let trx_ingested = Counter::default();
        registry.register(
            "trx_ingested",
            "Trx accepted and durably stored as pending (API and peers)",
            trx_ingested.clone(),
        );
        let trx_included = Counter::default();
        registry.register(
            "trx_included",
            "Trx included in stored blocks",
            trx_included.clone(),
        );
        let blocks_produced = Counter::default();
        registry.register(
            "blocks_produced",
            "Blocks produced by this node",
            blocks_produced.clone(),
        );
        let api_latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            // 0.1 ms .. ~3.3 s
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        registry.register(
            "api_request_duration_seconds",
            "API request latency by route and status",
            api_latency.clone(),
        );
        let stream_clients = Family::<StreamLabels, Gauge>::default();
        registry.register(
            "stream_clients",
            "Connected live-stream clients (sse, ws)",
            stream_clients.clone(),
        );
        let api_connections = Gauge::default();
        registry.register(
            "api_connections",
            "Open HTTP connections to the API",
            api_connections.clone(),
        );
        let api_connections_refused = Counter::default();
        registry.register(
            "api_connections_refused",
            "API connections closed at once because api.max_connections were open",
            api_connections_refused.clone(),
        );
        let link_outbox_depth = Family::<LinkLabels, Gauge>::default();
        registry.register(
            "link_outbox_depth",
            "Items waiting for delivery per gateway link",
            link_outbox_depth.clone(),
        );
        let link_health = Family::<LinkLabels, Gauge>::default();
        registry.register(
            "link_health",
            "Gateway link health: 0 ok, 1 degraded, 2 failing",
            link_health.clone(),
        );
        Self {
            link_outbox_depth,
            link_health,
            registry,
            trx_ingested,
            trx_included,
            blocks_produced,
            api_latency,
            stream_clients,
            api_connections,
            api_connections_refused,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub fn link_gauges(&self, link: &str, depth: i64, health: i64) {
        let l = LinkLabels {
            link: link.to_string(),
        };
        self.link_outbox_depth.get_or_create(&l).set(depth);
        self.link_health.get_or_create(&l).set(health);
    }

    /// Counts a connected stream client until the guard drops.
    pub fn stream_client(&self, kind: &'static str) -> StreamGuard {
        let g = self
            .stream_clients
            .get_or_create(&StreamLabels { kind })
            .clone();
        g.inc();
        StreamGuard(g)
    }
}

pub struct StreamGuard(Gauge);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
