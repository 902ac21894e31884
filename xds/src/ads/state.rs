//! The sans-IO ADS protocol state machine: responses in, requests and config changes out.
//!
//! It owns no socket and no clock: the caller passes `now`, sends the returned requests in
//! order and publishes [`AdsState::resources`] when a step reports a change. Protocol tests
//! drive it message by message.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::{
    cluster::v3 as cds, endpoint::v3 as eds, listener::v3 as lds, route::v3 as rds,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as sds;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;
use prost::Message;

use super::cache::ResourceCache;
use crate::bootstrap::{AdsApi, NodeIdentity};
use crate::config::{
    Cluster, Listener, LoadAssignment, MeshConfig, ResourceKind, RouteConfig, Secret, SecretRef,
    SecretSource,
};
use crate::dump::{AcceptedResource, AcceptedResources};
use crate::store::DynamicResources;
use crate::translate::{FieldError, Problem, TranslateError, json_to_struct};

/// `google.rpc.Code.INVALID_ARGUMENT`, the code of a NACK's `error_detail`.
const INVALID_ARGUMENT: i32 = 3;

/// A message from the control plane.
#[derive(Clone, Debug)]
pub enum Incoming {
    /// State of the world.
    Sotw(DiscoveryResponse),
    /// Incremental.
    Delta(DeltaDiscoveryResponse),
}

/// A message to the control plane.
#[derive(Clone, Debug, PartialEq)]
pub enum Outgoing {
    /// State of the world.
    Sotw(DiscoveryRequest),
    /// Incremental.
    Delta(DeltaDiscoveryRequest),
}

/// What one input produced.
#[derive(Debug, Default)]
pub struct Step {
    /// Requests to send, in order.
    pub requests: Vec<Outgoing>,
    /// Whether [`AdsState::resources`] changed.
    pub changed: bool,
    /// The kind of the response and whether it was accepted (ACK) or rejected (NACK);
    /// `None` for a type the client does not know.
    pub update: Option<(ResourceKind, bool)>,
}

/// An accepted resource as it arrived, for config dumps.
#[derive(Debug)]
struct Kept {
    resource: Arc<Any>,
    version: String,
    at: Instant,
}

#[derive(Debug, Default)]
struct KindState {
    /// Names subscribed to (RDS, EDS, SDS); wildcard kinds keep this empty.
    subscribed: BTreeSet<String>,
    /// Whether a request of this kind went out on the current stream.
    requested: bool,
    /// SotW: the last accepted `version_info` (sent again after a reconnect and in NACKs).
    version_info: String,
    /// SotW: the nonce of the last response of this kind on the current stream.
    nonce: String,
}

/// Protocol state of one ADS client across streams.
#[derive(Debug)]
pub struct AdsState {
    api: AdsApi,
    node: core::Node,
    kinds: BTreeMap<ResourceKind, KindState>,
    cache: ResourceCache,
    /// Version info of the last accepted response per kind, for config dumps.
    accepted_versions: BTreeMap<ResourceKind, String>,
    /// Each held resource as the control plane sent it, for config dumps.
    kept: BTreeMap<ResourceKind, BTreeMap<String, Kept>>,
    /// Whether the node identity went out on the current stream.
    node_sent: bool,
    /// The bootstrap's static secrets, which listeners and clusters may name without an
    /// `sds_config`.
    static_secrets: BTreeSet<String>,
}

/// The order in which Envoy subscribes: clusters, endpoints and secrets before listeners
/// and routes.
const ORDER: [ResourceKind; ResourceKind::ALL.len()] = ResourceKind::ALL;

impl AdsState {
    /// A state for `api`, identifying as `node`; listeners and clusters whose RDS/EDS
    /// dependencies are missing warm for at most `warming_timeout`.
    pub fn new(api: AdsApi, node: &NodeIdentity, warming_timeout: Duration) -> Self {
        let node = core::Node {
            id: node.id.clone(),
            cluster: node.cluster.clone(),
            metadata: (!node.metadata.is_empty()).then(|| json_to_struct(&node.metadata)),
            user_agent_name: node.user_agent_name.clone(),
            ..Default::default()
        };
        Self {
            api,
            node,
            kinds: ORDER
                .into_iter()
                .map(|k| (k, KindState::default()))
                .collect(),
            cache: ResourceCache::new(warming_timeout),
            accepted_versions: BTreeMap::new(),
            kept: BTreeMap::new(),
            node_sent: false,
            static_secrets: BTreeSet::new(),
        }
    }

