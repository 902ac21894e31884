//! `/server_info` in the shape of Envoy's `envoy.admin.v3.ServerInfo`: version, state,
//! uptime and the node the host presents to its control plane.

use std::time::SystemTime;

use super::Admin;

/// The JSON of `envoy.admin.v3.ServerInfo`.
pub(super) fn render(admin: &Admin) -> serde_json::Value {
    let uptime = SystemTime::now()
        .duration_since(admin.started)
        .unwrap_or_default()
        .as_secs();
    let state = if admin.is_ready() {
        "LIVE"
    } else {
        "PRE_INITIALIZING"
    };
    let node = &admin.node;
    serde_json::json!({
        "version": concat!("mesh-host/", env!("CARGO_PKG_VERSION")),
        "state": state,
        "hot_restart_version": "disabled",
        "uptime_current_epoch": format!("{uptime}s"),
        "uptime_all_epochs": format!("{uptime}s"),
        "node": {
            "id": node.id,
            "cluster": node.cluster,
            "metadata": node.metadata,
            "user_agent_name": node.user_agent_name,
        },
        "command_line_options": {},
    })
}
