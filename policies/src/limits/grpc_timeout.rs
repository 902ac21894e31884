//! The gRPC `grpc-timeout` header and the deadline a request gets.

use std::time::Duration;

/// A `grpc-timeout` value that does not follow the gRPC wire format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrpcTimeoutError {
    /// No digits before the unit (or an empty value).
    #[error("grpc-timeout {0:?} has no digits; expected 1-8 digits and a unit (H, M, S, m, u, n)")]
    NoDigits(String),
    /// More than 8 digits.
    #[error("grpc-timeout {0:?} has more than 8 digits")]
    TooManyDigits(String),
    /// The value does not end in one of `H M S m u n`, or has other characters.
    #[error("grpc-timeout {0:?} must end in one unit: H, M, S, m, u or n")]
    BadUnit(String),
}

/// Parses a `grpc-timeout` header value: 1 to 8 ASCII digits followed by
/// exactly one unit, `H` (hours), `M` (minutes), `S` (seconds),
/// `m` (milliseconds), `u` (microseconds) or `n` (nanoseconds).
/// Anything else, including spaces or a sign, is an error.
pub fn parse_grpc_timeout(value: &str) -> Result<Duration, GrpcTimeoutError> {
    let bytes = value.as_bytes();
    let Some((&unit, digits)) = bytes.split_last() else {
        return Err(GrpcTimeoutError::NoDigits(value.to_owned()));
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(GrpcTimeoutError::BadUnit(value.to_owned()));
    }
    if digits.is_empty() {
        return Err(if unit.is_ascii_digit() {
            GrpcTimeoutError::BadUnit(value.to_owned())
        } else {
            GrpcTimeoutError::NoDigits(value.to_owned())
        });
    }
    if digits.len() > 8 {
        return Err(GrpcTimeoutError::TooManyDigits(value.to_owned()));
    }
    // At most 8 digits: fits in a u64 with room for the hour multiplier.
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Ok(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return Err(GrpcTimeoutError::BadUnit(value.to_owned())),
    })
}

/// The time a request may take: the route's timeout (or the workload's
/// default) unless the client sent `grpc-timeout`, which is honoured up to
/// `cap` (Envoy's `max_grpc_timeout`). A `grpc-timeout` of zero means "no
/// deadline" to Envoy, so it gets the cap.
pub fn effective_deadline(
    route_or_default: Duration,
    grpc_timeout: Option<Duration>,
    cap: Duration,
) -> Duration {
    match grpc_timeout {
        None => route_or_default,
        Some(t) if t.is_zero() => cap,
        Some(t) => t.min(cap),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeout_accepts_every_unit() {
        assert_eq!(parse_grpc_timeout("2H"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("10S"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_grpc_timeout("250m"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("7u"), Ok(Duration::from_micros(7)));
        assert_eq!(parse_grpc_timeout("9n"), Ok(Duration::from_nanos(9)));
    }

    #[test]
    fn grpc_timeout_allows_up_to_eight_digits() {
        assert_eq!(
            parse_grpc_timeout("99999999H"),
            Ok(Duration::from_secs(99_999_999 * 3600))
        );
        assert_eq!(parse_grpc_timeout("00000001S"), Ok(Duration::from_secs(1)));
        assert!(matches!(
            parse_grpc_timeout("123456789S"),
            Err(GrpcTimeoutError::TooManyDigits(_))
        ));
    }

    #[test]
    fn grpc_timeout_rejects_missing_digits_or_unit() {
        assert!(matches!(
            parse_grpc_timeout(""),
            Err(GrpcTimeoutError::NoDigits(_))
        ));
        assert!(matches!(
            parse_grpc_timeout("S"),
            Err(GrpcTimeoutError::NoDigits(_))
        ));
        assert!(matches!(
            parse_grpc_timeout("100"),
            Err(GrpcTimeoutError::BadUnit(_))
        ));
        assert!(matches!(
            parse_grpc_timeout("1"),
            Err(GrpcTimeoutError::BadUnit(_))
        ));
    }

    #[test]
    fn grpc_timeout_rejects_anything_else() {
        for bad in [
            "1s", "1h", "1x", "1SS", " 1S", "1S ", "+1S", "-1S", "1.5S", "1 S", "１S",
        ] {
            assert!(parse_grpc_timeout(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn deadline_is_the_route_timeout_without_grpc_timeout() {
        let d = effective_deadline(Duration::from_secs(30), None, Duration::from_secs(300));
        assert_eq!(d, Duration::from_secs(30));
    }

    #[test]
    fn deadline_honours_grpc_timeout_below_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(effective_deadline(s(30), Some(s(5)), s(300)), s(5));
        assert_eq!(effective_deadline(s(30), Some(s(60)), s(300)), s(60));
    }

    #[test]
    fn deadline_caps_grpc_timeout() {
        let s = Duration::from_secs;
        assert_eq!(effective_deadline(s(30), Some(s(3600)), s(300)), s(300));
    }

    #[test]
    fn zero_grpc_timeout_means_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(
            effective_deadline(s(30), Some(Duration::ZERO), s(300)),
            s(300)
        );
    }
}
