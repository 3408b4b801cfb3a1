//! The config reader and compiler against hostile tables: a valid table, mutated the ways a
//! careless edit or an attacker would (bytes inserted, ranges cut, lines repeated), never
//! panics, and every error points inside the text.

use proptest::prelude::*;

use super::load_str;

/// A table using most sections: proxy settings, plugins, upstreams, every kind of route.
const BASE: &str = r#"[proxy]
default = "legacy"
listen = "127.0.0.1:8080"
header_timeout = "5s"
max_connections = 100
plugins = ["retired"]

[plugins.retired]
use = "respond"
status = 410
body = "gone"

[client_version]
header = "x-app-version"

[upstreams.legacy]
url = "http://127.0.0.1:9001"
read_timeout = "2s"

[upstreams.orders]
urls = ["http://127.0.0.1:9002", "http://127.0.0.1:9003"]
max_connections = 10

[[routes]]
name = "orders"
path = "/api/orders/{id}"
methods = ["GET", "POST"]
client_version = ">=2.0"
upstream = "orders"
fallback = "legacy"

[[routes]]
name = "split"
path = "/api/*"
split = { orders = 10, legacy = 90 }
sticky = "header:x-user-id"

[[routes]]
name = "re"
path_regex = "^/v[0-9]+/items$"
upstream = "legacy"

[routes.shadow]
upstream = "orders"
percent = 5
"#;

/// Bytes that matter to TOML and to ficus's values.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[\\[\\]{}=\",.\\n#'\\\\]{1,3}",
        "[ -~]{1,8}",
        Just("\u{0}".to_string()),
        Just("é".to_string()),
        Just("(?<version>".to_string()),
        Just("999999999999999999999".to_string()),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, String),
    Cut(usize, usize),
    RepeatLine(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), fragment()).prop_map(|(at, s)| Edit::Insert(at, s)),
        (any::<usize>(), 1usize..40).prop_map(|(at, n)| Edit::Cut(at, n)),
        any::<usize>().prop_map(Edit::RepeatLine),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut t = text.to_string();
    for e in edits {
        let at = |i: usize, t: &str| {
            let mut i = i % (t.len() + 1);
            while !t.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        match e {
            Edit::Insert(i, s) => {
                let i = at(*i, &t);
                t.insert_str(i, s);
            }
            Edit::Cut(i, n) => {
                let i = at(*i, &t);
                let j = at(i + n, &t).max(i);
                t.replace_range(i..j, "");
            }
            Edit::RepeatLine(i) => {
                let lines: Vec<&str> = t.lines().collect();
                if !lines.is_empty() {
                    let line = lines[i % lines.len()].to_string();
                    let i = at(*i, &t);
                    t.insert_str(i, &format!("\n{line}\n"));
                }
            }
        }
    }
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases()))]

    #[test]
    fn prop_a_mutated_table_loads_or_is_refused_with_positions_inside_it(
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let text = apply(BASE, &edits);
        if let Err(errors) = load_str(&text, "routes.toml") {
            prop_assert!(!errors.0.is_empty());
            let lines = text.lines().count().max(1);
            for d in &errors.0 {
                prop_assert!(d.line >= 1 && d.line <= lines + 1, "{d:?} in {lines} lines");
                prop_assert!(d.column >= 1, "{d:?}");
                prop_assert!(!d.message.is_empty());
            }
        }
    }
}

#[test]
fn the_base_table_is_valid() {
    if let Err(e) = load_str(BASE, "routes.toml") {
        panic!("{}", e.lines(0).join("\n"));
    }
}
