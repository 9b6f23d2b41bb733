//! Methods: the `Allow` header of every 405 (which methods each route takes, kept beside
//! [`super::routes::mount`] and [`super::hooks`]'s mount and checked against `openapi.yaml` by the
//! tests), and the answer to a method no route implements.

use http_types::Method;

/// The routes and their methods, as mounted. `:x` is a path parameter (one segment). GET routes
/// also answer HEAD (tide's router).
const ROUTES: &[(&str, &str)] = &[
    ("/health", "GET, HEAD"),
    ("/call", "POST"),
    ("/call/:call_id", "GET, HEAD, DELETE"),
    ("/calls", "GET, HEAD"),
    ("/calls/:call_id", "GET, HEAD"),
    ("/notifications", "GET, HEAD, POST"),
    ("/notifications/:notification_id", "GET, HEAD, DELETE"),
    ("/hooks", "GET, HEAD"),
    ("/hooks/:name/test", "POST"),
    ("/openapi.yaml", "GET, HEAD"),
];

/// The `Allow` value for `path`, or `None` when no route has that path.
pub fn allowed(path: &str) -> Option<&'static str> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    ROUTES.iter().find_map(|(template, allow)| {
        let t: Vec<&str> = template.split('/').collect();
        let same = t.len() == segments.len()
            && t.iter()
                .zip(&segments)
                .all(|(t, s)| t.starts_with(':') && !s.is_empty() || t == s);
        same.then_some(*allow)
    })
}

/// Whether `token` (the first word of a request line) is a method the HTTP layer can parse; any
/// other method gets [`not_implemented`] before the parser sees it (it would drop the connection).
pub fn is_known(token: &str) -> bool {
    token.parse::<Method>().is_ok()
}

/// The whole response (JSON `detail`, connection closed) to a method the HTTP layer cannot parse,
/// sent to `target` (the request line's second word): `405` with `Allow` when a route has that
/// path (as for any other method the route does not take), else `501 Not Implemented`.
pub fn refusal(token: &str, target: &str) -> Vec<u8> {
    let shown: String = token.chars().filter(|c| c.is_ascii_graphic()).take(32).collect();
    let path: String = target
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(256)
        .collect();
    let (status, allow, detail) = match allowed(&path) {
        Some(allow) => (
            "405 Method Not Allowed",
            format!("allow: {allow}\r\n"),
            format!("method {shown} is not allowed on {path}"),
        ),
        None => (
            "501 Not Implemented",
            String::new(),
            format!("method {shown} is not implemented; this API uses GET, HEAD, POST and DELETE"),
        ),
    };
    let body = serde_json::json!({ "detail": detail }).to_string();
    format!(
        "HTTP/1.1 {status}\r\n{allow}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_follows_the_route_templates() {
        assert_eq!(allowed("/call"), Some("POST"));
        assert_eq!(allowed("/call/abc"), Some("GET, HEAD, DELETE"));
        assert_eq!(allowed("/hooks/yesno/test"), Some("POST"));
        assert_eq!(allowed("/hooks//test"), None);
        assert_eq!(allowed("/nothing"), None);
        assert_eq!(allowed("/call/a/b"), None);
    }

    #[test]
    fn unknown_methods_are_told_apart_and_answered_501() {
        assert!(is_known("GET") && is_known("TRACE") && is_known("PROPFIND"));
        assert!(!is_known("QUERY") && !is_known("FOO"));
        let res = String::from_utf8(refusal("FOO\u{7}", "/nothing?x=1")).expect("utf8");
        assert!(res.starts_with("HTTP/1.1 501 Not Implemented\r\n"), "{res}");
        let body = res.split_once("\r\n\r\n").expect("body").1;
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert!(
            v["detail"]
                .as_str()
                .expect("detail")
                .contains("method FOO is not implemented"),
            "{v}"
        );
        assert!(res.contains(&format!("content-length: {}\r\n", body.len())));
        // On a route's path it is a method that route does not take: 405 with Allow.
        let res = String::from_utf8(refusal("QUERY", "/calls?status=queued")).expect("utf8");
        assert!(
            res.starts_with("HTTP/1.1 405 Method Not Allowed\r\nallow: GET, HEAD\r\n"),
            "{res}"
        );
        assert!(res.contains("method QUERY is not allowed on /calls"), "{res}");
    }
}
