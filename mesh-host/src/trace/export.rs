//! Export off the request path: a finished span goes into its exporter's bounded queue (a
//! full queue drops it and counts it, never blocking the request); one task per collector
//! drains the queue in batches, when a batch is full or at a fixed interval, and sends each
//! batch as one OTLP `TraceService/Export` call through a [`CollectorClient`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use mesh_xds::config::{GrpcServiceTarget, OpenTelemetry};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::Notify;

use super::otlp;
use crate::shared::{SpanRecord, SpanSink};

/// Most spans in one export call.
const MAX_BATCH: usize = 512;

/// How often the queue is sent when no full batch makes it go earlier.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Why an export call failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The host is shutting down.
    #[error("the host is shutting down")]
    Closed,
    /// The collector's `:authority` is not valid.
    #[error("authority {0:?} is not valid")]
    Authority(String),
    /// The call failed or the collector refused it.
    #[error("{0}")]
    Call(String),
}

/// Sends one OTLP export request to a collector: the host's upstream client, through the
/// collector's cluster.
pub trait CollectorClient: Send + Sync + 'static {
    /// Exports `request` to `collector`.
    fn export(
        &self,
        collector: &GrpcServiceTarget,
        request: ExportTraceServiceRequest,
    ) -> BoxFuture<'static, Result<(), ExportError>>;
}

/// The exporters of the process, one per collector and service name, kept across
/// configuration updates so queued spans survive them.
pub struct SpanExporters {
    client: Arc<dyn CollectorClient>,
    dropped: Counter,
    exporters: Mutex<HashMap<(GrpcServiceTarget, String), Arc<Exporter>>>,
}

impl SpanExporters {
    /// Exporters that send through `client`; spans dropped because a queue was full are
    /// counted in `dropped`.
    pub fn new(client: Arc<dyn CollectorClient>, dropped: Counter) -> SpanExporters {
        SpanExporters {
            client,
            dropped,
            exporters: Mutex::new(HashMap::new()),
        }
    }

    /// The exporter of `provider`, started on first use.
    pub fn exporter(&self, provider: &OpenTelemetry) -> Arc<dyn SpanSink> {
        let key = (provider.collector.clone(), provider.service_name.clone());
        let mut exporters = self
            .exporters
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let exporter = exporters.entry(key).or_insert_with(|| {
            Exporter::start(provider.clone(), self.client.clone(), self.dropped.clone())
        });
        exporter.clone()
    }
}

/// One collector's queue. Recording a span wakes nobody: the drain task comes for the queue
/// every [`FLUSH_INTERVAL`], or early when a full batch is waiting. (A wake-up per span, at
/// 1 % sampling of a busy listener hundreds a second, kept an idle runtime worker coming
/// back for work.)
pub(super) struct Exporter {
    queue: Mutex<Vec<SpanRecord>>,
    capacity: usize,
    batch_ready: Arc<Notify>,
    /// Whether a drain task runs; without one every span is dropped and counted.
    drained: bool,
    dropped: Counter,
}

