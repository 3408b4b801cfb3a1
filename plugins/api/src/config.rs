//! Reading a config section from toml's spanned tree, with every problem located.
//!
//! ficus reads its own sections (`[proxy]`, each upstream, each route) with these functions, and
//! a plugin kind reads its `[plugins.NAME]` section with them too ([`Section::read`]), so a
//! plugin's errors look exactly like ficus's: at the key or value, with a "did you mean".
//!
//! A section is deserialized with toml's `ValueDeserializer`, so values keep their spans
//! (`toml::Spanned`); a value of the wrong type rejects its section, reported at the value.
//! Unknown keys are reported at the key and skipped, so the rest of the section is still read.
//! They are found on the tree rather than with `serde_ignored`, because serde_ignored gives the
//! path of an ignored key but not its span (dtolnay/serde-ignored#11), and it cannot read map keys
//! deserialized as `toml::Spanned` ("non-string key"). The keys a section accepts are serde's own
//! list for its struct ([`keys_of`]), so they cannot drift from the struct.

use std::fmt;
use std::ops::Range;

use serde::de::{DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::de::{DeValue, ValueDeserializer};
use toml::Spanned;

/// A value of the file with its span.
pub type Node<'i> = Spanned<DeValue<'i>>;

/// One problem in a section, at a byte span of the file (ficus turns it into `FILE:LINE:COL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub span: Range<usize>,
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

/// What reading found: every problem, and the known keys that were probably misspelt (so a
/// "missing key" is not reported on top of the misspelling).
#[derive(Debug, Default)]
pub struct Diagnostics {
    pub errors: Vec<ConfigError>,
    /// (span of the table, the known key a key of it was probably meant as)
    pub misspelt: Vec<(Range<usize>, &'static str)>,
}

impl Diagnostics {
    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            span,
            message: message.into(),
            hint: None,
        });
    }

    pub fn hinted(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.errors.push(ConfigError {
            span,
            message: message.into(),
            hint: Some(hint.into()),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

/// The keys a section's struct accepts, and which of them hold a nested section (`shadow` in a
/// route) whose keys are checked the same way.
pub struct Shape {
    pub keys: fn() -> &'static [&'static str],
    pub nested: &'static [(&'static str, Shape)],
}

impl Shape {
    /// The shape of `T`, without nested sections.
    pub const fn of<T: DeserializeOwned>() -> Shape {
        Shape {
            keys: keys_of::<T>,
            nested: &[],
        }
    }
}

/// Deserializes one section. Its unknown keys are reported and skipped; `None` when a value has
/// the wrong type (reported at the value) and the section cannot be read.
pub fn read<T: DeserializeOwned>(
    node: Node<'_>,
    shape: &Shape,
    diags: &mut Diagnostics,
) -> Option<Spanned<T>> {
    report_unknown_keys(&node, shape, diags);
    let span = node.span();
    match Spanned::<T>::deserialize(ValueDeserializer::from(node)) {
        Ok(value) => Some(value),
        Err(e) => {
            diags.error(e.span().unwrap_or(span), one_line(e.message()));
            None
        }
    }
}

/// Reports every key of `node` (a table; anything else is left to the deserializer) that its
/// shape does not know, and remembers the known key it was probably meant as.
fn report_unknown_keys(node: &Node<'_>, shape: &Shape, diags: &mut Diagnostics) {
    let DeValue::Table(table) = node.get_ref() else {
        return;
    };
    let keys = (shape.keys)();
    for (key, value) in table.iter() {
        let name = key.get_ref().as_ref();
        if let Some((_, nested)) = shape.nested.iter().find(|(k, _)| *k == name) {
            report_unknown_keys(value, nested, diags);
        } else if !keys.contains(&name) {
            diags.errors.push(unknown_key(name, key.span(), keys));
            if let Some(meant) = closest_key(name, keys) {
                diags.misspelt.push((node.span(), meant));
            }
        }
    }
}

/// `unknown key "x"` at the key, with a hint from the keys that were expected.
pub fn unknown_key(name: &str, span: Range<usize>, expected: &[&str]) -> ConfigError {
    ConfigError {
        span,
        message: format!("unknown key {:?}", shortened(name)),
        hint: Some(unknown_key_hint(name, expected)),
    }
}

/// A name from the file as a message shows it: at most 64 characters (a hostile table can hold
/// A rate like `"100/s"`, `"6000/m"` or `"10/h"`: a count per second, minute or hour, as ficus's
/// own settings (a webhook's `rate`) and plugins (`rate_limit`) write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u64,
    /// The period the count is per, in nanoseconds.
    pub period_ns: u64,
}

impl Rate {
    pub fn per_second(self) -> f64 {
        self.count as f64 * 1e9 / self.period_ns as f64
    }

    /// The nanoseconds between two tokens, rounded to the nearest (an error of under a
    /// nanosecond per token).
    pub fn ns_per_token(self) -> u64 {
        (self.period_ns + self.count / 2) / self.count
    }
}

