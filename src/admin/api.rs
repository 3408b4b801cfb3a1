//! The JSON bodies of the admin API.

use serde_json::{json, Map, Value};

use crate::routing::{RouteTable, Target, UpstreamId, ValueMatcher};

/// `GET /api/routes`: the running table, its version and when it was loaded.
pub fn routes(table: &RouteTable) -> Value {
    let name = |id: UpstreamId| table.upstream_name(id).to_string();
    let routes: Vec<Value> = table
        .routes
        .iter()
        .map(|r| {
            let mut headers = Map::new();
            let mut header_regex = Map::new();
            for h in &r.matcher.headers {
                match &h.value {
                    ValueMatcher::Exact(v) => headers.insert(h.name.to_string(), json!(v)),
                    ValueMatcher::Regex(re) => header_regex.insert(h.name.to_string(), json!(re.as_str())),
                };
            }
            let pairs = |list: &[crate::routing::KeyValueCondition]| -> Map<String, Value> {
                list.iter().map(|c| (c.name.clone(), json!(c.value))).collect()
            };
            let (upstream, split) = match &r.action.target {
                Target::Upstream(id) => (json!(name(*id)), Value::Null),
                Target::Split(s) => (
                    Value::Null,
                    json!({
                        "weights": s.sides.iter().map(|(id, w)| (name(*id), json!(w))).collect::<Map<String, Value>>(),
                        "sticky": s.sticky.as_ref().map(|k| k.describe()),
                    }),
                ),
            };
            json!({
                "name": r.name,
                "path": r.matcher.path.source(),
                "path_is_regex": r.matcher.path.is_regex(),
                "methods": r.matcher.methods.as_ref().map(|m| m.iter().map(|m| m.as_str()).collect::<Vec<_>>()),
                "client_version": r.matcher.client_version.as_ref().map(|v| v.source()),
                "headers": headers,
                "header_regex": header_regex,
                "query": pairs(&r.matcher.query),
                "cookies": pairs(&r.matcher.cookies),
                "upstream": upstream,
                "split": split,
                "fallback": r.action.fallback.map(name),
                "fallback_unsafe": r.action.fallback_unsafe,
                "plugins": r.action.filters.plugin_names().collect::<Vec<_>>(),
                "shadow": r.action.shadow.as_ref().map(|s| json!({"upstream": name(s.upstream), "percent": s.percent})),
                "webhook": r.action.webhook.as_ref().map(|w| json!({"event": w.event, "url": w.url})),
            })
        })
        .collect();
    let upstreams: Map<String, Value> = table
        .upstreams
        .iter()
        .map(|u| {
            let endpoints = u.pool.endpoints();
            (
                u.name.clone(),
                json!({
                    "urls": u.urls.iter().map(|e| e.url.as_str()).collect::<Vec<_>>(),
                    "addresses": endpoints.iter().map(|e| e.address.as_str()).collect::<Vec<_>>(),
                    "endpoints": endpoints.iter().map(|e| json!({"address": e.address, "url": e.url, "healthy": e.healthy})).collect::<Vec<_>>(),
                    "health_check": u.options.health_check.as_ref().map(|h| json!({"path": h.path, "interval_ms": h.interval.as_millis() as u64})),
                    "max_connections": u.options.max_connections,
                    "connect_timeout_ms": u.options.connect_timeout.as_millis() as u64,
                    "read_timeout_ms": u.options.read_timeout.as_millis() as u64,
                }),
            )
        })
        .collect();
    json!({
        "version": table.version,
        "loaded_at": crate::reload::rfc3339(table.loaded_at),
        "default": name(table.default_upstream),
        "routes": routes,
        "upstreams": upstreams,
    })
}

/// Decodes `application/x-www-form-urlencoded` pairs (`+` is a space, `%XX` a byte).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_are_decoded() {
        let pairs = query_pairs("method=GET&url=%2Fapi%2Forders%3Fa%3D1&header=x-user-id:+7&flag");
        assert_eq!(
            pairs,
            vec![
                ("method".into(), "GET".into()),
                ("url".into(), "/api/orders?a=1".into()),
                ("header".into(), "x-user-id: 7".into()),
                ("flag".into(), "".into()),
            ]
        );
        assert_eq!(
            query_pairs("a=%zz&b=%4"),
            vec![("a".into(), "%zz".into()), ("b".into(), "%4".into())]
        );
        assert_eq!(
            query_pairs("a=%\u{e9}x"),
            vec![("a".into(), "%\u{e9}x".into())]
        );
    }
}
