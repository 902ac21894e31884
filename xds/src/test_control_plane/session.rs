//! One ADS stream of the test control plane, SotW or delta.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{Encoded, ReceivedRequest, Recorded, Shared};
use crate::config::ResourceKind;

type Outbound<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Responses a session may queue before it waits for the client to read.
const QUEUE: usize = 16;

pub(super) struct Service {
    pub(super) shared: Arc<Shared>,
}

#[tonic::async_trait]
impl AggregatedDiscoveryService for Service {
    type StreamAggregatedResourcesStream = Outbound<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = Outbound<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(sotw_session(self.shared.clone(), request.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(delta_session(self.shared.clone(), request.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// What a SotW stream last sent for one type.
#[derive(Default)]
struct SotwType {
    names: BTreeSet<String>,
    sent: Option<(String, BTreeSet<String>)>,
}

async fn sotw_session(
    shared: Arc<Shared>,
    mut inbound: Streaming<DiscoveryRequest>,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
) {
    let stream = shared.streams.fetch_add(1, Ordering::Relaxed) + 1;
    let mut kill = shared.kill.subscribe();
    let mut generation = shared.snapshot_generation.subscribe();
    let mut node_id = String::new();
    let mut types: HashMap<String, SotwType> = HashMap::new();
    loop {
        let mut pending = Vec::new();
        tokio::select! {
            message = inbound.message() => {
                let Ok(Some(request)) = message else { return };
                if let Some(node) = &request.node {
                    node_id.clone_from(&node.id);
                }
                shared.record(Recorded {
                    stream,
                    node_id: node_id.clone(),
                    request: ReceivedRequest::Sotw(request.clone()),
                });
                let entry = types.entry(request.type_url.clone()).or_default();
                entry.names = request.resource_names.iter().cloned().collect();
                // A NACK keeps what was sent; the next snapshot change sends again.
                if request.error_detail.is_none() {
                    pending.push(request.type_url);
                }
            }
            _ = generation.changed() => pending.extend(types.keys().cloned()),
            _ = kill.changed() => return,
        }
        let Some(snapshot) = shared.snapshot(&node_id) else {
            continue;
        };
        // ADS order (clusters, endpoints, listeners, routes), as go-control-plane sends it:
        // Envoy warms a changed cluster with the endpoints that follow it.
        pending.sort_by_key(|url| {
            ResourceKind::ALL
                .iter()
                .position(|kind| kind.type_url() == url)
        });
        pending.dedup();
        for type_url in pending {
            let Some(state) = types.get_mut(&type_url) else {
                continue;
            };
            let Some(kind) = ResourceKind::from_type_url(&type_url) else {
                continue;
            };
            let current = (snapshot.version.clone(), state.names.clone());
            if state.sent.as_ref() == Some(&current) {
                continue;
            }
            let wildcard = kind.is_wildcard() && state.names.is_empty();
            let resources = select(&snapshot, kind, wildcard, &state.names)
                .map(|(_, any)| any.clone())
                .collect();
            state.sent = Some(current);
            let response = DiscoveryResponse {
                version_info: snapshot.version.clone(),
                resources,
                type_url,
                nonce: shared.next_nonce(),
                ..Default::default()
            };
            if tx.send(Ok(response)).await.is_err() {
                return;
            }
        }
    }
}

fn select<'a>(
    snapshot: &'a Encoded,
    kind: ResourceKind,
    wildcard: bool,
    names: &'a BTreeSet<String>,
) -> impl Iterator<Item = (&'a String, &'a envoy_types::pb::google::protobuf::Any)> {
    snapshot
        .resources
        .get(&kind)
        .into_iter()
        .flatten()
        .filter(move |(name, _)| wildcard || names.contains(*name))
}

/// What a delta stream knows about one type.
#[derive(Default)]
struct DeltaType {
    wildcard: bool,
    names: BTreeSet<String>,
    /// Versions the client holds.
    known: BTreeMap<String, String>,
    answered: bool,
}

fn version_of(any: &envoy_types::pb::google::protobuf::Any) -> String {
    let mut hasher = DefaultHasher::new();
    any.value.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

async fn delta_session(
    shared: Arc<Shared>,
    mut inbound: Streaming<DeltaDiscoveryRequest>,
    tx: mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>,
) {
    let stream = shared.streams.fetch_add(1, Ordering::Relaxed) + 1;
    let mut kill = shared.kill.subscribe();
    let mut generation = shared.snapshot_generation.subscribe();
    let mut node_id = String::new();
    let mut types: HashMap<String, DeltaType> = HashMap::new();
    loop {
        let mut pending = Vec::new();
        tokio::select! {
            message = inbound.message() => {
                let Ok(Some(request)) = message else { return };
                if let Some(node) = &request.node {
                    node_id.clone_from(&node.id);
                }
                shared.record(Recorded {
                    stream,
                    node_id: node_id.clone(),
                    request: ReceivedRequest::Delta(request.clone()),
                });
                let first = !types.contains_key(&request.type_url);
                let kind = ResourceKind::from_type_url(&request.type_url);
                let state = types.entry(request.type_url.clone()).or_default();
                if first {
                    state.known = request.initial_resource_versions.clone().into_iter().collect();
                    state.wildcard = kind.is_some_and(ResourceKind::is_wildcard)
                        && request.resource_names_subscribe.is_empty();
                }
                for name in &request.resource_names_subscribe {
                    if name == "*" {
                        state.wildcard = true;
                    } else {
                        state.names.insert(name.clone());
                    }
                }
                for name in &request.resource_names_unsubscribe {
                    if name == "*" {
                        state.wildcard = false;
                    } else {
                        state.names.remove(name);
                        state.known.remove(name);
                    }
                }
                let subscription_change = !request.resource_names_subscribe.is_empty()
                    || !request.resource_names_unsubscribe.is_empty();
                if first || (subscription_change && request.error_detail.is_none()) {
                    pending.push(request.type_url);
                }
            }
            _ = generation.changed() => pending.extend(types.keys().cloned()),
            _ = kill.changed() => return,
        }
        let Some(snapshot) = shared.snapshot(&node_id) else {
            continue;
        };
        // ADS order (clusters, endpoints, listeners, routes), as go-control-plane sends it:
        // Envoy warms a changed cluster with the endpoints that follow it.
        pending.sort_by_key(|url| {
            ResourceKind::ALL
                .iter()
                .position(|kind| kind.type_url() == url)
        });
        pending.dedup();
        for type_url in pending {
            let Some(state) = types.get_mut(&type_url) else {
                continue;
            };
            let Some(kind) = ResourceKind::from_type_url(&type_url) else {
                continue;
            };
            let wanted: BTreeMap<&String, &envoy_types::pb::google::protobuf::Any> =
                select(&snapshot, kind, state.wildcard, &state.names).collect();
            let resources: Vec<Resource> = wanted
                .iter()
                .filter(|(name, any)| state.known.get(**name) != Some(&version_of(any)))
                .map(|(name, any)| Resource {
                    name: (*name).clone(),
                    version: version_of(any),
                    resource: Some((*any).clone()),
                    ..Default::default()
                })
                .collect();
            let removed: Vec<String> = state
                .known
                .keys()
                .filter(|name| !wanted.contains_key(name))
                .cloned()
                .collect();
            if resources.is_empty() && removed.is_empty() && state.answered {
                continue;
            }
            state.answered = true;
            for r in &resources {
                state.known.insert(r.name.clone(), r.version.clone());
            }
            for name in &removed {
                state.known.remove(name);
            }
            let response = DeltaDiscoveryResponse {
                system_version_info: snapshot.version.clone(),
                resources,
                type_url,
                removed_resources: removed,
                nonce: shared.next_nonce(),
                ..Default::default()
            };
            if tx.send(Ok(response)).await.is_err() {
                return;
            }
        }
    }
}
