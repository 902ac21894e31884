//! Request authorities: schemes and splitting `host:port`.

use std::fmt;

/// The URL scheme of an outbound request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `http`, default port 80.
    Http,
    /// `https`, default port 443.
    Https,
}

impl Scheme {
    /// Parses `http` or `https`, case-insensitively.
    pub fn parse(scheme: &str) -> Option<Scheme> {
        if scheme.eq_ignore_ascii_case("http") {
            Some(Scheme::Http)
        } else if scheme.eq_ignore_ascii_case("https") {
            Some(Scheme::Https)
        } else {
            None
        }
    }

    /// The port used when an authority names none: 80 or 443.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// The scheme's name in lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<&http::uri::Scheme> for Scheme {
    type Error = UnsupportedScheme;

    fn try_from(scheme: &http::uri::Scheme) -> Result<Self, Self::Error> {
        Scheme::parse(scheme.as_str()).ok_or_else(|| UnsupportedScheme(scheme.as_str().to_owned()))
    }
}

/// A scheme other than `http` or `https`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported scheme {0:?}: only http and https requests can leave a workload")]
pub struct UnsupportedScheme(pub String);

/// An authority that is not a valid `host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorityError {
    /// The authority or its host part is empty.
    #[error("the authority {0:?} has no host")]
    MissingHost(String),
    /// The authority carries `user@` credentials.
    #[error("the authority {0:?} contains user info (`user@`), which is not allowed")]
    UserInfo(String),
    /// The port is not a number from 1 to 65535.
    #[error("the authority {0:?} has an invalid port (expected 1-65535)")]
    InvalidPort(String),
    /// An IPv6 literal without brackets, or an unclosed bracket.
    #[error("the authority {0:?} has a malformed IPv6 literal (write it as [addr] or [addr]:port)")]
    MalformedIpv6(String),
}

/// Splits an authority (`host`, `host:port`, `[v6]`, `[v6]:port`) into its
/// host and port, using the scheme's default port when none is given.
///
/// The host is returned as written (IPv6 brackets removed); checking that it
/// is a valid name is [`EgressRules::check`](super::EgressRules::check)'s job.
pub fn parse_authority(authority: &str, scheme: Scheme) -> Result<(&str, u16), AuthorityError> {
    let err_owned = || authority.to_owned();
    if authority.contains('@') {
        return Err(AuthorityError::UserInfo(err_owned()));
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| AuthorityError::MalformedIpv6(err_owned()))?;
        let host = &rest[..close];
        match &rest[close + 1..] {
            "" => (host, None),
            after => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(AuthorityError::MalformedIpv6(err_owned())),
            },
        }
    } else {
        match authority.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err(AuthorityError::MalformedIpv6(err_owned()));
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(AuthorityError::MissingHost(err_owned()));
    }
    let port = match port {
        None => scheme.default_port(),
        Some(port) => parse_port(port).ok_or_else(|| AuthorityError::InvalidPort(err_owned()))?,
    };
    Ok((host, port))
}

/// Parses a decimal port from 1 to 65535 (no sign, no spaces).
fn parse_port(port: &str) -> Option<u16> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse::<u16>().ok().filter(|p| *p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_without_port_uses_scheme_default() {
        assert_eq!(
            parse_authority("example.com", Scheme::Http),
            Ok(("example.com", 80))
        );
        assert_eq!(
            parse_authority("example.com", Scheme::Https),
            Ok(("example.com", 443))
        );
    }

    #[test]
    fn authority_with_port() {
        assert_eq!(
            parse_authority("example.com:8080", Scheme::Https),
            Ok(("example.com", 8080))
        );
    }

    #[test]
    fn authority_bracketed_ipv6() {
        assert_eq!(parse_authority("[::1]", Scheme::Http), Ok(("::1", 80)));
        assert_eq!(
            parse_authority("[::1]:9000", Scheme::Http),
            Ok(("::1", 9000))
        );
    }

    #[test]
    fn authority_unbracketed_ipv6_is_rejected() {
        assert!(matches!(
            parse_authority("::1", Scheme::Http),
            Err(AuthorityError::MalformedIpv6(_))
        ));
        assert!(matches!(
            parse_authority("[::1", Scheme::Http),
            Err(AuthorityError::MalformedIpv6(_))
        ));
        assert!(matches!(
            parse_authority("[::1]x", Scheme::Http),
            Err(AuthorityError::MalformedIpv6(_))
        ));
    }

    #[test]
    fn authority_with_bad_port_is_rejected() {
        for a in ["h:", "h:0", "h:65536", "h:+80", "h:8o", "h:123456"] {
            assert!(
                matches!(
                    parse_authority(a, Scheme::Http),
                    Err(AuthorityError::InvalidPort(_))
                ),
                "{a}"
            );
        }
    }

    #[test]
    fn authority_with_user_info_or_no_host_is_rejected() {
        assert!(matches!(
            parse_authority("u:p@h", Scheme::Http),
            Err(AuthorityError::UserInfo(_))
        ));
        assert!(matches!(
            parse_authority("", Scheme::Http),
            Err(AuthorityError::MissingHost(_))
        ));
        assert!(matches!(
            parse_authority(":80", Scheme::Http),
            Err(AuthorityError::MissingHost(_))
        ));
        assert!(matches!(
            parse_authority("[]:80", Scheme::Http),
            Err(AuthorityError::MissingHost(_))
        ));
    }

    #[test]
    fn scheme_parses_case_insensitively() {
        assert_eq!(Scheme::parse("HTTPS"), Some(Scheme::Https));
        assert_eq!(Scheme::parse("ftp"), None);
        assert_eq!(Scheme::try_from(&http::uri::Scheme::HTTP), Ok(Scheme::Http));
    }
}
