//! Properties over generated JSON (issue 11): a value always equals itself however it is written
//! (key order, whitespace, number spelling, string escapes, content-encoding), and any single
//! changed leaf is reported at exactly its path and nowhere else.

use std::fmt::Write as _;

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

use super::decode::tests::encode;
use super::*;

/// A generated JSON value. Numbers are ±`digits` × 10^`exp` (`digits` without a leading zero,
/// empty for zero) so that they can be spelled many ways; object keys are unique.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Null,
    Bool(bool),
    Num {
        negative: bool,
        digits: String,
        exp: i32,
    },
    Str(String),
    Arr(Vec<V>),
    Obj(Vec<(String, V)>),
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..6).prop_map(String::from_iter)
}

fn value() -> impl Strategy<Value = V> {
    let number =
        (any::<bool>(), "([1-9][0-9]{0,24})?", -40i32..40).prop_map(|(negative, digits, exp)| {
            V::Num {
                negative,
                digits,
                exp,
            }
        });
    let leaf = prop_oneof![
        Just(V::Null),
        any::<bool>().prop_map(V::Bool),
        number,
        text().prop_map(V::Str),
    ];
    let key = prop_oneof![
        "[a-c]{1,2}".boxed(),
        "[0-9]".boxed(),
        Just("a/b~c".to_string()).boxed(),
        Just(String::new()).boxed(),
        text().boxed(),
    ];
    leaf.prop_recursive(4, 40, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(V::Arr),
            prop::collection::btree_map(key.clone(), inner, 0..5)
                .prop_map(|m| V::Obj(m.into_iter().collect())),
        ]
    })
}

/// Writes values as JSON, choosing at random among equivalent spellings.
struct Writer {
    rng: fastrand::Rng,
    out: String,
}

impl Writer {
    fn text(seed: u64, v: &V) -> String {
        let mut w = Writer {
            rng: fastrand::Rng::with_seed(seed),
            out: String::new(),
        };
        w.value(v);
        w.space();
        w.out
    }

    fn space(&mut self) {
        let ws = ["", "", " ", "\n  ", "\t", "\r\n"];
        let pick = self.rng.usize(..ws.len());
        self.out.push_str(ws[pick]);
    }

    fn value(&mut self, v: &V) {
        self.space();
        match v {
            V::Null => self.out.push_str("null"),
            V::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            V::Num {
                negative,
                digits,
                exp,
            } => self.number(*negative, digits, *exp),
            V::Str(s) => self.string(s),
            V::Arr(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.space();
                        self.out.push(',');
                    }
                    self.value(item);
                }
                self.space();
                self.out.push(']');
            }
            V::Obj(members) => {
                let mut order: Vec<usize> = (0..members.len()).collect();
                self.rng.shuffle(&mut order);
                self.out.push('{');
                for (n, i) in order.into_iter().enumerate() {
                    if n > 0 {
                        self.space();
                        self.out.push(',');
                    }
                    self.space();
                    self.string(&members[i].0);
                    self.space();
                    self.out.push(':');
                    self.value(&members[i].1);
                }
                self.space();
                self.out.push('}');
            }
        }
    }

    /// ±`digits` × 10^`exp` with trailing zeros added, the point anywhere, leading zeros after
    /// a `0.`, and any exponent spelling: `100`, `1e2`, `100.0`, `0.0100E+4`.
    fn number(&mut self, negative: bool, digits: &str, exp: i32) {
        if negative {
            self.out.push('-');
        }
        if digits.is_empty() {
            let zeros = ["0", "0.0", "0e5", "0.000E-3"];
            let pick = self.rng.usize(..zeros.len());
            self.out.push_str(zeros[pick]);
            return;
        }
        let pad = self.rng.usize(0..3);
        let all = format!("{digits}{}", "0".repeat(pad));
        let point = self.rng.usize(0..=all.len());
        let (int, frac) = all.split_at(point);
        let lead = if int.is_empty() {
            self.rng.usize(0..3)
        } else {
            0
        };
        let frac = format!("{}{frac}", "0".repeat(lead));
        let exponent = i64::from(exp) - pad as i64 + frac.len() as i64;
        self.out.push_str(if int.is_empty() { "0" } else { int });
        if !frac.is_empty() {
            let _ = write!(self.out, ".{frac}");
        } else if self.rng.bool() {
            self.out.push_str(".0");
        }
        if exponent != 0 || self.rng.bool() {
            self.out.push(if self.rng.bool() { 'e' } else { 'E' });
            if exponent >= 0 && self.rng.bool() {
                self.out.push('+');
            }
            let _ = write!(self.out, "{exponent}");
        }
    }

    /// Each character as itself where JSON allows, or escaped: `\uXXXX` (a surrogate pair past
    /// U+FFFF, hex in either case), or its short escape.
    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            let short = match c {
                '"' => Some("\\\""),
                '\\' => Some("\\\\"),
                '/' => Some("\\/"),
                '\n' => Some("\\n"),
                '\t' => Some("\\t"),
                '\r' => Some("\\r"),
                '\u{8}' => Some("\\b"),
                '\u{c}' => Some("\\f"),
                _ => None,
            };
            let must = matches!(c, '"' | '\\') || u32::from(c) < 0x20;
            match self.rng.u8(0..3) {
                0 if !must => self.out.push(c),
                1 if short.is_some() => self.out.push_str(short.unwrap_or_default()),
                _ => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        let _ = if self.rng.bool() {
                            write!(self.out, "\\u{unit:04x}")
                        } else {
                            write!(self.out, "\\u{unit:04X}")
                        };
                    }
                }
            }
        }
        self.out.push('"');
    }
}

