//! `access_log` of a connection manager, translated from bootstrap YAML: the file, stdout and
//! stderr loggers with Envoy's default format, text and JSON formats; an unknown command
//! operator and an access log filter are refused by name.

use std::path::PathBuf;

use mesh_xds::bootstrap::{Bootstrap, Format};
use mesh_xds::config::{AccessLog, AccessLogSink, FormatPiece, JsonField, LogFormat, LogOperator};

fn bootstrap(access_log: &str) -> Result<Bootstrap, String> {
    let yaml = format!(
        r#"
static_resources:
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: 0 }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: l
          access_log:
{access_log}
          route_config:
            virtual_hosts:
            - {{ name: v, domains: ["*"], routes: [{{ match: {{ prefix: / }}, direct_response: {{ status: 200 }} }}] }}
          http_filters:
          - {{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}
"#
    );
    Bootstrap::parse(&yaml, Format::Yaml, "test.yaml").map_err(|e| e.to_string())
}

fn logs(access_log: &str) -> Vec<AccessLog> {
    let b = bootstrap(access_log).expect("valid");
    b.static_config.listeners["l"].filter_chains[0]
        .http
        .access_logs
        .clone()
}

fn operators(format: &LogFormat) -> Vec<LogOperator> {
    let LogFormat::Text(text) = format else {
        panic!("text format expected: {format:?}")
    };
    text.pieces
        .iter()
        .filter_map(|piece| match piece {
            FormatPiece::Operator { operator, .. } => Some(operator.clone()),
            FormatPiece::Literal(_) => None,
        })
        .collect()
}

#[test]
fn a_file_log_without_a_format_uses_envoys_default_format() {
    let logs = logs(
        r#"
          - name: envoy.access_loggers.file
            typed_config: { "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: logs/access.log }"#,
    );
    assert_eq!(logs.len(), 1);
    assert_eq!(
        logs[0].sink,
        AccessLogSink::File(PathBuf::from("logs/access.log"))
    );
    let ops = operators(&logs[0].format);
    assert_eq!(ops.first(), Some(&LogOperator::StartTime));
    assert!(ops.contains(&LogOperator::UpstreamHost));
}

#[test]
fn stdout_and_stderr_logs_take_text_format_source_and_text_format() {
    let logs = logs(
        r#"
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: { text_format_source: { inline_string: "%RESPONSE_CODE% %REQ(:PATH):5%\n" } }
          - name: envoy.access_loggers.stderr
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StderrAccessLog
              log_format: { text_format: "%MESH_WORKLOAD%", omit_empty_values: true }"#,
    );
    assert_eq!(logs[0].sink, AccessLogSink::Stdout);
    assert_eq!(
        operators(&logs[0].format),
        [
            LogOperator::ResponseCode,
            LogOperator::RequestHeader {
                name: ":path".into(),
                fallback: None
            }
        ]
    );
    assert_eq!(logs[1].sink, AccessLogSink::Stderr);
    let LogFormat::Text(text) = &logs[1].format else {
        panic!("text format expected")
    };
    assert!(text.omit_empty);
    assert_eq!(operators(&logs[1].format), [LogOperator::Workload]);
}

#[test]
fn a_json_format_keeps_nesting_and_literals() {
    let logs = logs(
        r#"
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: /dev/stdout
              log_format:
                json_format: { code: "%RESPONSE_CODE%", nested: { n: 7 } }"#,
    );
    let LogFormat::Json { fields, .. } = &logs[0].format else {
        panic!("JSON format expected")
    };
    let nested = fields
        .iter()
        .find(|(key, _)| key == "nested")
        .map(|(_, field)| field.clone());
    assert_eq!(
        nested,
        Some(JsonField::Object(vec![(
            "n".into(),
            JsonField::Literal(serde_json::json!(7))
        )]))
    );
}

#[test]
fn an_unknown_command_operator_is_refused_by_name() {
    let error = bootstrap(
        r#"
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format: { text_format_source: { inline_string: "%DYNAMIC_METADATA(a:b)%" } }"#,
    )
    .expect_err("unknown operator");
    assert!(error.contains("%DYNAMIC_METADATA%"), "{error}");
    assert!(error.contains("access_log[0]"), "{error}");
}

#[test]
fn an_access_log_filter_is_refused() {
    let error = bootstrap(
        r#"
          - name: envoy.access_loggers.stdout
            filter: { status_code_filter: { comparison: { op: GE, value: { default_value: 400, runtime_key: k } } } }
            typed_config: { "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog }"#,
    )
    .expect_err("filter");
    assert!(error.contains("access_log[0].filter"), "{error}");
}