impl Exporter {
    /// A queue of `provider.max_cache_size` spans and the task that drains it. Without a
    /// Tokio runtime there is no task, and every span is dropped and counted.
    fn start(
        provider: OpenTelemetry,
        client: Arc<dyn CollectorClient>,
        dropped: Counter,
    ) -> Arc<Exporter> {
        let capacity = usize::try_from(provider.max_cache_size)
            .unwrap_or(usize::MAX)
            .max(1);
        let tokio = tokio::runtime::Handle::try_current().ok();
        let exporter = Arc::new(Exporter {
            queue: Mutex::new(Vec::new()),
            capacity,
            batch_ready: Arc::new(Notify::new()),
            drained: tokio.is_some(),
            dropped,
        });
        if let Some(tokio) = tokio {
            tokio.spawn(drain(
                Arc::downgrade(&exporter),
                exporter.batch_ready.clone(),
                provider,
                client,
            ));
        }
        exporter
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SpanRecord>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The oldest spans, at most a batch of them, and whether a full batch is still waiting.
    fn take_batch(&self) -> (Vec<SpanRecord>, bool) {
        let mut queue = self.lock();
        if queue.len() <= MAX_BATCH {
            return (std::mem::take(&mut *queue), false);
        }
        let batch = queue.drain(..MAX_BATCH).collect();
        (batch, queue.len() >= MAX_BATCH)
    }
}

impl SpanSink for Exporter {
    fn record(&self, span: SpanRecord) {
        let mut queue = self.lock();
        if !self.drained || queue.len() >= self.capacity {
            drop(queue);
            self.dropped.inc();
            return;
        }
        queue.push(span);
        let batch_ready = queue.len() == MAX_BATCH;
        drop(queue);
        if batch_ready {
            self.batch_ready.notify_one();
        }
    }
}

/// Sends the queue's spans in batches, each [`FLUSH_INTERVAL`] or as soon as a full batch
/// waits, until the exporter is gone.
async fn drain(
    exporter: Weak<Exporter>,
    batch_ready: Arc<Notify>,
    provider: OpenTelemetry,
    client: Arc<dyn CollectorClient>,
) {
    let mut more_waiting = false;
    loop {
        if !more_waiting {
            tokio::select! {
                () = batch_ready.notified() => {}
                () = tokio::time::sleep(FLUSH_INTERVAL) => {}
            }
        }
        let Some(queue) = exporter.upgrade() else {
            return;
        };
        let (batch, more) = queue.take_batch();
        drop(queue);
        more_waiting = more;
        if batch.is_empty() {
            continue;
        }
        let count = batch.len();
        let request = otlp::export_request(&provider.service_name, batch.into_iter());
        if let Err(error) = client.export(&provider.collector, request).await {
            tracing::warn!(
                cluster = %provider.collector.cluster,
                spans = count,
                "trace export failed, spans lost: {error}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::{SpanKind, TraceContext};

    fn provider(max_cache_size: u32) -> OpenTelemetry {
        OpenTelemetry {
            collector: GrpcServiceTarget {
                cluster: "otel".into(),
                authority: "otel".into(),
                timeout: None,
                initial_metadata: Vec::new(),
            },
            service_name: "svc".into(),
            max_cache_size,
        }
    }

    fn span(name: &str) -> SpanRecord {
        let now = std::time::SystemTime::now();
        SpanRecord {
            context: TraceContext::root(true),
            parent_span_id: None,
            name: name.into(),
            kind: SpanKind::Server,
            start: now,
            end: now,
            attributes: Vec::new(),
            error: false,
        }
    }

    /// A collector that records what it is sent, and can be held shut.
    struct Recording {
        batches: Mutex<Vec<ExportTraceServiceRequest>>,
        open: tokio::sync::Semaphore,
    }

    impl CollectorClient for Arc<Recording> {
        fn export(
            &self,
            _: &GrpcServiceTarget,
            request: ExportTraceServiceRequest,
        ) -> BoxFuture<'static, Result<(), ExportError>> {
            let this = self.clone();
            Box::pin(async move {
                let _permit = this.open.acquire().await.map_err(|_| ExportError::Closed)?;
                this.batches
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(request);
                Ok(())
            })
        }
    }

    fn names(request: &ExportTraceServiceRequest) -> Vec<String> {
        request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
            .map(|s| s.name.clone())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn spans_are_sent_in_one_batch_after_the_flush_interval() {
        let recording = Arc::new(Recording {
            batches: Mutex::new(Vec::new()),
            open: tokio::sync::Semaphore::new(10),
        });
        let dropped = Counter::default();
        let exporters = SpanExporters::new(Arc::new(recording.clone()), dropped.clone());
        let sink = exporters.exporter(&provider(16));
        sink.record(span("a"));
        sink.record(span("b"));
        tokio::time::sleep(FLUSH_INTERVAL * 2).await;
        let batches = recording.batches.lock().expect("lock").clone();
        assert_eq!(batches.len(), 1);
        assert_eq!(names(&batches[0]), ["a", "b"]);
        assert_eq!(dropped.get(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_drops_spans_and_counts_them_without_blocking() {
        let recording = Arc::new(Recording {
            batches: Mutex::new(Vec::new()),
            // The collector never answers: the drain task holds one batch, the queue fills.
            open: tokio::sync::Semaphore::new(0),
        });
        let dropped = Counter::default();
        let exporters = SpanExporters::new(Arc::new(recording.clone()), dropped.clone());
        let sink = exporters.exporter(&provider(2));
        sink.record(span("taken by the drain task"));
        tokio::time::sleep(FLUSH_INTERVAL * 2).await;
        for i in 0..5 {
            sink.record(span(&format!("queued {i}")));
        }
        assert_eq!(dropped.get(), 3, "two fit in the queue, three are dropped");
        assert!(recording.batches.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn one_exporter_serves_every_tracer_of_a_collector() {
        let recording = Arc::new(Recording {
            batches: Mutex::new(Vec::new()),
            open: tokio::sync::Semaphore::new(0),
        });
        let exporters = SpanExporters::new(Arc::new(recording), Counter::default());
        let a = exporters.exporter(&provider(4));
        let b = exporters.exporter(&provider(4));
        assert!(Arc::ptr_eq(&a, &b));
    }
}
