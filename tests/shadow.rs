//! Shadow traffic with real upstreams on loopback: what is mirrored, what the shadow receives,
//! what is compared and counted, and that a slow, hanging or dead shadow changes nothing for the
//! client (CONTRACT sections 2, 4, 5, 7 and 8).

#[path = "support/admin.rs"]
mod admin_support;
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use admin_support::{eventually, with_urls, Served};
use serde_json::Value;
use support::{closed_url, Answer, Upstream};

const TABLE: &str = r#"[proxy]
default = "legacy"

[upstreams.legacy]
url = "${legacy}"

[upstreams.shadow]
url = "${shadow}"

[[routes]]
name = "items"
path = "/items/*"
upstream = "legacy"

  [routes.shadow]
  upstream = "shadow"
  ignore_headers = ["x-served-by"]
"#;

/// The route's entry in `GET /api/shadow` once `done` sampled requests have an outcome.
async fn report_after(ficus: &Served, done: u64) -> Value {
    eventually("the shadow outcomes", || async {
        let report = ficus.admin_json("/api/shadow").await;
        let r = report["routes"]["items"].clone();
        let total: u64 = ["compared", "errors", "skipped", "dropped"]
            .iter()
            .map(|k| r[k].as_u64().unwrap_or(0))
            .sum();
        if total >= done {
            Ok(r)
        } else {
            Err(r.to_string())
        }
    })
    .await
}

async fn start(table: &str, upstreams: &[&Upstream]) -> Served {
    Served::start(&with_urls(table, upstreams)).await
}

