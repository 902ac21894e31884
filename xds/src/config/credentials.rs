//! `envoy.filters.http.basic_auth` and `envoy.filters.http.api_key_auth`: credentials the
//! configuration lists, checked in the host.

/// `envoy.extensions.filters.http.basic_auth.v3.BasicAuth` (or its per-route users).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicAuth {
    /// User name and SHA-1 digest of the password (htpasswd `{SHA}`).
    pub users: Vec<(String, [u8; 20])>,
    /// The authenticated user's name goes upstream in this header.
    pub forward_username_header: Option<String>,
    /// Where the credentials are read (default `authorization`).
    pub authentication_header: String,
    /// Requests without credentials pass.
    pub allow_missing: bool,
}

/// `envoy.extensions.filters.http.api_key_auth.v3.ApiKeyAuth` (or its per-route form).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiKeyAuth {
    /// Key and the client it identifies.
    pub credentials: Vec<(String, String)>,
    /// Where a key is looked for, in order.
    pub key_sources: Vec<KeySource>,
    /// Only these clients are allowed (per route; empty: any with a valid key).
    pub allowed_clients: Vec<String>,
    /// The client's name goes upstream in this header.
    pub forward_client_header: Option<String>,
    /// The key is removed from the request before it goes upstream.
    pub hide_credentials: bool,
}

/// `KeySource`: one place a key may be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// A header (a `Bearer ` prefix is dropped).
    Header(String),
    /// A query parameter.
    Query(String),
    /// A cookie.
    Cookie(String),
}
