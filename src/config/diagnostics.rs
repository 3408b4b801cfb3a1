//! What a bad route table reports: one [`Diagnostic`] per problem, each with its line and column.
//!
//! Inside the config layer a problem is a [`Problem`]: a byte span into the file and a message.
//! Spans are turned into 1-based line and column numbers only at the end, by [`Problem::locate`],
//! so the checks never need to know about lines.

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

/// Every problem found in one route table, in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", lines(.0))]
pub struct ConfigErrors(pub Vec<Diagnostic>);

fn lines(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(Diagnostic::to_string)
        .collect::<Vec<_>>()
        .join("\n")
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

    /// Turns the span into a line and column of `text`, the file it was found in.
    pub fn locate(self, text: &str, file: &str) -> Diagnostic {
        let (line, column) = line_col(text, self.span.start);
        Diagnostic {
            file: file.to_string(),
            line,
            column,
            message: self.message,
            hint: self.hint,
        }
    }
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Collects problems; every check adds to it and carries on, so one run reports them all.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    found: Vec<Problem>,
    /// (table span, key): an unknown key of that table looked like a misspelling of this key.
    misspelt: Vec<(Range<usize>, &'static str)>,
}

impl Problems {
    pub fn push(&mut self, problem: Problem) {
        self.found.push(problem);
    }

    /// Notes that the table at `table` has an unknown key that was probably meant as `key`.
    pub fn misspelt(&mut self, table: Range<usize>, key: &'static str) {
        self.misspelt.push((table, key));
    }

    /// Whether one of `keys` was probably misspelt in the table at `table`: then "missing key"
    /// would only repeat the "unknown key ...; did you mean" already reported.
    pub fn was_misspelt(&self, table: &Range<usize>, keys: &[&str]) -> bool {
        self.misspelt
            .iter()
            .any(|(t, k)| t == table && keys.contains(k))
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
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 4), (1, 5));
        assert_eq!(line_col(text, 6), (2, 1));
        // 'é' is two bytes but one column.
        let quote = text.find('"').unwrap();
        assert_eq!(line_col(text, quote), (2, 8));
        assert_eq!(line_col(text, text.len()), (3, 1));
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
}