    /// The names of the bootstrap's static secrets: a resource naming another static
    /// secret is refused, as Envoy refuses it.
    pub(crate) fn set_static_secrets(&mut self, names: BTreeSet<String>) {
        self.static_secrets = names;
    }

    /// The error for a listener or cluster that names a static secret the bootstrap lacks.
    fn unknown_static_secret<'a>(
        &self,
        kind: ResourceKind,
        name: &str,
        mut refs: impl Iterator<Item = &'a SecretRef>,
    ) -> Option<(Option<String>, String)> {
        let missing = refs
            .find(|r| r.source == SecretSource::Static && !self.static_secrets.contains(&r.name))?;
        let error = TranslateError::new(
            kind,
            name,
            FieldError {
                field: missing.field.clone(),
                problem: Problem::Invalid(format!(
                    "no static secret \"{}\" (without sds_config the secret must be in the bootstrap)",
                    missing.name
                )),
            },
        );
        Some((Some(name.to_owned()), error.to_string()))
    }

    /// Subscribes to the route configurations, load assignments and ADS secrets that static
    /// (bootstrap) listeners and clusters reference, for as long as this state lives.
    pub fn add_static_references(&mut self, base: &MeshConfig) {
        self.cache.add_static_references(base);
    }

    /// The initial requests of a new stream: LDS and CDS as wildcards, RDS, EDS and SDS for
    /// the names still referenced (resubscription after a reconnect).
    pub fn start_stream(&mut self) -> Vec<Outgoing> {
        self.node_sent = false;
        let rds = self.cache.referenced_route_configs();
        let eds = self.cache.referenced_load_assignments();
        let secrets = self.cache.referenced_secrets();
        let mut requests = Vec::new();
        for kind in ORDER {
            let state = self.kinds.entry(kind).or_default();
            state.nonce.clear();
            state.requested = false;
            match kind {
                ResourceKind::RouteConfig => state.subscribed = rds.clone(),
                ResourceKind::LoadAssignment => state.subscribed = eds.clone(),
                ResourceKind::Secret => state.subscribed = secrets.clone(),
                _ => {}
            }
            if !kind.is_wildcard() && state.subscribed.is_empty() {
                continue;
            }
            state.requested = true;
            let request = match self.api {
                AdsApi::StateOfTheWorld => Outgoing::Sotw(DiscoveryRequest {
                    type_url: kind.type_url().to_owned(),
                    version_info: state.version_info.clone(),
                    resource_names: state.subscribed.iter().cloned().collect(),
                    ..Default::default()
                }),
                AdsApi::Delta => Outgoing::Delta(DeltaDiscoveryRequest {
                    type_url: kind.type_url().to_owned(),
                    resource_names_subscribe: state.subscribed.iter().cloned().collect(),
                    initial_resource_versions: self.cache.versions(kind).into_iter().collect(),
                    ..Default::default()
                }),
            };
            requests.push(request);
        }
        for request in &mut requests {
            self.stamp_node(request);
        }
        requests
    }

    /// Handles one response.
    pub fn handle(&mut self, incoming: Incoming, now: Instant) -> Step {
        let generation = self.cache.generation();
        let mut requests = match incoming {
            Incoming::Sotw(response) => self.handle_sotw(response, now),
            Incoming::Delta(response) => self.handle_delta(response, now),
        };
        self.cache.promote(now);
        requests.extend(self.sync_subscriptions());
        self.forget_released();
        let update = requests.first().and_then(|request| {
            let (type_url, nacked) = match request {
                Outgoing::Sotw(r) => (&r.type_url, r.error_detail.is_some()),
                Outgoing::Delta(r) => (&r.type_url, r.error_detail.is_some()),
            };
            ResourceKind::from_type_url(type_url).map(|kind| (kind, !nacked))
        });
        for request in &mut requests {
            self.stamp_node(request);
        }
        Step {
            requests,
            changed: self.cache.generation() != generation,
            update,
        }
    }

    /// Every held resource as the control plane sent it, with its version, when it was
    /// accepted and whether it is still warming.
    pub fn accepted_resources(&self) -> AcceptedResources {
        let now = Instant::now();
        let wall = SystemTime::now();
        let active = self.cache.resources();
        let is_active = |kind: ResourceKind, name: &str| match kind {
            ResourceKind::Listener => active.listeners.contains_key(name),
            ResourceKind::Cluster => active.clusters.contains_key(name),
            ResourceKind::RouteConfig | ResourceKind::LoadAssignment | ResourceKind::Secret => true,
        };
        let kinds = self
            .kept
            .iter()
            .map(|(kind, held)| {
                let resources = held
                    .iter()
                    .map(|(name, kept)| AcceptedResource {
                        name: name.clone(),
                        resource: kept.resource.clone(),
                        version: kept.version.clone(),
                        last_updated: wall
                            .checked_sub(now.saturating_duration_since(kept.at))
                            .unwrap_or(wall),
                        warming: !is_active(*kind, name),
                    })
                    .collect();
                (*kind, resources)
            })
            .collect();
        AcceptedResources {
            kinds,
            versions: self.accepted_versions.clone(),
        }
    }

    /// Drops the kept copies of resources the cache no longer holds (deleted, unsubscribed).
    fn forget_released(&mut self) {
        for (kind, held) in &mut self.kept {
            let names = self.cache.names(*kind);
            held.retain(|name, _| names.contains(name));
        }
    }

    fn keep(
        &mut self,
        kind: ResourceKind,
        name: &str,
        resource: &Arc<Any>,
        version: &str,
        now: Instant,
    ) {
        self.kept.entry(kind).or_default().insert(
            name.to_owned(),
            Kept {
                resource: resource.clone(),
                version: version.to_owned(),
                at: now,
            },
        );
    }

    /// Promotes listeners and clusters whose warming timeout passed; returns whether
    /// [`AdsState::resources`] changed.
    pub fn on_timer(&mut self, now: Instant) -> bool {
        let generation = self.cache.generation();
        self.cache.promote(now);
        self.cache.generation() != generation
    }

    /// When [`AdsState::on_timer`] must next run, if anything is warming.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.cache.next_deadline()
    }

    /// The resources in service.
    pub fn resources(&self) -> DynamicResources {
        DynamicResources {
            resource_versions: self.accepted_versions.clone(),
            ..self.cache.resources()
        }
    }

    fn stamp_node(&mut self, request: &mut Outgoing) {
        if self.node_sent {
            return;
        }
        self.node_sent = true;
        match request {
            Outgoing::Sotw(r) => r.node = Some(self.node.clone()),
            Outgoing::Delta(r) => r.node = Some(self.node.clone()),
        }
    }

    fn handle_sotw(&mut self, response: DiscoveryResponse, now: Instant) -> Vec<Outgoing> {
        let Some(kind) = ResourceKind::from_type_url(&response.type_url) else {
            return vec![Outgoing::Sotw(DiscoveryRequest {
                type_url: response.type_url.clone(),
                response_nonce: response.nonce,
                error_detail: Some(unknown_type(&response.type_url)),
                ..Default::default()
            })];
        };
        let mut errors = Vec::new();
        let mut seen = BTreeSet::new();
        let mut undecodable = false;
        for (index, any) in response.resources.into_iter().enumerate() {
            match self.apply(kind, any, &response.version_info, now) {
                Ok(name) | Err((Some(name), _)) if !seen.insert(name.clone()) => {
                    errors.push(format!(
                        "{kind} \"{name}\": appears more than once in the response"
                    ));
                }
                Ok(_) => {}
                Err((name, error)) => {
                    undecodable |= name.is_none();
                    errors.push(match name {
                        Some(_) => error,
                        None => format!("resources[{index}]: {error}"),
                    });
                }
            }
        }
        // LDS and CDS responses carry the whole set: a missing name was deleted. RDS and EDS
        // responses may omit names, which are then kept. When a resource could not be
        // decoded its name is unknown, so nothing is deleted rather than the wrong thing.
        if kind.is_wildcard() && !undecodable {
            for name in self.cache.names(kind).difference(&seen) {
                self.cache.remove(kind, name);
            }
        }
        let state = self.kinds.entry(kind).or_default();
        state.nonce = response.nonce.clone();
        let error_detail = nack_status(&errors);
        if error_detail.is_none() {
            state.version_info = response.version_info.clone();
            self.accepted_versions.insert(kind, response.version_info);
        }
        vec![Outgoing::Sotw(DiscoveryRequest {
            type_url: kind.type_url().to_owned(),
            version_info: state.version_info.clone(),
            resource_names: state.subscribed.iter().cloned().collect(),
            response_nonce: response.nonce,
            error_detail,
            ..Default::default()
        })]
    }

    fn handle_delta(&mut self, response: DeltaDiscoveryResponse, now: Instant) -> Vec<Outgoing> {
        let Some(kind) = ResourceKind::from_type_url(&response.type_url) else {
            return vec![Outgoing::Delta(DeltaDiscoveryRequest {
                type_url: response.type_url.clone(),
                response_nonce: response.nonce,
                error_detail: Some(unknown_type(&response.type_url)),
                ..Default::default()
            })];
        };
        let mut errors = Vec::new();
        for resource in response.resources {
            let Some(any) = resource.resource else {
                // A named resource without a body does not exist on the server.
                self.cache.remove(kind, &resource.name);
                continue;
            };
            match self.apply(kind, any, &resource.version, now) {
                Ok(name) if name != resource.name => errors.push(format!(
                    "{kind} \"{}\": the resource is named \"{name}\"",
                    resource.name
                )),
                Ok(_) => {}
                Err((_, error)) => errors.push(error),
            }
        }
        for name in &response.removed_resources {
            // A secret is only dropped when nothing references it any more; a server that
            // removes one still in use is ignored, as Envoy ignores it.
            if kind == ResourceKind::Secret {
                tracing::debug!(name, "ignoring the removal of a secret still in use");
                continue;
            }
            self.cache.remove(kind, name);
        }
        let error_detail = nack_status(&errors);
        if error_detail.is_none() {
            let version = if response.system_version_info.is_empty() {
                response.nonce.clone()
            } else {
                response.system_version_info
            };
            self.accepted_versions.insert(kind, version);
        }
        vec![Outgoing::Delta(DeltaDiscoveryRequest {
            type_url: kind.type_url().to_owned(),
            response_nonce: response.nonce,
            error_detail,
            ..Default::default()
        })]
    }

    /// Decodes, translates and caches one resource; returns its name, or the name (when
    /// decodable) and the reason it was rejected.
    fn apply(
        &mut self,
        kind: ResourceKind,
        any: Any,
        version: &str,
        now: Instant,
    ) -> Result<String, (Option<String>, String)> {
        if any.type_url != kind.type_url() {
            return Err((None, format!("type {} in a {kind} response", any.type_url)));
        }
        let any = Arc::new(any);
        let bytes = any.value.as_slice();
        let decode_error = |e: prost::DecodeError| (None, format!("cannot decode: {e}"));
        let rejected = |e: TranslateError| (Some(e.name.clone()), e.to_string());
        match kind {
            ResourceKind::Listener => {
                let proto = lds::Listener::decode(bytes).map_err(decode_error)?;
                let listener = Listener::try_from(proto).map_err(rejected)?;
                let name = listener.name.clone();
                if let Some(error) = self.unknown_static_secret(kind, &name, listener.secret_refs())
                {
                    return Err(error);
                }
                self.cache.upsert_listener(listener, version, now);
                self.keep(kind, &name, &any, version, now);
                Ok(name)
            }
            ResourceKind::Cluster => {
                let proto = cds::Cluster::decode(bytes).map_err(decode_error)?;
                let cluster = Cluster::try_from(proto).map_err(rejected)?;
                let name = cluster.name.clone();
                if let Some(error) = self.unknown_static_secret(kind, &name, cluster.secret_refs())
                {
                    return Err(error);
                }
                self.cache.upsert_cluster(cluster, version, now);
                self.keep(kind, &name, &any, version, now);
                Ok(name)
            }
            ResourceKind::RouteConfig => {
                let proto = rds::RouteConfiguration::decode(bytes).map_err(decode_error)?;
                if !self.is_subscribed(kind, &proto.name) {
                    return Ok(proto.name);
                }
                let rc = RouteConfig::try_from(proto).map_err(rejected)?;
                let name = rc.name.clone();
                self.cache.upsert_route_config(rc, version);
                self.keep(kind, &name, &any, version, now);
                Ok(name)
            }
            ResourceKind::LoadAssignment => {
                let proto = eds::ClusterLoadAssignment::decode(bytes).map_err(decode_error)?;
                if !proto.cluster_name.is_empty() && !self.is_subscribed(kind, &proto.cluster_name)
                {
                    return Ok(proto.cluster_name);
                }
                let la = LoadAssignment::try_from(proto).map_err(rejected)?;
                let name = la.cluster_name.clone();
                if name.is_empty() {
                    let error = TranslateError::new(
                        kind,
                        "",
                        FieldError {
                            field: "cluster_name".into(),
                            problem: Problem::Missing,
                        },
                    );
                    return Err((None, error.to_string()));
                }
                self.cache.upsert_load_assignment(name.clone(), la, version);
                self.keep(kind, &name, &any, version, now);
                Ok(name)
            }
            ResourceKind::Secret => {
                let proto = sds::Secret::decode(bytes).map_err(decode_error)?;
                if !self.is_subscribed(kind, &proto.name) {
                    return Ok(proto.name);
                }
                let secret = Secret::try_from(proto).map_err(rejected)?;
                let name = secret.name.clone();
                if let Some(error) = self.misused(&secret) {
                    return Err((Some(name), error));
                }
                self.cache.upsert_secret(secret, version);
                self.keep(kind, &name, &any, version, now);
                Ok(name)
            }
        }
    }

    /// Why `secret` cannot serve a listener or cluster that references it (a certificate
    /// where a validation context is expected, or the other way round), if it cannot.
    fn misused(&self, secret: &Secret) -> Option<String> {
        let found = secret.material.field();
        self.cache
            .secret_references()
            .into_iter()
            .find(|(_, _, r)| r.name == secret.name && r.wanted != found)
            .map(|(kind, name, r)| {
                let error = TranslateError::new(
                    ResourceKind::Secret,
                    &secret.name,
                    FieldError {
                        field: found.to_owned(),
                        problem: Problem::Invalid(format!(
                            "{kind} \"{name}\" needs a {} at {}",
                            r.wanted, r.field
                        )),
                    },
                );
                error.to_string()
            })
    }

    /// Whether a named (RDS, EDS) resource was asked for. Servers may send more than asked;
    /// like Envoy, the client ignores the rest, which also bounds what it holds.
    fn is_subscribed(&self, kind: ResourceKind, name: &str) -> bool {
        self.kinds
            .get(&kind)
            .is_some_and(|k| k.subscribed.contains(name))
    }

    /// Follows the RDS, EDS and SDS names that listeners and clusters reference, each change
    /// in a request of its own (never inside an ACK or NACK).
    fn sync_subscriptions(&mut self) -> Vec<Outgoing> {
        let mut requests = Vec::new();
        for (kind, wanted) in [
            (
                ResourceKind::LoadAssignment,
                self.cache.referenced_load_assignments(),
            ),
            (ResourceKind::Secret, self.cache.referenced_secrets()),
            (
                ResourceKind::RouteConfig,
                self.cache.referenced_route_configs(),
            ),
        ] {
            let state = self.kinds.entry(kind).or_default();
            if state.subscribed == wanted {
                continue;
            }
            let added: Vec<String> = wanted.difference(&state.subscribed).cloned().collect();
            let removed: Vec<String> = state.subscribed.difference(&wanted).cloned().collect();
            for name in &removed {
                self.cache.remove(kind, name);
            }
            state.subscribed = wanted;
            if !state.requested && state.subscribed.is_empty() {
                continue;
            }
            state.requested = true;
            requests.push(match self.api {
                AdsApi::StateOfTheWorld => Outgoing::Sotw(DiscoveryRequest {
                    type_url: kind.type_url().to_owned(),
                    version_info: state.version_info.clone(),
                    resource_names: state.subscribed.iter().cloned().collect(),
                    response_nonce: state.nonce.clone(),
                    ..Default::default()
                }),
                AdsApi::Delta => Outgoing::Delta(DeltaDiscoveryRequest {
                    type_url: kind.type_url().to_owned(),
                    resource_names_subscribe: added,
                    resource_names_unsubscribe: removed,
                    ..Default::default()
                }),
            });
        }
        requests
    }
}

fn unknown_type(type_url: &str) -> Status {
    Status {
        code: INVALID_ARGUMENT,
        message: format!("unsupported resource type {type_url}"),
        details: Vec::new(),
    }
}

/// The NACK `error_detail` naming every rejected resource, or `None` when all were accepted.
fn nack_status(errors: &[String]) -> Option<Status> {
    if errors.is_empty() {
        return None;
    }
    Some(Status {
        code: INVALID_ARGUMENT,
        message: errors.join("; "),
        details: Vec::new(),
    })
}