/// One step of a generated value's path.
#[derive(Debug, Clone)]
enum Go {
    Key(String),
    Index(usize),
}

/// Every node of `v` with its path, root first.
fn nodes<'v>(v: &'v V, path: &mut Vec<Go>, out: &mut Vec<(Vec<Go>, &'v V)>) {
    out.push((path.clone(), v));
    let children: Vec<(Go, &V)> = match v {
        V::Arr(items) => items
            .iter()
            .enumerate()
            .map(|(i, x)| (Go::Index(i), x))
            .collect(),
        V::Obj(members) => members
            .iter()
            .map(|(k, x)| (Go::Key(k.clone()), x))
            .collect(),
        _ => Vec::new(),
    };
    for (go, child) in children {
        path.push(go);
        nodes(child, path, out);
        path.pop();
    }
}

/// `v` with the node at `path` replaced by `new`, or removed when `new` is `None` (a member).
fn edit(v: &V, path: &[Go], new: &Option<V>) -> Option<V> {
    let Some((first, rest)) = path.split_first() else {
        return new.clone();
    };
    Some(match (v, first) {
        (V::Arr(items), Go::Index(i)) => {
            let mut items = items.clone();
            if let Some(changed) = edit(&items[*i], rest, new) {
                items[*i] = changed;
            }
            V::Arr(items)
        }
        (V::Obj(members), Go::Key(k)) => V::Obj(
            members
                .iter()
                .filter_map(|(key, x)| match key == k {
                    true => edit(x, rest, new).map(|x| (key.clone(), x)),
                    false => Some((key.clone(), x.clone())),
                })
                .collect(),
        ),
        _ => v.clone(),
    })
}

/// A different value for a node: each leaf changed within its type, or to or from null.
fn changed(v: &V, to_null: bool) -> V {
    match v {
        V::Null => V::Bool(false),
        _ if to_null => V::Null,
        V::Bool(b) => V::Bool(!b),
        V::Num {
            negative,
            digits,
            exp,
        } => V::Num {
            negative: *negative,
            digits: format!("{digits}1"),
            exp: *exp,
        },
        V::Str(s) => V::Str(format!("{s}x")),
        V::Arr(_) | V::Obj(_) => V::Null,
    }
}

