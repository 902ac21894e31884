//! Taking a credential out of a request before it goes upstream, as Envoy's filters do when
//! they do not forward it: a query parameter leaves the path, a cookie leaves `Cookie`.

use http::header::COOKIE;
use http::request::Parts;
use http::{HeaderValue, Uri};

/// Removes every `name=...` parameter from the query, keeping the others in order.
pub(super) fn remove_query_parameter(head: &mut Parts, name: &str) {
    let Some(path_and_query) = head.uri.path_and_query() else {
        return;
    };
    let Some(query) = path_and_query.query() else {
        return;
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(name))
        .collect();
    let rebuilt = if kept.is_empty() {
        path_and_query.path().to_owned()
    } else {
        format!("{}?{}", path_and_query.path(), kept.join("&"))
    };
    let mut parts = head.uri.clone().into_parts();
    if let Ok(pq) = rebuilt.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            head.uri = uri;
        }
    }
}

/// Removes the cookie `name`; a `Cookie` header left empty goes too.
pub(super) fn remove_cookie(head: &mut Parts, name: &str) {
    let values: Vec<String> = head
        .headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .map(str::trim)
                .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(name))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|value| !value.is_empty())
        .collect();
    head.headers.remove(COOKIE);
    for value in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            head.headers.append(COOKIE, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(uri: &str, cookie: &str) -> Parts {
        http::Request::get(uri)
            .header("cookie", cookie)
            .body(())
            .expect("request")
            .into_parts()
            .0
    }

    #[test]
    fn a_credential_leaves_the_query_and_the_cookies() {
        let mut request = head("/p?a=1&key=s&b=2", "x=1; key=s");
        remove_query_parameter(&mut request, "key");
        remove_cookie(&mut request, "key");
        assert_eq!(request.uri, "/p?a=1&b=2");
        assert_eq!(request.headers["cookie"], "x=1");
        let mut only = head("/p?key=s", "key=s");
        remove_query_parameter(&mut only, "key");
        remove_cookie(&mut only, "key");
        assert_eq!(only.uri, "/p");
        assert!(!only.headers.contains_key("cookie"));
    }
}
