//! The steps `ficus demo` prints: one request a line, with what it shows and which app answers
//! it, read into requests (for the tests) and curl lines (for the user).

use anyhow::Context;
use http::{HeaderMap, HeaderValue, Method};

use super::tokens::Tokens;
use crate::routing::{RequestHead, RouteTable};

/// What the demo shows, one step a line: `answered by | what it shows | METHOD path | header`.
/// `{user:SIDE}` is a user id that the split sends to SIDE; `{token:valid}` and `{token:expired}`
/// are the demo's signed tokens. `ficus NNN` means ficus itself answers, with status NNN.
const STEPS: &str = "
orders | version routing: a 2.x client reads orders from the new service | GET /api/orders/42 | x-client-version: 2.1
legacy | an older client stays on legacy | GET /api/orders/42 | x-client-version: 1.9
orders | the version can come from the User-Agent | GET /api/orders/42 | user-agent: DemoApp/2.4.0
orders | sticky 50/50 split: this user always lands on the new service; the order it creates reaches legacy as a signed webhook | POST /api/orders | x-user-id: {user:orders}
legacy | sticky 50/50 split: this user always stays on legacy (legacy's own orders send no webhook) | POST /api/orders | x-user-id: {user:legacy}
orders | opt-in beta by query parameter | GET /api/catalog/shoes?beta=1 |
orders | a JWT-checked route: the token's sub reaches the new service as x-user-id, at the service's own path /v2/account/... (rewrite) | GET /api/account/profile | authorization: Bearer {token:valid}
ficus 401 | an expired token is refused by ficus with 401 invalid_token (RFC 6750); the service never sees it | GET /api/account/profile | authorization: Bearer {token:expired}
legacy | shadowing: legacy answers, ficus compares the products service's answer to a copy | GET /api/products/42 |
legacy | the new service answers 503: ficus replays the GET to legacy | GET /api/invoices/7 |
legacy | the reports service is down: ficus falls back to legacy | GET /api/reports/daily |
legacy | no route matches: the default upstream | GET /about |
";

/// The body the demo's POST steps send.
pub const ORDER_BODY: &str = r#"{"item":"book"}"#;

/// One thing to try against the demo, and the upstream that should answer it.
#[derive(Debug, Clone)]
pub struct DemoStep {
    pub what: &'static str,
    pub method: Method,
    /// Path and query.
    pub path: &'static str,
    pub header: Option<(&'static str, String)>,
    /// [`ORDER_BODY`] for POSTs.
    pub body: Option<&'static str>,
    /// The same request as a curl command line.
    pub curl: String,
    /// `legacy` or `orders`: the `x-served-by` of the answer; `ficus` when a plugin answers.
    pub expect_served_by: &'static str,
    /// The answer's status.
    pub expect_status: u16,
}

/// [`STEPS`], read into requests, with curl lines aimed at `proxy`.
pub(super) fn steps(
    table: &RouteTable,
    proxy: &str,
    tokens: &Tokens,
) -> anyhow::Result<Vec<DemoStep>> {
    let field = |fields: &mut std::str::Split<'static, char>| fields.next().unwrap_or("").trim();
    let mut steps = Vec::new();
    for line in STEPS.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split('|');
        let (answered_by, what) = (field(&mut fields), field(&mut fields));
        let (method, path) = field(&mut fields)
            .split_once(' ')
            .with_context(|| format!("demo step {line:?}: expected `METHOD path`"))?;
        let header = match field(&mut fields).split_once(": ") {
            Some((name, value)) => {
                let value = match value.strip_prefix("{user:") {
                    Some(side) => sticky_user(table, side.trim_end_matches('}'))?,
                    None => value
                        .replace("{token:valid}", &tokens.valid)
                        .replace("{token:expired}", &tokens.expired),
                };
                Some((name, value))
            }
            None => None,
        };
        let method: Method = method
            .parse()
            .with_context(|| format!("demo step {line:?}: bad method"))?;
        let body = (method == Method::POST).then_some(ORDER_BODY);
        let (expect_served_by, expect_status) = match answered_by.split_once(' ') {
            Some((by, status)) => (
                by,
                status
                    .parse()
                    .with_context(|| format!("demo step {line:?}: bad status"))?,
            ),
            // 201 for a created order, 200 for the rest.
            None if body.is_some() => (answered_by, 201),
            None => (answered_by, 200),
        };
        let mut curl = String::from("curl -si");
        if let Some((name, value)) = &header {
            curl += &format!(" -H '{name}: {value}'");
        }
        if let Some(body) = body {
            curl += &format!(" -H 'content-type: application/json' -d '{body}'");
        }
        curl += &format!(" '{proxy}{path}'");
        steps.push(DemoStep {
            what,
            method,
            path,
            header,
            body,
            curl,
            expect_served_by,
            expect_status,
        });
    }
    Ok(steps)
}

/// The first `user-N` whose orders the split sends to `side`, found with the real routing code.
fn sticky_user(table: &RouteTable, side: &str) -> anyhow::Result<String> {
    let want = *table
        .upstream_ids
        .get(side)
        .with_context(|| format!("the demo table has no upstream {side}"))?;
    let lands_on_side = |user: &String| {
        let mut headers = HeaderMap::new();
        let Ok(value) = HeaderValue::from_str(user) else {
            return false;
        };
        headers.insert("x-user-id", value);
        let head = RequestHead {
            method: &Method::POST,
            path: "/api/orders",
            query: None,
            headers: &headers,
            client_ip: None,
        };
        table.decide(&head).upstream == want
    };
    (1..10_000)
        .map(|n| format!("user-{n}"))
        .find(lands_on_side)
        .with_context(|| format!("no demo user lands on {side}"))
}
