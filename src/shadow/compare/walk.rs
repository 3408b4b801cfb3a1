//! Two JSON bodies walked side by side under a route's rules (CONTRACT section 8): objects by
//! key, arrays by index unless `unordered` makes them multisets, numbers exactly unless a
//! `tolerance` applies, and nothing at all where `ignore` says so.

use std::collections::{BTreeMap, HashMap};

use super::decimal::{same_number, within, Decimal};
use super::json::{full, quote, render, shorten, write, Json};
use super::pointer::{reported, At};
use super::{Difference, Kind, Location, Rules, EXAMPLE_CHARS};

/// Where differences go: at most `cap` are kept, and one more sets `more` and ends the walk.
#[derive(Debug)]
pub(super) struct Sink {
    pub(super) found: Vec<Difference>,
    cap: usize,
    pub(super) more: bool,
}

impl Sink {
    pub(super) fn new(cap: usize) -> Sink {
        Sink {
            found: Vec::new(),
            cap,
            more: false,
        }
    }

    /// The difference is built only when it is kept, so a probe renders no examples.
    pub(super) fn add(&mut self, difference: impl FnOnce() -> Difference) {
        if self.found.len() < self.cap {
            self.found.push(difference());
        } else {
            self.more = true;
        }
    }

    fn full(&self) -> bool {
        self.more
    }
}

/// Pairwise comparisons one multiset may make among elements that differ only in numbers under
/// a `tolerance`; past it, the elements left over count as unmatched.
const MAX_PROBES: usize = 1 << 20;

/// Every difference between the primary's body `a` and the shadow's `b`.
pub(super) fn diff(rules: &Rules, a: &Json, b: &Json, sink: &mut Sink) {
    walk(rules, &mut Vec::new(), a, b, sink);
}

fn walk<'a>(rules: &Rules, path: &mut Vec<At<'a>>, a: &'a Json, b: &'a Json, sink: &mut Sink) {
    if sink.full() || rules.is_ignored(path) {
        return;
    }
    match (a, b) {
        (Json::Object(x), Json::Object(y)) => objects(rules, path, x, y, sink),
        (Json::Array(x), Json::Array(y)) if rules.is_unordered(path) => {
            multiset(rules, path, x, y, sink)
        }
        (Json::Array(x), Json::Array(y)) => {
            for i in 0..x.len().max(y.len()) {
                if sink.full() {
                    return;
                }
                path.push(At::Index(i));
                side_by_side(rules, path, x.get(i), y.get(i), sink);
                path.pop();
            }
        }
        (Json::Number(x), Json::Number(y)) => {
            let tolerated = || rules.tolerance_at(path).is_some_and(|t| within(x, y, t));
            if !same_number(x, y) && !tolerated() {
                differ(path, Some(a), Some(b), sink);
            }
        }
        (Json::String(x), Json::String(y)) if x == y => {}
        (Json::Bool(x), Json::Bool(y)) if x == y => {}
        (Json::Null, Json::Null) => {}
        // Different types, strings or booleans.
        _ => differ(path, Some(a), Some(b), sink),
    }
}

/// Members in key order: both sides' keys merged, so differences come out sorted.
fn objects<'a>(
    rules: &Rules,
    path: &mut Vec<At<'a>>,
    x: &'a BTreeMap<String, Json>,
    y: &'a BTreeMap<String, Json>,
    sink: &mut Sink,
) {
    let (mut xs, mut ys) = (x.iter().peekable(), y.iter().peekable());
    while !sink.full() {
        let order = match (xs.peek(), ys.peek()) {
            (None, None) => return,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((kx, _)), Some((ky, _))) => kx.cmp(ky),
        };
        let step = match order {
            std::cmp::Ordering::Less => xs.next().map(|(k, v)| (k, Some(v), None)),
            std::cmp::Ordering::Greater => ys.next().map(|(k, v)| (k, None, Some(v))),
            std::cmp::Ordering::Equal => xs
                .next()
                .zip(ys.next())
                .map(|((k, v), (_, w))| (k, Some(v), Some(w))),
        };
        let Some((key, a, b)) = step else { return };
        path.push(At::Key(key));
        side_by_side(rules, path, a, b, sink);
        path.pop();
    }
}

/// A member or element that may be missing on one side; missing and present differ unless the
/// path is ignored.
fn side_by_side<'a>(
    rules: &Rules,
    path: &mut Vec<At<'a>>,
    a: Option<&'a Json>,
    b: Option<&'a Json>,
    sink: &mut Sink,
) {
    match (a, b) {
        (Some(a), Some(b)) => walk(rules, path, a, b, sink),
        _ if rules.is_ignored(path) => {}
        _ => differ(path, a, b, sink),
    }
}

