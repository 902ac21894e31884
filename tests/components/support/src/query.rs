//! Reading parameters from the query part of a request target.
//!
//! Values are decoded the way HTML forms and most HTTP clients encode them
//! (`application/x-www-form-urlencoded`): `%XX` escapes are decoded and `+`
//! means a space, so a literal plus must be sent as `%2B`.

/// Returns the decoded value of the first parameter called `name` in the
/// query of `path_with_query` (`/path?a=1&b=2`), if present. A parameter
/// without `=` has an empty value.
pub fn param(path_with_query: &str, name: &str) -> Option<String> {
    let (_, query) = path_with_query.split_once('?')?;
    // A fragment never reaches a server, but a hand-written target may carry one.
    let query = query.split('#').next().unwrap_or_default();
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
        .find(|(key, _)| decode(key) == name)
        .map(|(_, value)| decode(value))
}

/// Decodes `+` and `%XX` escapes. A `%` not followed by two hex digits is kept
/// as is, and bytes that are not UTF-8 become U+FFFD, so decoding never fails.
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let Some(byte) = bytes.get(i + 1..i + 3).and_then(hex_byte) {
                    out.push(byte);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_byte(digits: &[u8]) -> Option<u8> {
    let &[high, low] = digits else { return None };
    let value = |digit: u8| char::from(digit).to_digit(16);
    u8::try_from(value(high)? * 16 + value(low)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_is_percent_decoded() {
        assert_eq!(
            param("/?url=http%3A%2F%2F127.0.0.1%3A8080%2Fa%3Fb%3Dc", "url").as_deref(),
            Some("http://127.0.0.1:8080/a?b=c")
        );
    }

    #[test]
    fn plus_is_a_space_and_escaped_plus_is_a_plus() {
        assert_eq!(param("/?chunk=a+b%2Bc", "chunk").as_deref(), Some("a b+c"));
    }

    #[test]
    fn first_occurrence_wins() {
        assert_eq!(param("/p?x=1&x=2", "x").as_deref(), Some("1"));
    }

    #[test]
    fn missing_parameter_or_query_is_none() {
        assert_eq!(param("/p?x=1", "y"), None);
        assert_eq!(param("/p", "x"), None);
    }

    #[test]
    fn parameter_without_value_is_empty() {
        assert_eq!(param("/p?flag&x=1", "flag").as_deref(), Some(""));
    }

    #[test]
    fn fragment_is_not_part_of_a_value() {
        assert_eq!(param("/p?x=1#frag", "x").as_deref(), Some("1"));
    }

    #[test]
    fn malformed_escape_is_kept_literally() {
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode("%-1"), "%-1");
    }
}
