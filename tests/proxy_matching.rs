//! Route matching as a client sees it: each rule of CONTRACT section 2 sends a request that
//! matches to the route's upstream (`new`) and one that does not to the default (`legacy`), and
//! the first route in file order wins when several match.

mod support;

use support::{client, who_answers, Ficus, Upstream};

/// The two upstreams every matching test uses, and ficus serving `routes` in front of them.
struct Setup {
    legacy: Upstream,
    new: Upstream,
    ficus: Ficus,
}

async fn setup(routes: &str) -> Setup {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let new = Upstream::builder("new").echo().start().await;
    let table = format!(
        r#"
[proxy]
default = "legacy"

[upstreams.legacy]
url = "${{legacy}}"

[upstreams.new]
url = "${{new}}"

{routes}
"#
    );
    let ficus = Ficus::start(&table, &[legacy.var(), new.var()]).await;
    Setup { legacy, new, ficus }
}

impl Setup {
    /// Which upstream answers a GET of `path` with these headers.
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> String {
        let mut req = client().get(self.ficus.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        who_answers(req).await
    }

    /// Asserts that each path is answered by `expected`.
    async fn expect_paths(&self, expected: &str, paths: &[&str]) {
        for path in paths {
            assert_eq!(self.get(path, &[]).await, expected, "GET {path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_path_matches_only_itself() {
    let s = setup(
        r#"
[[routes]]
name = "exact"
path = "/api/orders"
upstream = "new"
"#,
    )
    .await;
    s.expect_paths("new", &["/api/orders", "/api/orders?x=1"])
        .await;
    s.expect_paths(
        "legacy",
        &["/api/orders/", "/api/orders/7", "/api/ordersx", "/api", "/"],
    )
    .await;
    assert_eq!(s.new.hits(), 2);
    assert_eq!(s.legacy.hits(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_prefix_matches_the_prefix_and_below_but_not_a_longer_segment() {
    let s = setup(
        r#"
[[routes]]
name = "prefix"
path = "/a/b/*"
upstream = "new"
"#,
    )
    .await;
    s.expect_paths("new", &["/a/b", "/a/b/", "/a/b/x", "/a/b/x/y/z"])
        .await;
    s.expect_paths("legacy", &["/a/bc", "/a/bc/x", "/a", "/a/", "/x/a/b"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_matches_one_segment_per_parameter() {
    let s = setup(
        r#"
[[routes]]
name = "template"
path = "/a/{id}/b"
upstream = "new"
"#,
    )
    .await;
    s.expect_paths("new", &["/a/7/b", "/a/abc-def/b"]).await;
    s.expect_paths(
        "legacy",
        &["/a/7/b/c", "/a/7/8/b", "/a//b", "/a/7", "/a/7/bb"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_regex_matches_the_path_without_the_query() {
    let s = setup(
        r#"
[[routes]]
name = "versioned"
path_regex = "^/v[0-9]+/items$"
upstream = "new"
"#,
    )
    .await;
    s.expect_paths("new", &["/v1/items", "/v42/items", "/v2/items?page=3"])
        .await;
    s.expect_paths(
        "legacy",
        &["/vx/items", "/v1/items/", "/api/v1/items", "/v/items"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_restrict_a_route() {
    let s = setup(
        r#"
[[routes]]
name = "writes"
path = "/api/orders"
methods = ["POST", "PUT"]
upstream = "new"
"#,
    )
    .await;
    let c = client();
    let url = s.ficus.url("/api/orders");
    assert_eq!(who_answers(c.post(&url).body("{}")).await, "new");
    assert_eq!(who_answers(c.put(&url).body("{}")).await, "new");
    assert_eq!(who_answers(c.get(&url)).await, "legacy");
    assert_eq!(who_answers(c.delete(&url)).await, "legacy");
    assert_eq!(who_answers(c.head(&url)).await, "legacy");
}

const VERSIONED: &str = r#"
[[routes]]
name = "orders-read"
path = "/api/orders/*"
client_version = ">=2.3.0, <3"
upstream = "new"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_version_header_is_compared_by_semver_precedence() {
    let s = setup(VERSIONED).await;
    let path = "/api/orders/7";
    for (version, expected) in [
        ("2.5.0", "new"),
        ("2.3.0", "new"),
        ("2.3.1-beta.1", "new"),
        ("v2.4", "new"),
        ("3.0.0", "legacy"),
        ("2.2.9", "legacy"),
        ("2.3.0-rc.1", "legacy"),
        ("not-a-version", "legacy"),
    ] {
        let got = s.get(path, &[("x-client-version", version)]).await;
        assert_eq!(got, expected, "x-client-version: {version}");
    }
    assert_eq!(s.get(path, &[]).await, "legacy", "no version at all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_version_is_read_from_the_user_agent_when_the_header_is_absent() {
    let s = setup(&format!(
        r#"
[client_version]
header = "x-app-version"
user_agent = '^MyApp/(?<version>[0-9.]+)'
{VERSIONED}"#
    ))
    .await;
    let path = "/api/orders/7";
    assert_eq!(
        s.get(path, &[("user-agent", "MyApp/2.5 (iOS 17)")]).await,
        "new"
    );
    assert_eq!(
        s.get(path, &[("user-agent", "MyApp/3.1 (iOS 17)")]).await,
        "legacy"
    );
    assert_eq!(s.get(path, &[("user-agent", "curl/8.5.0")]).await, "legacy");
    // The configured header wins over the User-Agent.
    let both = [("x-app-version", "3.0.0"), ("user-agent", "MyApp/2.5")];
    assert_eq!(s.get(path, &both).await, "legacy");
    let both = [("x-app-version", "2.9.0"), ("user-agent", "MyApp/3.5")];
    assert_eq!(s.get(path, &both).await, "new");
    // The default header name is replaced, not added to.
    assert_eq!(
        s.get(path, &[("x-client-version", "2.5.0")]).await,
        "legacy"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_match_exactly_and_header_regex_by_pattern() {
    let s = setup(
        r#"
[[routes]]
name = "beta"
path = "/beta/*"
headers = { "x-beta" = "1" }
upstream = "new"

[[routes]]
name = "tenant"
path = "/tenant/*"
header_regex = { "x-tenant" = "^acme-[0-9]+$" }
upstream = "new"
"#,
    )
    .await;
    assert_eq!(s.get("/beta/x", &[("x-beta", "1")]).await, "new");
    assert_eq!(s.get("/beta/x", &[("X-Beta", "1")]).await, "new");
    assert_eq!(s.get("/beta/x", &[("x-beta", "10")]).await, "legacy");
    assert_eq!(s.get("/beta/x", &[("x-beta", "0")]).await, "legacy");
    assert_eq!(s.get("/beta/x", &[]).await, "legacy");
    assert_eq!(s.get("/tenant/x", &[("x-tenant", "acme-42")]).await, "new");
    assert_eq!(
        s.get("/tenant/x", &[("x-tenant", "acme-x")]).await,
        "legacy"
    );
    assert_eq!(
        s.get("/tenant/x", &[("x-tenant", "other-42")]).await,
        "legacy"
    );
    assert_eq!(s.get("/tenant/x", &[]).await, "legacy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_condition_matches_a_parameter_anywhere_in_the_query() {
    let s = setup(
        r#"
[[routes]]
name = "beta-query"
path = "/search"
query = { "beta" = "1" }
upstream = "new"
"#,
    )
    .await;
    s.expect_paths(
        "new",
        &[
            "/search?beta=1",
            "/search?q=shoes&beta=1",
            "/search?beta=%31",
        ],
    )
    .await;
    s.expect_paths(
        "legacy",
        &[
            "/search",
            "/search?beta=2",
            "/search?betax=1",
            "/search?q=beta=1",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_condition_matches_a_cookie_by_name_and_value() {
    let s = setup(
        r#"
[[routes]]
name = "beta-cookie"
path = "/app/*"
cookies = { "beta" = "1" }
upstream = "new"
"#,
    )
    .await;
    assert_eq!(s.get("/app/x", &[("cookie", "beta=1")]).await, "new");
    assert_eq!(
        s.get("/app/x", &[("cookie", "session=abc; beta=1; theme=dark")])
            .await,
        "new"
    );
    assert_eq!(s.get("/app/x", &[("cookie", "beta=0")]).await, "legacy");
    assert_eq!(s.get("/app/x", &[("cookie", "xbeta=1")]).await, "legacy");
    assert_eq!(s.get("/app/x", &[("x-beta", "1")]).await, "legacy");
    assert_eq!(s.get("/app/x", &[]).await, "legacy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_matching_route_in_file_order_wins() {
    let legacy = Upstream::builder("legacy").echo().start().await;
    let first = Upstream::builder("first").echo().start().await;
    let second = Upstream::builder("second").echo().start().await;
    // The broad route comes first, so it wins even where the second is more specific.
    let table = r#"
[proxy]
default = "legacy"

[upstreams.legacy]
url = "${legacy}"

[upstreams.first]
url = "${first}"

[upstreams.second]
url = "${second}"

[[routes]]
name = "broad"
path = "/api/*"
methods = ["GET"]
upstream = "first"

[[routes]]
name = "specific"
path = "/api/orders"
upstream = "second"

[[routes]]
name = "regex-anything"
path_regex = "^/"
headers = { "x-late" = "1" }
upstream = "second"
"#;
    let ficus = Ficus::start(table, &[legacy.var(), first.var(), second.var()]).await;
    let c = client();
    let url = ficus.url("/api/orders");
    assert_eq!(who_answers(c.get(&url)).await, "first");
    assert_eq!(
        who_answers(c.post(&url)).await,
        "second",
        "the first route does not take POST"
    );
    assert_eq!(
        who_answers(c.get(ficus.url("/api/orders")).header("x-late", "1")).await,
        "first"
    );
    assert_eq!(
        who_answers(c.get(ficus.url("/other")).header("x-late", "1")).await,
        "second"
    );
    assert_eq!(who_answers(c.get(ficus.url("/other"))).await, "legacy");
    assert_eq!((first.hits(), second.hits(), legacy.hits()), (2, 2, 1));
}
