//! Path normalisation: the bypasses the hardening issue found, and properties over generated
//! paths (idempotence; the forwarded path matches what the request matched).

use proptest::prelude::*;

use super::*;

fn n(path: &str) -> Result<(String, String), PathError> {
    normalize(path, false).map(|p| (p.forward.into_owned(), p.matching.into_owned()))
}

fn same(path: &str) -> String {
    let (forward, matching) = n(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(forward, matching, "{path}");
    forward
}

#[test]
fn the_bypasses_of_the_hardening_issue_all_become_the_admin_path() {
    for p in [
        "/public/../admin/x",
        "/public/%2e%2e/admin/x",
        "/public/%2E%2E/admin/x",
        "//admin/x",
        "/./admin/x",
        "/%61dmin/x",
        "/admin//x",
        "/admin/./x",
    ] {
        assert_eq!(same(p), "/admin/x", "{p}");
    }
}

#[test]
fn encoded_slashes_nuls_bad_escapes_and_climbing_out_are_refused() {
    assert_eq!(n("/admin%2fx"), Err(PathError::EncodedSlash));
    assert_eq!(n("/public/..%2fadmin"), Err(PathError::EncodedSlash));
    assert_eq!(n("/a%5Cb"), Err(PathError::EncodedSlash));
    assert_eq!(n("/api/orders/..\\..\\admin"), Err(PathError::Backslash));
    assert_eq!(n("/a\\b"), Err(PathError::Backslash));
    assert_eq!(n("/a%00b"), Err(PathError::Nul));
    assert_eq!(n("/a%zz"), Err(PathError::BadEscape));
    assert_eq!(n("/a%4"), Err(PathError::BadEscape));
    assert_eq!(n("/../etc/passwd"), Err(PathError::AboveRoot));
    assert_eq!(n("/a/../../b"), Err(PathError::AboveRoot));
    assert_eq!(n("admin/x"), Err(PathError::NotAbsolute));
    // Allowed by the table: kept encoded, never decoded into a separator.
    let kept = normalize("/admin%2fx", true).unwrap();
    assert_eq!(kept.forward, "/admin%2Fx");
}

#[test]
fn parameters_are_ignored_for_matching_and_forwarded() {
    let (forward, matching) = n("/admin;jsessionid=1/y").unwrap();
    assert_eq!(forward, "/admin;jsessionid=1/y");
    assert_eq!(matching, "/admin/y");
    // Tomcat reads "..;" as "..": so does ficus.
    assert_eq!(n("/public/..;x/admin").unwrap().1, "/admin");
}

#[test]
fn other_escapes_stay_encoded_with_upper_case_hex_and_trailing_slashes_stay() {
    assert_eq!(same("/a%20b/c%3f"), "/a%20b/c%3F");
    assert_eq!(same("/a/b/"), "/a/b/");
    assert_eq!(same("/a/b/."), "/a/b/");
    assert_eq!(same("/a/b/.."), "/a/");
    assert_eq!(same("/"), "/");
    assert_eq!(same("/caf%C3%A9"), "/caf%C3%A9");
}

#[test]
fn a_normal_path_is_borrowed_not_copied() {
    let p = normalize("/api/orders/42", false).unwrap();
    assert!(matches!(p.forward, Cow::Borrowed(_)));
    assert!(matches!(p.matching, Cow::Borrowed(_)));
}

/// Paths built from the pieces that matter: names, dots, empty segments, escapes of unreserved
/// and reserved characters, parameters.
fn path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("a".to_string()),
        Just("admin".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just(String::new()),
        Just("%2e".to_string()),
        Just("%2E%2e".to_string()),
        Just("%61b".to_string()),
        Just("x%20y".to_string()),
        Just("p;q=1".to_string()),
        Just("~_-.".to_string()),
        "[a-z]{1,3}",
    ];
    prop::collection::vec(segment, 0..8).prop_map(|segs| format!("/{}", segs.join("/")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases()))]

    #[test]
    fn prop_normalising_twice_changes_nothing(p in path()) {
        if let Ok(once) = normalize(&p, false) {
            let twice = normalize(&once.forward, false).expect("a normal path normalises");
            prop_assert_eq!(&twice.forward, &once.forward);
            prop_assert_eq!(&twice.matching, &once.matching);
        }
    }

    #[test]
    fn prop_a_normalised_path_has_no_dot_or_empty_segments(p in path()) {
        if let Ok(once) = normalize(&p, false) {
            let inner = once.matching.trim_end_matches('/');
            prop_assert!(inner.is_empty() || inner.split('/').skip(1).all(|s| !s.is_empty() && s != "." && s != ".."));
        }
    }

    #[test]
    fn prop_the_forwarded_path_matches_the_route_the_request_matched(p in path()) {
        if let Ok(once) = normalize(&p, false) {
            let again = normalize(&once.forward, false).expect("a normal path normalises");
            prop_assert_eq!(route_of(&once.matching), route_of(&again.matching));
        }
    }
}

/// The route a GET of `path` matches in a small table with prefix, exact, template and regex
/// routes.
fn route_of(path: &str) -> Option<usize> {
    use std::sync::LazyLock;
    static TABLE: LazyLock<crate::routing::RouteTable> = LazyLock::new(|| {
        crate::config::load_str(
            "[proxy]\ndefault = \"l\"\n[upstreams.l]\nurl = \"http://127.0.0.1:1\"\n\
             [[routes]]\nname = \"admin\"\npath = \"/admin/*\"\nupstream = \"l\"\n\
             [[routes]]\nname = \"exact\"\npath = \"/a/ab\"\nupstream = \"l\"\n\
             [[routes]]\nname = \"tpl\"\npath = \"/a/{id}/admin\"\nupstream = \"l\"\n\
             [[routes]]\nname = \"re\"\npath_regex = \"^/x%20y(/.*)?$\"\nupstream = \"l\"\n",
            "t.toml",
        )
        .expect("the test table loads")
    });
    let headers = http::HeaderMap::new();
    let head = crate::routing::RequestHead {
        method: &http::Method::GET,
        path,
        query: None,
        headers: &headers,
        client_ip: None,
    };
    TABLE.decide(&head).route
}
