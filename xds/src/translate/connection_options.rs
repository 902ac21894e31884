//! The settings of an `HttpConnectionManager` about its connections:
//! `common_http_protocol_options`, `http_protocol_options`, `http2_protocol_options` and
//! `request_headers_timeout` -> [`ConnectionOptions`].

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::google::protobuf::UInt32Value;

use super::common::{optional_duration, timeout};
use super::error::{FieldError, FieldResult};
use super::path::FieldPath;
use super::reflect::reject_unsupported;
use crate::config::{ConnectionOptions, Http2FloodLimits, Http2Keepalive};
use crate::field_policy::tolerate_fields;

/// Envoy's `idle_timeout` default for downstream connections.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Moves the connection settings out of `m`; what is left of those messages is either
/// tuning without effect here (cleared) or refused by name.
pub(super) fn connection_options(
    m: &mut hcm::HttpConnectionManager,
    path: &FieldPath<'_>,
) -> FieldResult<ConnectionOptions> {
    let mut options = ConnectionOptions {
        idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        request_headers_timeout: timeout(
            m.request_headers_timeout.take().as_ref(),
            None,
            &path.field("request_headers_timeout"),
        )?,
        ..ConnectionOptions::default()
    };
    if let Some(mut common) = m.common_http_protocol_options.take() {
        let at = path.field("common_http_protocol_options");
        options.idle_timeout = timeout(
            common.idle_timeout.take().as_ref(),
            Some(DEFAULT_IDLE_TIMEOUT),
            &at.field("idle_timeout"),
        )?;
        options.max_connection_duration = optional_duration(
            common.max_connection_duration.take().as_ref(),
            &at.field("max_connection_duration"),
        )?
        .filter(|duration| !duration.is_zero());
        tolerate_fields!(common, "HttpConnectionManager.common_http_protocol_options":
            max_connection_duration_jitter,
            max_requests_per_connection,
        );
        reject_unsupported(&common, &at)?;
    }
    if let Some(mut http1) = m.http_protocol_options.take() {
        options.accept_http_10 = std::mem::take(&mut http1.accept_http_10);
        options.allow_chunked_length = std::mem::take(&mut http1.allow_chunked_length);
        options.allow_custom_methods = std::mem::take(&mut http1.allow_custom_methods);
        tolerate_fields!(http1, "HttpConnectionManager.http_protocol_options":
            allow_absolute_url,
            header_key_format,
            enable_trailers,
            override_stream_error_on_invalid_http_message,
            send_fully_qualified_url,
            use_balsa_parser,
            ignore_http_11_upgrade,
        );
        reject_unsupported(&http1, &path.field("http_protocol_options"))?;
    }
    if let Some(mut http2) = m.http2_protocol_options.take() {
        http2_options(
            &mut http2,
            &mut options,
            &path.field("http2_protocol_options"),
        )?;
    }
    Ok(options)
}

