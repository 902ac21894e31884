//! `BasicAuth`, `BasicAuthPerRoute`, `ApiKeyAuth` and `ApiKeyAuthPerRoute`.

use base64::Engine;
use envoy_types::pb::envoy::extensions::filters::http::api_key_auth::v3 as api_key;
use envoy_types::pb::envoy::extensions::filters::http::basic_auth::v3 as basic;

use super::common::data_source;
use super::error::{FieldError, FieldResult};
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use crate::config::{ApiKeyAuth, BasicAuth, DataSource, KeySource};

pub(super) fn basic_auth(mut m: basic::BasicAuth, path: &FieldPath<'_>) -> FieldResult<BasicAuth> {
    let users = htpasswd(m.users.take(), &path.field("users"))?;
    let authentication_header = match std::mem::take(&mut m.authentication_header) {
        h if h.is_empty() => "authorization".to_owned(),
        h => h.to_ascii_lowercase(),
    };
    let result = BasicAuth {
        users,
        forward_username_header: Some(std::mem::take(&mut m.forward_username_header))
            .filter(|h| !h.is_empty())
            .map(|h| h.to_ascii_lowercase()),
        authentication_header,
        allow_missing: std::mem::take(&mut m.allow_missing),
    };
    // Dynamic metadata has no reader in this data plane.
    m.emit_dynamic_metadata = false;
    reject_unsupported(&m, path)?;
    Ok(result)
}

pub(super) fn basic_auth_per_route(
    mut m: basic::BasicAuthPerRoute,
    path: &FieldPath<'_>,
) -> FieldResult<BasicAuth> {
    let users = htpasswd(m.users.take(), &path.field("users"))?;
    reject_unsupported(&m, path)?;
    Ok(BasicAuth {
        users,
        forward_username_header: None,
        authentication_header: String::new(),
        allow_missing: false,
    })
}

/// htpasswd lines `user:{SHA}<base64 SHA-1>`, the only scheme Envoy accepts.
fn htpasswd(
    source: Option<envoy_types::pb::envoy::config::core::v3::DataSource>,
    path: &FieldPath<'_>,
) -> FieldResult<Vec<(String, [u8; 20])>> {
    let source = source.ok_or_else(|| FieldError::missing(path))?;
    let text = match data_source(source, path)? {
        DataSource::Inline(bytes) => {
            String::from_utf8(bytes.to_vec()).map_err(|_| FieldError::invalid(path, "not UTF-8"))?
        }
        DataSource::Filename(file) => std::fs::read_to_string(&file)
            .map_err(|e| FieldError::invalid(path, format!("{}: {e}", file.display())))?,
    };
    let mut users: Vec<(String, [u8; 20])> = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (user, hash) = line
            .split_once(':')
            .ok_or_else(|| FieldError::invalid(path, "a line is not user:hash"))?;
        let digest = hash.strip_prefix("{SHA}").ok_or_else(|| {
            FieldError::invalid(
                path,
                format!("user {user}: only {{SHA}} hashes are supported"),
            )
        })?;
        let digest: [u8; 20] = base64::engine::general_purpose::STANDARD
            .decode(digest)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                FieldError::invalid(path, format!("user {user}: invalid SHA-1 digest"))
            })?;
        if users.iter().any(|(name, _)| name == user) {
            return Err(FieldError::invalid(
                path,
                format!("user {user} is listed twice"),
            ));
        }
        users.push((user.to_owned(), digest));
    }
    Ok(users)
}

pub(super) fn api_key_auth(
    mut m: api_key::ApiKeyAuth,
    path: &FieldPath<'_>,
) -> FieldResult<ApiKeyAuth> {
    let result = ApiKeyAuth {
        credentials: credentials(
            std::mem::take(&mut m.credentials),
            &path.field("credentials"),
        )?,
        key_sources: key_sources(
            std::mem::take(&mut m.key_sources),
            &path.field("key_sources"),
        )?,
        allowed_clients: Vec::new(),
        forward_client_header: None,
        hide_credentials: false,
    };
    let result = with_forwarding(result, m.forwarding.take(), &path.field("forwarding"))?;
    reject_unsupported(&m, path)?;
    Ok(result)
}

pub(super) fn api_key_auth_per_route(
    mut m: api_key::ApiKeyAuthPerRoute,
    path: &FieldPath<'_>,
) -> FieldResult<ApiKeyAuth> {
    let result = ApiKeyAuth {
        credentials: credentials(
            std::mem::take(&mut m.credentials),
            &path.field("credentials"),
        )?,
        key_sources: key_sources(
            std::mem::take(&mut m.key_sources),
            &path.field("key_sources"),
        )?,
        allowed_clients: std::mem::take(&mut m.allowed_clients),
        forward_client_header: None,
        hide_credentials: false,
    };
    let result = with_forwarding(result, m.forwarding.take(), &path.field("forwarding"))?;
    reject_unsupported(&m, path)?;
    Ok(result)
}

fn with_forwarding(
    mut auth: ApiKeyAuth,
    forwarding: Option<api_key::Forwarding>,
    path: &FieldPath<'_>,
) -> FieldResult<ApiKeyAuth> {
    if let Some(mut f) = forwarding {
        auth.forward_client_header = Some(std::mem::take(&mut f.header))
            .filter(|h| !h.is_empty())
            .map(|h| h.to_ascii_lowercase());
        auth.hide_credentials = std::mem::take(&mut f.hide_credentials);
        reject_unsupported(&f, path)?;
    }
    Ok(auth)
}

fn credentials(
    list: Vec<api_key::Credential>,
    path: &FieldPath<'_>,
) -> FieldResult<Vec<(String, String)>> {
    list.into_iter()
        .enumerate()
        .map(|(i, c)| {
            if c.key.is_empty() {
                return Err(FieldError::missing(&path.index(i).field("key")));
            }
            Ok((c.key, c.client))
        })
        .collect()
}

fn key_sources(list: Vec<api_key::KeySource>, path: &FieldPath<'_>) -> FieldResult<Vec<KeySource>> {
    list.into_iter()
        .enumerate()
        .map(|(i, s)| {
            let set = [
                !s.header.is_empty(),
                !s.query.is_empty(),
                !s.cookie.is_empty(),
            ];
            if set.iter().filter(|set| **set).count() != 1 {
                return Err(FieldError::invalid(
                    &path.index(i),
                    "exactly one of header, query and cookie must be set",
                ));
            }
            Ok(if !s.header.is_empty() {
                KeySource::Header(s.header.to_ascii_lowercase())
            } else if !s.query.is_empty() {
                KeySource::Query(s.query)
            } else {
                KeySource::Cookie(s.cookie)
            })
        })
        .collect()
}
