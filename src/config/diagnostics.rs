//! What a bad route table reports: one [`Diagnostic`] per problem, each with its line and column.
//!
//! Inside the config layer a problem is a [`Problem`]: a byte span into the file and a message.
//! Spans are turned into 1-based line and column numbers only at the end, by [`Problem::locate`]
//! against a [`LineIndex`] built once per file, so the checks never need to know about lines and
//! a table with thousands of errors is located in one pass over the text.

use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

/// One problem in a route table, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    /// `FILE:LINE:COL: message`, then `; hint` when there is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        Ok(())
    }
}

/// How many diagnostics are shown by default (`ficus run`, `ficus check`, a rejected reload);
/// a hostile table can hold hundreds of thousands.
pub const MAX_SHOWN: usize = 100;

/// Every problem found in one route table, in file order. Displayed, the first [`MAX_SHOWN`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render(MAX_SHOWN))]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl ConfigErrors {
    /// [`ConfigErrors::render`] as separate lines (for JSON and logs).
    pub fn lines(&self, max: usize) -> Vec<String> {
        let shown = if max == 0 {
            self.0.len()
        } else {
            max.min(self.0.len())
        };
        let mut out: Vec<String> = self.0[..shown].iter().map(|d| d.to_string()).collect();
        if self.0.len() > shown {
            out.push(format!("... and {} more", self.0.len() - shown));
        }
        out
    }

    /// The first `max` diagnostics, one per line, then `... and N more` when some are left out;
    /// `max` 0 renders them all.
    pub fn render(&self, max: usize) -> String {
        let shown = match max {
            0 => self.0.len(),
            max => max.min(self.0.len()),
        };
        let mut out = String::new();
        for (i, d) in self.0[..shown].iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(&d.to_string());
        }
        let left = self.0.len() - shown;
        if left > 0 {
            out.push_str(&format!("\n... and {left} more"));
        }
        out
    }
}

/// How many names a "known: ..." hint lists before `and N more`.
pub(crate) const HINT_NAMES: usize = 5;

/// `a, b, c` or, past `max` names, `a, b, c and 7 more`: a hint stays one short line however many
/// names the table has.
pub(crate) fn name_list<'a>(names: impl ExactSizeIterator<Item = &'a str>, max: usize) -> String {
    let total = names.len();
    let shown: Vec<&str> = names.take(max).collect();
    let mut list = shown.join(", ");
    if total > shown.len() {
        list.push_str(&format!(" and {} more", total - shown.len()));
    }
    list
}

/// A problem found while reading or checking the table, located by a byte span of the file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub span: Range<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    pub fn new(span: Range<usize>, message: impl Into<String>) -> Self {
        Problem {
            span,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Turns the span into a line and column of the file `lines` indexes.
    pub fn locate(self, lines: &LineIndex, file: &str) -> Diagnostic {
        let (line, column) = lines.line_col(self.span.start);
        Diagnostic {
            file: file.to_string(),
            line,
            column,
            message: self.message,
            hint: self.hint,
        }
    }
}

/// Where each line of a text starts, so a byte offset becomes a line and column by binary search
/// instead of a scan of everything before it.
#[derive(Debug)]
pub(crate) struct LineIndex<'t> {
    text: &'t str,
    /// Byte offset of the start of each line; the first is 0.
    starts: Vec<usize>,
}

impl<'t> LineIndex<'t> {
    pub fn new(text: &'t str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        LineIndex { text, starts }
    }

    /// The 1-based line and column (in characters) of byte `offset`.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|start| *start <= offset);
        let start = self.starts[line - 1];
        let column = self.text[start..offset].chars().count() + 1;
        (line, column)
    }
}

/// Collects problems; every check adds to it and carries on, so one run reports them all.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    found: Vec<Problem>,
    /// (table start, table end, key): an unknown key of that table looked like a misspelling of
    /// this key.
    misspelt: HashSet<(usize, usize, &'static str)>,
}

impl Problems {
    pub fn push(&mut self, problem: Problem) {
        self.found.push(problem);
    }

