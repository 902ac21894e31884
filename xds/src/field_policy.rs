//! How mesh-host treats every field of the Envoy messages it translates, written down once.
//!
//! Each field of a covered message is in exactly one [`FieldClass`]: honoured (mesh-host
//! behaves as Envoy does), no effect on this data plane (accepted and logged once at debug),
//! or unsupported (the resource is refused naming the field path). The translators in
//! [`crate::translate`] implement the classes; unit tests check that every field Envoy
//! defines is classified and that each class is what the translators really do, and
//! `docs/xds-support.md` is generated from these tables ([`markdown`]).

mod cluster;
mod endpoint;
mod hcm;
mod listener;
mod route;
mod secret;
mod tcp_proxy;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::fmt::Write;
use std::sync::{LazyLock, Mutex, PoisonError};

/// What mesh-host does with a field when it is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldClass {
    /// Implemented as Envoy implements it (the note says how far, and which values are refused).
    Honoured,
    /// No effect on this data plane (statistics, tuning, metadata): accepted, logged once.
    NoEffect,
    /// Changes behaviour in Envoy and is not implemented: the resource is refused by name.
    Unsupported,
}

impl FieldClass {
    fn label(self) -> &'static str {
        match self {
            Self::Honoured => "honoured",
            Self::NoEffect => "no effect",
            Self::Unsupported => "NACK",
        }
    }
}

/// One field of a message and how it is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldRule {
    /// The proto field name.
    pub field: &'static str,
    /// Its class.
    pub class: FieldClass,
    /// Why, or how far it is honoured.
    pub note: &'static str,
}

/// The rules of one message.
#[derive(Clone, Copy, Debug)]
pub struct MessagePolicy {
    /// The full proto name, such as `envoy.config.cluster.v3.Cluster`.
    pub message: &'static str,
    /// One rule per field.
    pub fields: &'static [FieldRule],
}

impl MessagePolicy {
    /// The rule of `field`, if the table has one.
    pub fn rule(&self, field: &str) -> Option<&FieldRule> {
        self.fields.iter().find(|rule| rule.field == field)
    }

    /// The message name without its package (`Cluster`).
    pub fn short_name(&self) -> &'static str {
        self.message.rsplit('.').next().unwrap_or(self.message)
    }
}

const fn honoured(field: &'static str, note: &'static str) -> FieldRule {
    FieldRule {
        field,
        class: FieldClass::Honoured,
        note,
    }
}

const fn no_effect(field: &'static str, note: &'static str) -> FieldRule {
    FieldRule {
        field,
        class: FieldClass::NoEffect,
        note,
    }
}

const fn unsupported(field: &'static str, note: &'static str) -> FieldRule {
    FieldRule {
        field,
        class: FieldClass::Unsupported,
        note,
    }
}

/// Every covered message, in the order of the generated document.
pub const MESSAGES: &[MessagePolicy] = &[
    listener::LISTENER,
    listener::FILTER_CHAIN,
    hcm::HTTP_CONNECTION_MANAGER,
    hcm::TRACING,
    hcm::OPENTELEMETRY,
    hcm::ROUTER,
    tcp_proxy::TCP_PROXY,
    tcp_proxy::CONNECTION_LIMIT,
    route::ROUTE_CONFIGURATION,
    route::VIRTUAL_HOST,
    route::ROUTE,
    route::ROUTE_ACTION,
    cluster::CLUSTER,
    endpoint::CLUSTER_LOAD_ASSIGNMENT,
    endpoint::LOCALITY_LB_ENDPOINTS,
    endpoint::LB_ENDPOINT,
    endpoint::ENDPOINT,
    secret::SECRET,
];

/// Fields already reported as ignored, so each is logged once per process.
static LOGGED: LazyLock<Mutex<HashSet<(&'static str, &'static str)>>> =
    LazyLock::new(Default::default);

/// Clears a field of class [`FieldClass::NoEffect`], logging the first time it is seen set.
pub(crate) fn tolerate<T: Default + PartialEq>(
    value: &mut T,
    message: &'static str,
    field: &'static str,
) {
    if *value == T::default() {
        return;
    }
    *value = T::default();
    ignored(message, field);
}

/// Logs, once per process, that a field of class [`FieldClass::NoEffect`] was set.
pub(crate) fn ignored(message: &'static str, field: &'static str) {
    let first = LOGGED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert((message, field));
    if first {
        tracing::debug!("{message}.{field} has no effect on mesh-host; ignored");
    }
}

/// Clears each named field of class [`FieldClass::NoEffect`] from `$message` (a proto named
/// `$name` in the tables), logging each the first time it is seen set.
macro_rules! tolerate_fields {
    ($message:expr, $name:literal: $($field:ident),+ $(,)?) => {
        $( $crate::field_policy::tolerate(&mut $message.$field, $name, stringify!($field)); )+
    };
}
pub(crate) use tolerate_fields;

/// The field tables as Markdown, one section per message (the body of `docs/xds-support.md`
/// between its generated-section markers).
pub fn markdown() -> String {
    let mut out = String::new();
    for policy in MESSAGES {
        let _ = writeln!(out, "### `{}`\n", policy.message);
        out.push_str("| field | mesh-host | note |\n|---|---|---|\n");
        for rule in policy.fields {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} |",
                rule.field,
                rule.class.label(),
                rule.note.replace('|', "\\|")
            );
        }
        out.push('\n');
    }
    out
}