/// Reads a [`Rate`]: a positive count, `/`, and `s`, `m` or `h`, at most one per nanosecond.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let bad = || format!("invalid rate {text:?}");
    let (count, per) = text.trim().split_once('/').ok_or_else(bad)?;
    let count: u64 = count.trim().parse().map_err(|_| bad())?;
    let period_ns: u64 = match per.trim() {
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(bad()),
    };
    if count == 0 {
        return Err(format!("a rate of 0 lets nothing through: {text:?}"));
    }
    if count > period_ns {
        return Err(format!("{text:?} is more than one per nanosecond"));
    }
    Ok(Rate { count, period_ns })
}

/// The contents of the regular file at `path`, at most `max` bytes: a file a table names is read
/// whole when the table loads, so a FIFO (which would block the load), a device (which never
/// ends) or a huge file is refused with a message rather than read.
pub fn read_bounded(path: &std::path::Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    if meta.len() > max {
        return Err(format!("larger than {max} bytes"));
    }
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if out.len() as u64 > max {
        return Err(format!("larger than {max} bytes"));
    }
    Ok(out)
}

/// keys of megabytes).
pub fn shortened(name: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 64;
    match name.char_indices().nth(MAX) {
        None => name.into(),
        Some((cut, _)) => format!("{}...", &name[..cut]).into(),
    }
}

/// `did you mean "methods"?` when a known key is close, else the list of known keys.
pub fn unknown_key_hint(field: &str, expected: &[&str]) -> String {
    match closest_key(field, expected) {
        Some(k) => format!("did you mean {k:?}?"),
        None if expected.is_empty() => "no keys are allowed here".to_string(),
        None => format!("expected one of: {}", expected.join(", ")),
    }
}

/// The expected key `field` is probably a misspelling of: the nearest by edit distance, if it
/// is within 2 edits (or a third of the key, for long keys).
pub fn closest_key<'k>(field: &str, expected: &[&'k str]) -> Option<&'k str> {
    let limit = |k: &str| 2.max(k.len() / 3);
    expected
        .iter()
        // The distance is at least the difference in length: skip the work when that alone is
        // too far (a megabyte-long key is compared with nothing).
        .filter(|k| field.len().abs_diff(k.len()) <= limit(k))
        .map(|k| (strsim::levenshtein(field, k), *k))
        .filter(|(d, k)| *d <= limit(k))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// toml's messages can span lines ("invalid table header\nexpected `.`, `]`").
pub fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

/// A table of free-form keys (header names, upstream names, JSON Pointers) in file order, each
/// key with its span: `headers = { "x-a" = "1" }` as `KeyedList<Spanned<String>>`.
#[derive(Debug)]
pub struct KeyedList<V>(pub Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for KeyedList<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Vis<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for Vis<V> {
            type Value = KeyedList<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyedList<V>, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(KeyedList(entries))
            }
        }
        d.deserialize_map(Vis(std::marker::PhantomData))
    }
}

/// One `[plugins.NAME]` section, as its kind reads it: every key but `use`.
pub struct Section<'i> {
    name: &'i str,
    node: Node<'i>,
    upstreams: Option<Vec<String>>,
}

impl<'i> Section<'i> {
    /// The section of instance `name`; `node` is its table without the `use` key.
    pub fn new(name: &'i str, node: Node<'i>) -> Self {
        Section {
            name,
            node,
            upstreams: None,
        }
    }

    /// The same section, read as part of a table whose upstreams are `names`.
    pub fn with_upstreams(mut self, names: Vec<String>) -> Self {
        self.upstreams = Some(names);
        self
    }

    /// The names of the table's upstreams, for a kind whose keys name some (`rewrite`'s
    /// `upstreams`); `None` when the section is read on its own, as in a kind's unit tests.
    pub fn upstreams(&self) -> Option<&[String]> {
        self.upstreams.as_deref()
    }

    /// The instance's name (`auth` in `[plugins.auth]`).
    pub fn name(&self) -> &str {
        self.name
    }

    /// Where the section is, for a problem about the whole section (a key it lacks).
    pub fn span(&self) -> Range<usize> {
        self.node.span()
    }

    /// The section as `T`, a struct whose fields are the kind's keys (`toml::Spanned` where a
    /// later check must point at a value). Unknown keys and wrong types go to `diags`.
    pub fn read<T: DeserializeOwned>(self, diags: &mut Diagnostics) -> Option<T> {
        read::<T>(self.node, &Shape::of::<T>(), diags).map(Spanned::into_inner)
    }
}

/// The keys serde's derive accepts for the struct `T`: `T` is asked to deserialize itself from a
/// deserializer that only records the field list it is offered, then stops.
pub fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut keys: &'static [&'static str] = &[];
    let _ = T::deserialize(KeysProbe(&mut keys));
    keys
}

struct KeysProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for KeysProbe<'_> {
    type Error = Probed;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Probed> {
        Err(Probed)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Probed> {
        *self.0 = fields;
        Err(Probed)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

/// How [`KeysProbe`] stops a deserialization once it has seen the fields; never shown.
#[derive(Debug)]
struct Probed;

impl fmt::Display for Probed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("probed")
    }
}

impl std::error::Error for Probed {}

impl serde::de::Error for Probed {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Probed
    }
}