fn pointer(path: &[Go]) -> String {
    if path.is_empty() {
        return "body".to_string();
    }
    path.iter()
        .map(|go| match go {
            Go::Key(k) => format!("/{}", k.replace('~', "~0").replace('/', "~1")),
            Go::Index(i) => format!("/{i}"),
        })
        .collect()
}

fn compare_json(a: &[u8], b: &[u8], coding: &str, rules: &Rules) -> Comparison {
    let plain =
        HeaderMap::from_iter([(CONTENT_TYPE, HeaderValue::from_static("application/json"))]);
    let mut encoded = plain.clone();
    let mut body = b.to_vec();
    if !coding.is_empty() {
        encoded.insert(
            http::header::CONTENT_ENCODING,
            HeaderValue::from_str(coding).unwrap(),
        );
        body = encode(coding, b);
    }
    let answer = |headers, body| Answer {
        status: 200,
        headers,
        body,
    };
    compare(&answer(&plain, a), &answer(&encoded, &body), rules)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(crate::fuzz_cases()))]

    #[test]
    fn prop_a_value_equals_itself_however_it_is_written(
        v in value(),
        seeds in any::<(u64, u64)>(),
        coding in prop::sample::select(vec!["", "", "gzip", "deflate", "br"]),
    ) {
        let (a, b) = (Writer::text(seeds.0, &v), Writer::text(seeds.1, &v));
        let c = compare_json(a.as_bytes(), b.as_bytes(), coding, &Rules::default());
        prop_assert!(c.is_match(), "{a}\n{b}\n{c:?}");
    }

    #[test]
    fn prop_a_changed_leaf_is_reported_at_its_path_and_nowhere_else(
        v in value(),
        pick in any::<prop::sample::Index>(),
        how in 0u8..3,
        seeds in any::<(u64, u64)>(),
    ) {
        let mut all = Vec::new();
        nodes(&v, &mut Vec::new(), &mut all);
        let (path, node) = pick.get(&all).clone();
        let in_object = matches!(path.last(), Some(Go::Key(_)));
        let new = match how {
            2 if in_object => None,
            _ => Some(changed(node, how == 1)),
        };
        let Some(w) = edit(&v, &path, &new) else {
            return Ok(());
        };
        let (a, b) = (Writer::text(seeds.0, &v), Writer::text(seeds.1, &w));
        let c = compare_json(a.as_bytes(), b.as_bytes(), "", &Rules::default());
        let reported: Vec<String> = c.differences.iter().map(|d| d.at.to_string()).collect();
        prop_assert_eq!(reported, vec![pointer(&path)], "{}\n{}", a, b);
        prop_assert_eq!(c.differences[0].shadow.is_none(), new.is_none());
    }

    #[test]
    fn prop_an_unordered_array_equals_any_permutation_of_itself(
        items in prop::collection::vec(value(), 0..6),
        seeds in any::<(u64, u64)>(),
        extra in value(),
    ) {
        let rules = Rules { unordered: vec![Pattern::parse("").unwrap()], ..Rules::default() };
        let mut shuffled = items.clone();
        fastrand::Rng::with_seed(seeds.1).shuffle(&mut shuffled);
        let a = Writer::text(seeds.0, &V::Arr(items.clone()));
        let b = Writer::text(seeds.1, &V::Arr(shuffled.clone()));
        let c = compare_json(a.as_bytes(), b.as_bytes(), "", &rules);
        prop_assert!(c.is_match(), "{a}\n{b}\n{c:?}");

        shuffled.push(extra);
        let b = Writer::text(seeds.1, &V::Arr(shuffled));
        let c = compare_json(a.as_bytes(), b.as_bytes(), "", &rules);
        let reported: Vec<String> = c.differences.iter().map(|d| d.at.to_string()).collect();
        prop_assert_eq!(reported, vec!["body".to_string()], "one more element: {}", b);
        prop_assert_eq!(c.differences[0].kind, Kind::Multiset);
    }
}
