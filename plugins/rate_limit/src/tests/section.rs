//! A section's keys: every problem at its line and column, rates, and the defaults.

use super::*;

#[test]
fn every_problem_in_a_section_is_reported_at_its_line_and_column() {
    let text = "key = \"cookie:sid\"\nrate = \"10/d\"\nburst = 0\nmax_keys = -1\nbrust = 3\n";
    let (built, diags) = build_named("bad", text);
    assert!(built.is_none());
    let at = |needle: &str| line_col(text, text.find(needle).expect("in the text"));
    let found: Vec<((usize, usize), &str)> = diags
        .errors
        .iter()
        .map(|e| (line_col(text, e.span.start), e.message.as_str()))
        .collect();
    let expect = [
        (at("\"cookie:sid\""), "unknown key \"cookie:sid\""),
        (at("\"10/d\""), "invalid rate \"10/d\""),
        (at("0\n"), "burst = 0 is out of range"),
        (at("-1"), "max_keys = -1 is out of range"),
        (at("brust"), "unknown key \"brust\""),
    ];
    for (pos, message) in expect {
        assert!(
            found.contains(&(pos, message)),
            "{message} at {pos:?}: {found:?}"
        );
    }
    assert_eq!(found.len(), expect.len(), "{found:?}");
    let hint = |m: &str| {
        diags
            .errors
            .iter()
            .find(|e| e.message.contains(m))
            .and_then(|e| e.hint.clone())
    };
    assert_eq!(hint("brust").as_deref(), Some("did you mean \"burst\"?"));
    assert!(hint("cookie").is_some_and(|h| h.contains("header:NAME")));
    assert!(hint("10/d").is_some_and(|h| h.contains("\"100/s\"")));
}

#[test]
fn a_missing_rate_a_bad_header_name_and_an_empty_claim_are_refused() {
    let (built, diags) = build_named("no-rate", "key = \"ip\"");
    assert!(built.is_none());
    assert_eq!(diags.errors.len(), 1);
    assert!(diags.errors[0].message.contains("has no `rate`"));

    let text = "key = \"header:bad name\"\nrate = \"1/s\"";
    let (_, diags) = build_named("bad-header", text);
    assert_eq!(diags.errors[0].span.start, text.find("\"header").unwrap());
    assert!(diags.errors[0].message.contains("not a header name"));

    let (_, diags) = build_named("empty-claim", "key = \"claim:\"\nrate = \"1/s\"");
    assert!(diags.errors[0].message.contains("claim's name"));

    let (_, diags) = build_named("wrong-type", "rate = 100");
    assert_eq!(diags.errors.len(), 1, "{:?}", diags.errors);
}

#[test]
fn rates_are_a_count_per_second_minute_or_hour() {
    use config::parse_rate;
    assert_eq!(parse_rate("100/s"), Ok((100, 10_000_000)));
    assert_eq!(parse_rate("6000/m"), Ok((6000, 10_000_000)));
    assert_eq!(parse_rate(" 1 / h "), Ok((1, 3600 * SECOND)));
    assert_eq!(parse_rate("3/s"), Ok((3, 333_333_333)));
    for bad in [
        "",
        "100",
        "0/s",
        "-1/s",
        "1.5/s",
        "10/d",
        "x/s",
        "2000000000/s",
    ] {
        assert!(parse_rate(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn burst_defaults_to_the_rates_count_and_max_keys_to_100000() {
    let rl = build("rate = \"6000/m\"");
    let s = rl.settings.limiter;
    assert_eq!(
        (s.burst, s.max_keys, s.interval),
        (6000, 100_000, 10_000_000)
    );
    assert_eq!(rl.settings.key, KeySource::Ip);
    assert_eq!(
        rl.explain(&request(&[])).as_deref(),
        Some("6000/m per client ip, burst 6000, at most 100000 keys")
    );
}
