//! Reading `routes.toml`: parse, check, compile.
//!
//! The file goes through three steps, each in its own module:
//!
//! 1. `de` has toml read the file into its own tree that keeps the span of every key and value
//!    (`toml::de::DeTable`; syntax errors stop here, with toml's own message);
//! 2. `read` deserializes each section (`[proxy]`, `[client_version]`, each upstream, each
//!    route) into the serde structs of `raw` that mirror the file, one section at a time through
//!    `de`, so an unknown key in one route does not hide a bad regex in another;
//! 3. `compile` validates everything that was read (collecting every problem, no I/O), then
//!    resolves upstream addresses and builds the immutable [`RouteTable`].
//!
//! Every problem comes back as a [`Diagnostic`] with its line and column, all of them together.

mod attach;
mod checks;
mod compile;
mod de;
mod diagnostics;
mod limits;
mod plugins;
mod proxy;
mod raw;
mod read;
mod routes;
mod shadow;
pub mod units;
mod upstreams;
mod webhook;

use std::path::Path;

pub use diagnostics::{ConfigErrors, Diagnostic, MAX_SHOWN};

use crate::routing::RouteTable;
use diagnostics::{LineIndex, Problem, Problems};

/// Reads, checks and compiles the route table in `path`.
///
/// A file that cannot be read gives one diagnostic at line 1, column 1 that says why.
pub fn load_file(path: &Path) -> Result<RouteTable, ConfigErrors> {
    let label = path.display().to_string();
    match read_table(path) {
        Ok(text) => load_str(&text, &label),
        Err(e) => Err(ConfigErrors(vec![Diagnostic {
            file: label.clone(),
            line: 1,
            column: 1,
            message: format!("cannot read {label}: {e}"),
            hint: None,
        }])),
    }
}

/// The largest route table read: a 10,000-route table is about 1 MiB.
pub const MAX_TABLE_BYTES: u64 = 64 << 20;

/// The text of the route table at `path`: a regular file of at most [`MAX_TABLE_BYTES`], UTF-8.
pub fn read_table(path: &Path) -> Result<String, String> {
    let bytes = ficus_plugin::config::read_bounded(path, MAX_TABLE_BYTES)?;
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())
}

/// Checks and compiles a route table given as text; `file_label` names it in diagnostics.
///
/// Every problem in the text is reported, in file order. Upstream addresses are resolved only
/// when everything else is valid (a name that does not resolve is reported at its url).
pub fn load_str(text: &str, file_label: &str) -> Result<RouteTable, ConfigErrors> {
    let fail = |problems: Vec<Problem>| {
        let lines = LineIndex::new(text);
        ConfigErrors(
            problems
                .into_iter()
                .map(|p| p.locate(&lines, file_label))
                .collect(),
        )
    };
    let root = de::parse(text).map_err(|p| fail(vec![p]))?;
    let mut problems = Problems::default();
    let raw = read::read(root.into_inner(), &mut problems);
    let table = compile::validate(&raw, text, &mut problems)
        .and_then(|plan| compile::build(plan, &mut problems));
    match table {
        Some(mut table) if problems.is_empty() => {
            table.version = version_of(text);
            Ok(table)
        }
        _ if problems.is_empty() => Err(fail(vec![Problem::new(
            0..0,
            "the route table could not be built",
        )])),
        _ => Err(fail(problems.into_sorted())),
    }
}

/// The 1-based line and column where `[proxy]` sets `key` in `text`, found by its span: the
/// `[proxy]` header when the key is not set there, 1:1 when there is no `[proxy]` table (or the
/// text does not parse). For errors about a table that loaded, such as a setting that cannot
/// change without a restart.
pub fn proxy_key_position(text: &str, key: &str) -> (usize, usize) {
    let offset = de::parse(text).ok().and_then(|root| {
        let proxy = root.get_ref().get("proxy")?;
        match proxy.get_ref() {
            toml::de::DeValue::Table(table) => Some(
                table
                    .iter()
                    .find(|(k, _)| k.get_ref() == key)
                    .map_or(proxy.span().start, |(k, _)| k.span().start),
            ),
            _ => Some(proxy.span().start),
        }
    });
    LineIndex::new(text).line_col(offset.unwrap_or(0))
}

/// The table's version: a hash of its text, so the same file always has the same version.
pub fn version_of(text: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

/// The one-line summary `ficus check` prints for a valid table: `ok: 12 routes, 3 upstreams`.
pub fn summary(table: &RouteTable) -> String {
    let plural = |n: usize, word: &str| {
        if n == 1 {
            format!("{n} {word}")
        } else {
            format!("{n} {word}s")
        }
    };
    format!(
        "ok: {}, {}",
        plural(table.routes.len(), "route"),
        plural(table.upstreams.len(), "upstream")
    )
}

#[cfg(test)]
#[path = "fuzz_tests.rs"]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_keys_are_located_by_their_span_however_they_are_written() {
        let text = "[upstreams.a]\nurl = \"http://x\"\n[proxy]\n  admin_token_env = \"T\"\n  admin = \"127.0.0.1:1\"\n";
        assert_eq!(proxy_key_position(text, "admin"), (5, 3));
        assert_eq!(proxy_key_position(text, "listen"), (3, 1));
        // Forms a line scan misses: a quoted key, a dotted key, an inline table.
        let quoted = "[proxy]\n\"listen\" = \"0.0.0.0:1\"\n";
        assert_eq!(proxy_key_position(quoted, "listen"), (2, 1));
        let dotted = "a = 1\nproxy.threads = 2\n";
        assert_eq!(proxy_key_position(dotted, "threads"), (2, 7));
        let inline = "proxy = { default = \"a\", threads = 2 }\n";
        assert_eq!(proxy_key_position(inline, "threads"), (1, 26));
        assert_eq!(proxy_key_position("x = 1", "listen"), (1, 1));
        assert_eq!(proxy_key_position("not toml [", "listen"), (1, 1));
    }
}