#[tokio::test]
async fn a_mirrored_request_carries_the_marker_and_the_request_id_and_equal_answers_match() {
    let legacy = Upstream::builder("legacy")
        .app(|_| Answer::json(r#"{"id": 7, "tags": ["a", "b"], "price": 100}"#))
        .start()
        .await;
    // The same value, spelled differently: key order, whitespace, number spelling.
    let shadow = Upstream::builder("shadow")
        .app(|_| Answer::json(r#"{"price":1e2,"tags":["a","b"],"id":7}"#))
        .start()
        .await;
    let ficus = start(TABLE, &[&legacy, &shadow]).await;

    let resp = ficus.get("/items/./7?full=1").await;
    assert_eq!(resp.status(), 200);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(resp.headers()["x-served-by"], "legacy");
    let got = shadow.next_request().await;
    assert_eq!(got.header("x-ficus-shadow"), Some("1"));
    assert_eq!(got.header("x-request-id"), Some(id.as_str()));
    // The request as the primary got it: the normalised path, the query.
    assert_eq!(got.path, "/items/7");
    assert_eq!(got.query.as_deref(), Some("full=1"));
    // The per-attempt phase ran again for the shadow upstream.
    assert_eq!(got.header("x-forwarded-for"), Some("127.0.0.1"));
    assert!(legacy
        .next_request()
        .await
        .header("x-ficus-shadow")
        .is_none());

    let r = report_after(&ficus, 1).await;
    assert_eq!(
        (r["compared"].as_u64(), r["matched"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(r["differences"], serde_json::json!([]));
    let metrics = ficus.metrics().await;
    assert_eq!(
        metrics.value(
            "ficus_shadow_total",
            &[("route", "items"), ("result", "match")]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_differing_field_is_a_mismatch_reported_at_its_generalised_path() {
    let legacy = Upstream::builder("legacy")
        .app(|_| Answer::json(r#"{"items": [{"price": 10}, {"price": 12}], "total": 22}"#))
        .start()
        .await;
    let shadow = Upstream::builder("shadow")
        .app(|_| Answer::json(r#"{"items": [{"price": 10}, {"price": 13}], "total": 22}"#))
        .start()
        .await;
    let ficus = start(TABLE, &[&legacy, &shadow]).await;

    let resp = ficus.get("/items/1").await;
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    // The client has the primary's answer, untouched.
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"items": [{"price": 10}, {"price": 12}], "total": 22}"#
    );
    let r = report_after(&ficus, 1).await;
    assert_eq!(
        (r["mismatched"].as_u64(), r["matched"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(
        r["differences"],
        serde_json::json!([{"path": "/items/*/price", "count": 1, "example": id}])
    );
}

#[tokio::test]
async fn noise_learned_from_the_primary_is_not_a_mismatch_but_a_real_difference_still_is() {
    let n = Arc::new(AtomicU64::new(0));
    let (a, b) = (n.clone(), n.clone());
    // Every answer carries a fresh nonce: two answers of legacy to the same request differ there.
    let legacy = Upstream::builder("legacy")
        .app(move |_| {
            let i = a.fetch_add(1, Ordering::SeqCst);
            Answer::json(format!(r#"{{"nonce": {i}, "price": 12}}"#))
        })
        .start()
        .await;
    let shadow = Upstream::builder("shadow")
        .app(move |seen| {
            let i = b.fetch_add(1, Ordering::SeqCst);
            // The shadow gets the price wrong on /items/2 only.
            let price = if seen.path == "/items/2" { 13 } else { 12 };
            Answer::json(format!(r#"{{"nonce": {i}, "price": {price}}}"#))
        })
        .start()
        .await;
    let table = TABLE.replace(
        "ignore_headers = [\"x-served-by\"]",
        "ignore_headers = [\"x-served-by\"]\n  learn_noise = 100",
    );
    let ficus = start(&table, &[&legacy, &shadow]).await;

    assert_eq!(ficus.get("/items/1").await.status(), 200);
    let r = report_after(&ficus, 1).await;
    assert_eq!(r["noise"], serde_json::json!(["/nonce"]));
    assert_eq!(r["matched"].as_u64(), Some(1), "{r}");

    assert_eq!(ficus.get("/items/2").await.status(), 200);
    let r = report_after(&ficus, 2).await;
    assert_eq!(r["mismatched"].as_u64(), Some(1), "{r}");
    let paths: Vec<&str> = r["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["/price"],
        "the nonce is noise, the price is not: {r}"
    );
}

#[tokio::test]
async fn a_dead_or_hanging_shadow_is_an_error_and_the_client_is_answered_meanwhile() {
    let legacy = Upstream::builder("legacy")
        .app(|_| Answer::json("{}"))
        .start()
        .await;
    // Dead: nothing listens.
    let table = TABLE.replace("${shadow}", &closed_url());
    let ficus = start(&table, &[&legacy]).await;
    assert_eq!(ficus.get("/items/1").await.status(), 200);
    let r = report_after(&ficus, 1).await;
    assert_eq!(
        (r["errors"].as_u64(), r["compared"].as_u64()),
        (Some(1), Some(0))
    );
    drop(ficus);

    // Hanging: the shadow holds the request for far longer than the test may take; the client's
    // answer comes back while it does, and the shadow's own timeout ends it as an error.
    let shadow = Upstream::builder("shadow")
        .app(|_| Answer::json("{}"))
        .delay(Duration::from_secs(3600))
        .start()
        .await;
    let table = TABLE.replace(
        "ignore_headers = [\"x-served-by\"]",
        "ignore_headers = [\"x-served-by\"]\n  timeout = \"300ms\"",
    );
    let ficus = start(&table, &[&legacy, &shadow]).await;
    assert_eq!(ficus.get("/items/1").await.status(), 200);
    shadow.next_request().await;
    let r = report_after(&ficus, 1).await;
    assert_eq!(r["errors"].as_u64(), Some(1), "{r}");
}

#[tokio::test]
async fn past_max_in_flight_a_sample_is_dropped() {
    let legacy = Upstream::builder("legacy")
        .app(|_| Answer::json("{}"))
        .start()
        .await;
    let shadow = Upstream::builder("shadow")
        .app(|_| Answer::json("{}"))
        .delay(Duration::from_secs(3600))
        .start()
        .await;
    let table = TABLE.replace(
        "ignore_headers = [\"x-served-by\"]",
        "ignore_headers = [\"x-served-by\"]\n  max_in_flight = 1",
    );
    let ficus = start(&table, &[&legacy, &shadow]).await;
    assert_eq!(ficus.get("/items/1").await.status(), 200);
    // The first copy holds the only place.
    shadow.next_request().await;
    assert_eq!(ficus.get("/items/2").await.status(), 200);
    let r = report_after(&ficus, 1).await;
    assert_eq!(r["dropped"].as_u64(), Some(1), "{r}");
    assert_eq!(shadow.hits(), 1);
}

#[tokio::test]
async fn unlisted_methods_are_not_mirrored_and_listed_writes_carry_their_body() {
    let legacy = Upstream::builder("legacy")
        .app(|_| Answer::json("{}"))
        .start()
        .await;
    let shadow = Upstream::builder("shadow")
        .app(|_| Answer::json("{}"))
        .start()
        .await;
    let ficus = start(TABLE, &[&legacy, &shadow]).await;
    // POST is not in the default methods; the GET after it is the first sample.
    let post = ficus
        .http
        .post(ficus.url("/items/1"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
    assert_eq!(ficus.get("/items/1").await.status(), 200);
    let r = report_after(&ficus, 1).await;
    assert_eq!(r["compared"].as_u64(), Some(1));
    assert_eq!(shadow.next_request().await.method, http::Method::GET);
    drop(ficus);

    let table = TABLE.replace(
        "ignore_headers = [\"x-served-by\"]",
        "ignore_headers = [\"x-served-by\"]\n  methods = [\"POST\"]",
    );
    let ficus = start(&table, &[&legacy, &shadow]).await;
    let body = "a body, streamed in one piece".repeat(100);
    let post = ficus
        .http
        .post(ficus.url("/items/1"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200);
    let got = shadow.next_request().await;
    assert_eq!(got.method, http::Method::POST);
    assert_eq!(got.body, body.as_bytes());
}

#[tokio::test]
async fn bodies_past_max_body_and_the_shadow_as_primary_are_skipped() {
    let legacy = Upstream::builder("legacy")
        .app(|_| Answer::json(format!(r#"{{"pad": "{}"}}"#, "x".repeat(4096))))
        .start()
        .await;
    let shadow = Upstream::builder("shadow")
        .app(|_| Answer::json("{}"))
        .start()
        .await;
    let table = TABLE.replace(
        "ignore_headers = [\"x-served-by\"]",
        "ignore_headers = [\"x-served-by\"]\n  max_body = \"1KiB\"",
    );
    let ficus = start(&table, &[&legacy, &shadow]).await;
    assert_eq!(ficus.get("/items/1").await.status(), 200);
    let r = report_after(&ficus, 1).await;
    assert_eq!(r["skipped"].as_u64(), Some(1), "{r}");
    drop(ficus);

    // The route's own upstream is the shadow upstream: nothing to compare it with.
    let table = TABLE.replace("upstream = \"legacy\"\n", "upstream = \"shadow\"\n");
    let ficus = start(&table, &[&legacy, &shadow]).await;
    assert_eq!(ficus.get("/items/1").await.status(), 200);
    let r = report_after(&ficus, 1).await;
    assert_eq!(r["skipped"].as_u64(), Some(1), "{r}");
    assert_eq!(shadow.hits(), 1, "only the client's request reached it");
}

#[tokio::test]
async fn mismatches_are_kept_as_redacted_samples_and_samples_and_noise_survive_a_restart() {
    let n = Arc::new(AtomicU64::new(0));
    let a = n.clone();
    let legacy = Upstream::builder("legacy")
        .app(move |_| {
            let i = a.fetch_add(1, Ordering::SeqCst);
            let mut answer = Answer::json(format!(r#"{{"nonce": {i}, "price": 12}}"#));
            answer
                .headers
                .push(("set-cookie", "session=s3cr3t".to_string()));
            answer
        })
        .start()
        .await;
    let shadow = Upstream::builder("shadow")
        .app(|_| Answer::json(r#"{"nonce": 0, "price": 13}"#))
        .start()
        .await;
    let table = TABLE.replace(
        "ignore_headers = [\"x-served-by\"]",
        "ignore_headers = [\"x-served-by\", \"set-cookie\"]\n  learn_noise = 100",
    );
    let mut ficus = start(&table, &[&legacy, &shadow]).await;
    let resp = ficus
        .http
        .get(ficus.url("/items/9?q=1"))
        .header("authorization", "Bearer top-secret")
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    report_after(&ficus, 1).await;
    let samples = eventually("the stored sample", || async {
        let v = ficus.admin_json("/api/shadow/samples?route=items").await;
        match v["samples"].as_array() {
            Some(list) if !list.is_empty() => Ok(v["samples"].clone()),
            _ => Err(v.to_string()),
        }
    })
    .await;
    let sample = &samples[0];
    assert_eq!(sample["request_id"], id.as_str());
    assert_eq!(sample["request"]["path"], "/items/9");
    assert_eq!(sample["request"]["query"], "q=1");
    assert_eq!(
        sample["request"]["headers"]["authorization"],
        serde_json::json!(["[redacted]"])
    );
    assert_eq!(
        sample["primary"]["headers"]["set-cookie"],
        serde_json::json!(["[redacted]"])
    );
    assert_eq!(sample["differences"][0]["path"], "/price");
    assert_eq!(
        sample["shadow"]["body"]["text"],
        r#"{"nonce": 0, "price": 13}"#
    );
    assert!(!sample.to_string().contains("top-secret"));
    assert!(!sample.to_string().contains("s3cr3t"));

    // Unknown or missing routes are clear errors.
    assert_eq!(
        ficus.admin_get("/api/shadow/samples?route=nope").await.0,
        404
    );
    assert_eq!(ficus.admin_get("/api/shadow/samples").await.0, 400);

    let noise = ficus.admin_json("/api/shadow").await["routes"]["items"]["noise"].clone();
    assert_eq!(noise, serde_json::json!(["/nonce"]));
    ficus.restart().await;
    // Counts restart at 0; samples and learned noise were kept in data_dir.
    let r = ficus.admin_json("/api/shadow").await["routes"]["items"].clone();
    assert_eq!(r["compared"].as_u64(), Some(0), "{r}");
    assert_eq!(r["noise"], noise, "{r}");
    let after = ficus.admin_json("/api/shadow/samples?route=items").await;
    assert_eq!(after["samples"][0]["request_id"], id.as_str());
}

#[tokio::test]
async fn a_reload_keeps_the_counts_and_forgets_noise_only_when_the_shadow_changed() {
    let n = Arc::new(AtomicU64::new(0));
    let a = n.clone();
    let legacy = Upstream::builder("legacy")
        .app(move |_| {
            Answer::json(format!(
                r#"{{"nonce": {}}}"#,
                a.fetch_add(1, Ordering::SeqCst)
            ))
        })
        .start()
        .await;
    let shadow = Upstream::builder("shadow")
        .app(|_| Answer::json(r#"{"nonce": 0}"#))
        .start()
        .await;
    let table = TABLE.replace(
        "ignore_headers = [\"x-served-by\"]",
        "ignore_headers = [\"x-served-by\"]\n  learn_noise = 100",
    );
    let ficus = start(&table, &[&legacy, &shadow]).await;
    assert_eq!(ficus.get("/items/1").await.status(), 200);
    let r = report_after(&ficus, 1).await;
    assert_eq!(r["noise"], serde_json::json!(["/nonce"]));

    // The same shadow (another route added): counts and noise stay.
    let more = format!(
        "{table}\n[[routes]]\nname = \"other\"\npath = \"/other\"\nupstream = \"legacy\"\n"
    );
    std::fs::write(
        &ficus.path,
        ficus.render(&with_urls(&more, &[&legacy, &shadow])),
    )
    .unwrap();
    assert_eq!(ficus.reload().await.0, 200);
    let r = ficus.admin_json("/api/shadow").await["routes"]["items"].clone();
    assert_eq!(
        (r["compared"].as_u64(), r["noise"].clone()),
        (Some(1), serde_json::json!(["/nonce"]))
    );

    // A changed shadow: what was learned under the old one is forgotten; the counts stay.
    let changed = more.replace(
        "learn_noise = 100",
        "learn_noise = 100\n  tolerance = { \"/total\" = 1 }",
    );
    std::fs::write(
        &ficus.path,
        ficus.render(&with_urls(&changed, &[&legacy, &shadow])),
    )
    .unwrap();
    assert_eq!(ficus.reload().await.0, 200);
    let r = ficus.admin_json("/api/shadow").await["routes"]["items"].clone();
    assert_eq!(
        (r["compared"].as_u64(), r["noise"].clone()),
        (Some(1), serde_json::json!([]))
    );
}