fn differ(path: &[At<'_>], a: Option<&Json>, b: Option<&Json>, sink: &mut Sink) {
    sink.add(|| Difference {
        at: location(path),
        kind: Kind::Differs,
        primary: a.map(|v| render(v, EXAMPLE_CHARS)),
        shadow: b.map(|v| render(v, EXAMPLE_CHARS)),
    });
}

/// A difference at the root of the document is one of the whole body.
fn location(path: &[At<'_>]) -> Location {
    if path.is_empty() {
        Location::Body
    } else {
        Location::Json(reported(path))
    }
}

/// An `unordered` array: a multiset of elements, each compared under the same rules. Elements
/// are grouped by a canonical key first (equal elements always share one), so matching is
/// linear unless a tolerance makes elements with one key unequal.
fn multiset<'a>(
    rules: &Rules,
    path: &mut Vec<At<'a>>,
    x: &'a [Json],
    y: &'a [Json],
    sink: &mut Sink,
) {
    path.push(At::Member);
    if rules.is_ignored(path) {
        path.pop();
        return;
    }
    let mut groups: HashMap<String, Group<'a>> = HashMap::new();
    for (side, elements) in [x, y].into_iter().enumerate() {
        for (i, v) in elements.iter().enumerate() {
            let mut k = String::new();
            let fuzzy = key(rules, path, v, &mut k);
            let group = groups.entry(k).or_default();
            group.sides[side].push((i, v));
            group.fuzzy |= fuzzy;
        }
    }
    let (mut only_x, mut only_y) = (Vec::new(), Vec::new());
    let mut probes = 0;
    for Group {
        sides: [xs, ys],
        fuzzy,
    } in groups.into_values()
    {
        if !fuzzy {
            // Same key, no tolerance: the elements are equal, so only the counts can differ.
            only_x.extend(xs.iter().skip(ys.len()));
            only_y.extend(ys.iter().skip(xs.len()));
            continue;
        }
        let mut used = vec![false; ys.len()];
        for (i, a) in xs {
            let found = (0..ys.len()).find(|&j| {
                !used[j] && probes < MAX_PROBES && {
                    probes += 1;
                    equal(rules, path, a, ys[j].1)
                }
            });
            match found {
                Some(j) => used[j] = true,
                None => only_x.push((i, a)),
            }
        }
        only_y.extend(ys.iter().zip(&used).filter(|(_, u)| !**u).map(|(e, _)| e));
    }
    path.pop();
    if only_x.is_empty() && only_y.is_empty() {
        return;
    }
    sink.add(|| Difference {
        at: location(path),
        kind: Kind::Multiset,
        primary: Some(list(only_x)),
        shadow: Some(list(only_y)),
    });
}

/// The elements of both sides (primary first) that share one key, with their indices.
#[derive(Default)]
struct Group<'a> {
    sides: [Vec<(usize, &'a Json)>; 2],
    /// The key left out a number under a tolerance: elements must still be compared.
    fuzzy: bool,
}

fn equal<'a>(rules: &Rules, path: &mut Vec<At<'a>>, a: &'a Json, b: &'a Json) -> bool {
    let mut probe = Sink::new(0);
    walk(rules, path, a, b, &mut probe);
    !probe.more
}

/// The elements found on one side only, in their order, as a JSON array.
fn list(mut elements: Vec<(usize, &Json)>) -> String {
    elements.sort_by_key(|(i, _)| *i);
    let mut out = String::from("[");
    for (n, (_, v)) in elements.iter().enumerate() {
        if full(&out, EXAMPLE_CHARS) {
            break;
        }
        if n > 0 {
            out.push(',');
        }
        write(&mut out, v, EXAMPLE_CHARS);
    }
    out.push(']');
    shorten(&out, EXAMPLE_CHARS)
}

/// Writes a canonical text of `value` under the rules at `path`: values the walk finds equal
/// get the same text, and equal texts mean equal values unless a number under a tolerance was
/// left out (then it returns true, and the values must still be compared).
fn key<'a>(rules: &Rules, path: &mut Vec<At<'a>>, value: &'a Json, out: &mut String) -> bool {
    match value {
        Json::Null => out.push('n'),
        Json::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Json::String(s) => quote(out, s),
        Json::Number(_) if rules.tolerance_at(path).is_some() => {
            out.push('~');
            return true;
        }
        Json::Number(text) => {
            out.push('#');
            match Decimal::parse(text) {
                Some(d) => out.push_str(&d.to_string()),
                None => out.push_str(text),
            }
        }
        Json::Array(items) if rules.is_unordered(path) => {
            path.push(At::Member);
            let mut fuzzy = false;
            let mut keys = Vec::new();
            if !rules.is_ignored(path) {
                for item in items {
                    let mut k = String::new();
                    fuzzy |= key(rules, path, item, &mut k);
                    keys.push(k);
                }
            }
            path.pop();
            keys.sort();
            out.push('<');
            out.push_str(&keys.join(","));
            out.push('>');
            return fuzzy;
        }
        Json::Array(items) => {
            let entries = items.iter().enumerate().map(|(i, v)| (At::Index(i), v));
            return container(rules, path, '[', entries, out);
        }
        Json::Object(members) => {
            let entries = members.iter().map(|(k, v)| (At::Key(k), v));
            return container(rules, path, '{', entries, out);
        }
    }
    false
}

/// The members or elements that are not ignored, each with its key or index.
fn container<'a>(
    rules: &Rules,
    path: &mut Vec<At<'a>>,
    open: char,
    entries: impl Iterator<Item = (At<'a>, &'a Json)>,
    out: &mut String,
) -> bool {
    let mut fuzzy = false;
    out.push(open);
    for (at, v) in entries {
        path.push(at);
        if !rules.is_ignored(path) {
            match at {
                At::Key(k) => quote(out, k),
                At::Index(i) => out.push_str(&i.to_string()),
                At::Member => {}
            }
            out.push(':');
            fuzzy |= key(rules, path, v, out);
            out.push(',');
        }
        path.pop();
    }
    out.push(if open == '[' { ']' } else { '}' });
    fuzzy
}
