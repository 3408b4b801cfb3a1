//! Tests of `de`: each section read on its own, with the spans of its keys and values.

use super::*;

#[derive(Debug, Deserialize)]
#[serde(expecting = "a table")]
struct Section {
    name: Spanned<String>,
    list: Option<Vec<Spanned<String>>>,
    inner: Option<Spanned<Inner>>,
}

#[derive(Debug, Deserialize)]
#[serde(expecting = "a table")]
struct Inner {
    n: Option<i64>,
}

const SECTION: Shape = Shape {
    keys: keys_of::<Section>,
    nested: &[(
        "inner",
        Shape {
            keys: keys_of::<Inner>,
            nested: &[],
        },
    )],
};

fn read(text: &str) -> (Option<Spanned<Section>>, Vec<Problem>) {
    let root = parse(text).unwrap();
    let root = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
    let mut problems = Problems::default();
    let section = section::<Section>(root, &SECTION, &mut problems);
    (section, problems.into_sorted())
}

#[test]
fn keys_of_is_serdes_own_field_list() {
    assert_eq!(keys_of::<Section>(), ["name", "list", "inner"]);
    assert_eq!(keys_of::<Inner>(), ["n"]);
}

#[test]
fn spanned_fields_get_the_span_of_their_value() {
    let text = "name = \"a\"\nlist = [\"x\", \"y\"]\n[inner]\nn = 1\n";
    let (section, problems) = read(text);
    assert!(problems.is_empty(), "{problems:?}");
    let section = section.unwrap().into_inner();
    assert_eq!(&text[section.name.span()], "\"a\"");
    assert_eq!(&text[section.list.unwrap()[1].span()], "\"y\"");
    assert!(text[section.inner.unwrap().span()].starts_with("[inner]"));
}

#[test]
fn every_unknown_key_is_reported_at_the_key_and_the_rest_is_still_read() {
    let text = "name = \"a\"\nlsit = []\nother = 1\n[inner]\nn = 1\nm = 2\n";
    let (section, problems) = read(text);
    let at: Vec<&str> = problems.iter().map(|p| &text[p.span.clone()]).collect();
    assert_eq!(at, ["lsit", "other", "m"]);
    assert_eq!(problems[0].message, "unknown key \"lsit\"");
    assert_eq!(problems[0].hint.as_deref(), Some("did you mean \"list\"?"));
    assert_eq!(
        problems[1].hint.as_deref(),
        Some("expected one of: name, list, inner")
    );
    let section = section.expect("unknown keys do not reject the section");
    assert_eq!(section.into_inner().inner.unwrap().get_ref().n, Some(1));
}

#[test]
fn a_misspelt_key_is_remembered_against_its_table() {
    let text = "nmae = \"a\"\n";
    let root = parse(text).unwrap();
    let span = root.span();
    let root = Spanned::new(span.clone(), DeValue::Table(root.into_inner()));
    let mut problems = Problems::default();
    let _ = section::<Section>(root, &SECTION, &mut problems);
    assert!(problems.was_misspelt(&span, &["name"]));
    assert!(!problems.was_misspelt(&span, &["list"]));
}

#[test]
fn a_value_of_the_wrong_type_rejects_the_section_with_the_values_span() {
    let text = "name = 5\n";
    let (section, problems) = read(text);
    assert!(section.is_none());
    assert_eq!(&text[problems[0].span.clone()], "5");
    assert!(
        problems[0].message.starts_with("invalid type: integer `5`"),
        "{}",
        problems[0].message
    );
}

#[test]
fn a_value_where_a_table_belongs_says_so_without_naming_rust_types() {
    let text = "name = \"a\"\ninner = 5\n";
    let (_, problems) = read(text);
    assert_eq!(
        problems[0].message,
        "invalid type: integer `5`, expected a table"
    );
    assert_eq!(&text[problems[0].span.clone()], "5");
}

#[test]
fn a_missing_required_key_points_at_the_section() {
    let text = "[inner]\nn = 1\n";
    let (_, problems) = read(text);
    assert!(problems[0].message.contains("name"), "{:?}", problems[0]);
    assert_eq!(problems[0].span.start, 0);
}

#[test]
fn syntax_errors_keep_tomls_message_and_position_on_one_line() {
    let p = parse("a = 1\nb = = 2\n").unwrap_err();
    assert_eq!(p.span.start, "a = 1\nb = ".len());
    assert!(!p.message.contains('\n'), "{}", p.message);
    let dup = parse("a = 1\na = 2\n").unwrap_err();
    assert!(dup.message.contains("duplicate key"), "{}", dup.message);
    assert_eq!(dup.span.start, "a = 1\n".len());
}

#[test]
fn unknown_key_hint_suggests_a_close_key_or_lists_them_all() {
    assert_eq!(
        unknown_key_hint("mehtods", &["methods", "path"]),
        "did you mean \"methods\"?"
    );
    assert_eq!(
        unknown_key_hint("zzz", &["methods", "path"]),
        "expected one of: methods, path"
    );
    assert_eq!(unknown_key_hint("x", &[]), "no keys are allowed here");
}