    /// Notes that the table at `table` has an unknown key that was probably meant as `key`.
    pub fn misspelt(&mut self, table: Range<usize>, key: &'static str) {
        self.misspelt.insert((table.start, table.end, key));
    }

    /// Whether one of `keys` was probably misspelt in the table at `table`: then "missing key"
    /// would only repeat the "unknown key ...; did you mean" already reported.
    pub fn was_misspelt(&self, table: &Range<usize>, keys: &[&str]) -> bool {
        keys.iter()
            .any(|k| self.misspelt.contains(&(table.start, table.end, *k)))
    }

    /// A required key is missing from the table at `table`; reported there unless it was misspelt.
    pub fn missing(
        &mut self,
        table: Range<usize>,
        keys: &[&str],
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        if !self.was_misspelt(&table, keys) {
            self.hinted(table, message, hint);
        }
    }

    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(Problem::new(span, message));
    }

    pub fn hinted(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(Problem::new(span, message).with_hint(hint));
    }

    pub fn len(&self) -> usize {
        self.found.len()
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// The problems in file order (problems at the same place keep the order they were found).
    pub fn into_sorted(self) -> Vec<Problem> {
        let mut problems = self.found;
        problems.sort_by_key(|p| p.span.start);
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_is_one_based_and_counts_characters() {
        let text = "a = 1\nnamé = \"x\"\n";
        let lines = LineIndex::new(text);
        assert_eq!(lines.line_col(0), (1, 1));
        assert_eq!(lines.line_col(4), (1, 5));
        assert_eq!(lines.line_col(5), (1, 6));
        assert_eq!(lines.line_col(6), (2, 1));
        // 'é' is two bytes but one column; an offset inside it is its start.
        let quote = text.find('"').unwrap();
        assert_eq!(lines.line_col(quote), (2, 8));
        assert_eq!(lines.line_col(text.find('é').unwrap() + 1), (2, 4));
        assert_eq!(lines.line_col(text.len()), (3, 1));
        assert_eq!(lines.line_col(usize::MAX), (3, 1));
        assert_eq!(LineIndex::new("").line_col(0), (1, 1));
    }

    #[test]
    fn name_lists_are_cut_after_a_few_names() {
        let names = ["a", "b", "c"];
        assert_eq!(name_list(names.iter().copied(), 5), "a, b, c");
        assert_eq!(name_list(names.iter().copied(), 3), "a, b, c");
        assert_eq!(name_list(names.iter().copied(), 2), "a, b and 1 more");
    }

    #[test]
    fn diagnostic_display_appends_the_hint_after_a_semicolon() {
        let d = Diagnostic {
            file: "routes.toml".into(),
            line: 12,
            column: 12,
            message: "unknown upstream \"ordrs\"".into(),
            hint: Some("known: legacy, orders".into()),
        };
        assert_eq!(
            d.to_string(),
            "routes.toml:12:12: unknown upstream \"ordrs\"; known: legacy, orders"
        );
        let plain = Diagnostic { hint: None, ..d };
        assert_eq!(
            plain.to_string(),
            "routes.toml:12:12: unknown upstream \"ordrs\""
        );
    }

    #[test]
    fn config_errors_display_one_diagnostic_per_line() {
        let d = |line| Diagnostic {
            file: "f".into(),
            line,
            column: 1,
            message: "m".into(),
            hint: None,
        };
        assert_eq!(
            ConfigErrors(vec![d(1), d(2)]).to_string(),
            "f:1:1: m\nf:2:1: m"
        );
    }

    #[test]
    fn config_errors_render_at_most_max_then_how_many_more() {
        let d = |line| Diagnostic {
            file: "f".into(),
            line,
            column: 1,
            message: "m".into(),
            hint: None,
        };
        let all = ConfigErrors((1..=4).map(d).collect());
        assert_eq!(all.render(2), "f:1:1: m\nf:2:1: m\n... and 2 more");
        assert_eq!(all.render(4), all.to_string());
        assert_eq!(all.render(9), all.to_string());
        assert_eq!(all.render(0).lines().count(), 4);
    }
}