fn http2_options(
    http2: &mut core::Http2ProtocolOptions,
    options: &mut ConnectionOptions,
    path: &FieldPath<'_>,
) -> FieldResult<()> {
    // Envoy's own bounds: the control frame and WINDOW_UPDATE limits are at least 1.
    let limit = |value: Option<UInt32Value>, default: u32, min: u32, field: &str| match value {
        None => Ok(default),
        Some(UInt32Value { value }) if value < min => Err(FieldError::invalid(
            &path.field(field),
            format!("must be at least {min}"),
        )),
        Some(UInt32Value { value }) => Ok(value),
    };
    let defaults = Http2FloodLimits::default();
    options.http2_flood_limits = Http2FloodLimits {
        max_outbound_control_frames: limit(
            http2.max_outbound_control_frames.take(),
            defaults.max_outbound_control_frames,
            1,
            "max_outbound_control_frames",
        )?,
        max_consecutive_inbound_frames_with_empty_payload: limit(
            http2
                .max_consecutive_inbound_frames_with_empty_payload
                .take(),
            defaults.max_consecutive_inbound_frames_with_empty_payload,
            0,
            "max_consecutive_inbound_frames_with_empty_payload",
        )?,
        max_inbound_priority_frames_per_stream: limit(
            http2.max_inbound_priority_frames_per_stream.take(),
            defaults.max_inbound_priority_frames_per_stream,
            0,
            "max_inbound_priority_frames_per_stream",
        )?,
        max_inbound_window_update_frames_per_data_frame_sent: limit(
            http2
                .max_inbound_window_update_frames_per_data_frame_sent
                .take(),
            defaults.max_inbound_window_update_frames_per_data_frame_sent,
            1,
            "max_inbound_window_update_frames_per_data_frame_sent",
        )?,
    };
    options.http2_max_concurrent_streams = http2
        .max_concurrent_streams
        .take()
        .map(|streams| streams.value);
    if let Some(mut keepalive) = http2.connection_keepalive.take() {
        let at = path.field("connection_keepalive");
        let interval =
            optional_duration(keepalive.interval.take().as_ref(), &at.field("interval"))?
                .filter(|interval| !interval.is_zero());
        let timeout = optional_duration(keepalive.timeout.take().as_ref(), &at.field("timeout"))?;
        options.http2_keepalive = match (interval, timeout) {
            (_, None) => return Err(FieldError::missing(&at.field("timeout"))),
            (_, Some(timeout)) if timeout.is_zero() => {
                return Err(FieldError::invalid(
                    &at.field("timeout"),
                    "must be at least 1ms",
                ));
            }
            (Some(interval), Some(timeout)) => Some(Http2Keepalive { interval, timeout }),
            // Without an interval Envoy only pings before reusing an idle upstream
            // connection, which a downstream connection never is.
            (None, Some(_)) => None,
        };
        tolerate_fields!(keepalive, "Http2ProtocolOptions.connection_keepalive":
            interval_jitter,
            connection_idle_interval,
        );
        reject_unsupported(&keepalive, &at)?;
    }
    // Control planes set these routinely (Istio: `allow_connect`, window sizes); none
    // changes which requests are answered here: h2 bounds its own queues and resets, and
    // refuses CONNECT streams it was not told to take.
    tolerate_fields!(http2, "HttpConnectionManager.http2_protocol_options":
        hpack_table_size,
        initial_stream_window_size,
        initial_connection_window_size,
        allow_connect,
        allow_metadata,
        max_outbound_frames,
        stream_error_on_invalid_http_messaging,
        override_stream_error_on_invalid_http_message,
        custom_settings_parameters,
        use_oghttp2_codec,
        max_metadata_size,
        enable_huffman_encoding,
        max_header_field_size_kb,
        disallow_obs_text,
        stream_reset_burst,
        stream_reset_rate,
    );
    reject_unsupported(http2, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::google::protobuf::Duration as ProtoDuration;

    use super::*;

    fn seconds(seconds: i64) -> Option<ProtoDuration> {
        Some(ProtoDuration { seconds, nanos: 0 })
    }

    fn translate(m: hcm::HttpConnectionManager) -> FieldResult<ConnectionOptions> {
        let mut m = m;
        connection_options(&mut m, &FieldPath::root())
    }

    #[test]
    fn unset_settings_are_envoys_defaults() {
        let options = translate(hcm::HttpConnectionManager::default()).expect("valid");
        assert_eq!(options, ConnectionOptions::default());
        assert_eq!(options.idle_timeout, Some(DEFAULT_IDLE_TIMEOUT));
    }

    #[test]
    fn timers_keepalive_and_limits_are_read_and_zero_disables_a_timer() {
        let options = translate(hcm::HttpConnectionManager {
            request_headers_timeout: seconds(5),
            common_http_protocol_options: Some(core::HttpProtocolOptions {
                idle_timeout: seconds(0),
                max_connection_duration: seconds(60),
                ..Default::default()
            }),
            http_protocol_options: Some(core::Http1ProtocolOptions {
                accept_http_10: true,
                allow_chunked_length: true,
                ..Default::default()
            }),
            http2_protocol_options: Some(core::Http2ProtocolOptions {
                max_outbound_control_frames: Some(UInt32Value { value: 50 }),
                max_concurrent_streams: Some(UInt32Value { value: 10 }),
                connection_keepalive: Some(core::KeepaliveSettings {
                    interval: seconds(10),
                    timeout: seconds(2),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(options.idle_timeout, None, "0s disables the idle timeout");
        assert_eq!(
            options.max_connection_duration,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            options.request_headers_timeout,
            Some(Duration::from_secs(5))
        );
        assert!(options.accept_http_10 && options.allow_chunked_length);
        assert!(!options.allow_custom_methods);
        assert_eq!(options.http2_flood_limits.max_outbound_control_frames, 50);
        assert_eq!(options.http2_max_concurrent_streams, Some(10));
        assert_eq!(
            options.http2_keepalive,
            Some(Http2Keepalive {
                interval: Duration::from_secs(10),
                timeout: Duration::from_secs(2)
            })
        );
    }

    #[test]
    fn a_keepalive_without_timeout_and_a_zero_control_frame_limit_are_refused_by_field() {
        let error = translate(hcm::HttpConnectionManager {
            http2_protocol_options: Some(core::Http2ProtocolOptions {
                connection_keepalive: Some(core::KeepaliveSettings {
                    interval: seconds(10),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .expect_err("timeout is required");
        assert_eq!(
            error.field,
            "http2_protocol_options.connection_keepalive.timeout"
        );
        let error = translate(hcm::HttpConnectionManager {
            http2_protocol_options: Some(core::Http2ProtocolOptions {
                max_outbound_control_frames: Some(UInt32Value { value: 0 }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .expect_err("at least 1");
        assert_eq!(
            error.field,
            "http2_protocol_options.max_outbound_control_frames"
        );
    }

    #[test]
    fn settings_that_change_behaviour_and_are_not_implemented_are_refused_by_name() {
        let error = translate(hcm::HttpConnectionManager {
            http_protocol_options: Some(core::Http1ProtocolOptions {
                default_host_for_http_10: "example.com".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .expect_err("not implemented");
        assert_eq!(
            error.field,
            "http_protocol_options.default_host_for_http_10"
        );
    }
}
