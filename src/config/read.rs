//! Reading the file section by section into the structs of [`super::raw`].
//!
//! [`read`] deserializes each section (`[proxy]`, `[client_version]`, each upstream, each route)
//! on its own from toml's spanned tree, so an error in one does not hide the errors in the
//! others; unknown keys are reported and skipped without rejecting their section.

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::de::{keys_of, section, unknown_key, Node, Shape};
use super::diagnostics::Problems;
use super::raw::{
    RawClientVersion, RawFile, RawHealthCheck, RawProxy, RawRoute, RawShadow, RawUpstream,
    RawUpstreamEntry, RawWebhook, Section,
};

const TOP_KEYS: &[&str] = &["proxy", "client_version", "upstreams", "routes", "plugins"];

const PROXY: Shape = Shape {
    keys: keys_of::<RawProxy>,
    nested: &[],
};
const CLIENT_VERSION: Shape = Shape {
    keys: keys_of::<RawClientVersion>,
    nested: &[],
};
const UPSTREAM: Shape = Shape {
    keys: keys_of::<RawUpstream>,
    nested: &[(
        "health_check",
        Shape {
            keys: keys_of::<RawHealthCheck>,
            nested: &[],
        },
    )],
};
const ROUTE: Shape = Shape {
    keys: keys_of::<RawRoute>,
    nested: &[
        (
            "shadow",
            Shape {
                keys: keys_of::<RawShadow>,
                nested: &[],
            },
        ),
        (
            "webhook",
            Shape {
                keys: keys_of::<RawWebhook>,
                nested: &[],
            },
        ),
    ],
};

/// Reads every section of the file that can be read; the others are reported to `problems`.
pub(crate) fn read(root: DeTable<'_>, problems: &mut Problems) -> RawFile {
    let mut file = RawFile::default();
    // Built once the upstreams are read, wherever the file has them: a plugin may name some.
    let mut plugins = None;
    for (key, node) in root {
        match key.get_ref().as_ref() {
            "proxy" => file.proxy = read_section(node, &PROXY, problems),
            "client_version" => file.client_version = read_section(node, &CLIENT_VERSION, problems),
            "upstreams" => {
                file.upstreams_span = Some(key.span());
                file.upstreams = upstreams(node, problems);
            }
            "routes" => file.routes = routes(node, problems),
            "plugins" => plugins = Some(node),
            other => problems.push(unknown_key(other, key.span(), TOP_KEYS)),
        }
    }
    if let Some(node) = plugins {
        let upstreams: Vec<String> = file
            .upstreams
            .iter()
            .map(|u| u.name.get_ref().clone())
            .collect();
        file.plugins = super::plugins::read(node, &upstreams, problems);
    }
    file
}

fn read_section<T: DeserializeOwned>(
    node: Node<'_>,
    shape: &Shape,
    problems: &mut Problems,
) -> Section<Spanned<T>> {
    match section(node, shape, problems) {
        Some(value) => Section::Parsed(value),
        None => Section::Rejected,
    }
}

/// "a table", "an integer": what a value is, for messages.
fn kind(value: &DeValue<'_>) -> String {
    let name = value.type_str();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

fn upstreams(node: Node<'_>, problems: &mut Problems) -> Vec<RawUpstreamEntry> {
    let span = node.span();
    let entries = match node.into_inner() {
        DeValue::Table(entries) => entries,
        other => {
            problems.hinted(
                span,
                format!(
                    "`upstreams` must be a table of named upstreams, found {}",
                    kind(&other)
                ),
                "write [upstreams.NAME] with url = \"http://host:port\"",
            );
            return Vec::new();
        }
    };
    entries
        .into_iter()
        .map(|(key, body)| RawUpstreamEntry {
            name: Spanned::new(key.span(), key.into_inner().into_owned()),
            body: read_section(body, &UPSTREAM, problems),
        })
        .collect()
}

fn routes(node: Node<'_>, problems: &mut Problems) -> Vec<Section<Spanned<RawRoute>>> {
    let span = node.span();
    match node.into_inner() {
        DeValue::Array(items) => items
            .into_iter()
            .map(|item| read_section(item, &ROUTE, problems))
            .collect(),
        other => {
            problems.hinted(
                span,
                format!("`routes` must be a list of routes, found {}", kind(&other)),
                "start each route with [[routes]] (double brackets)",
            );
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::StringOrList;

    fn read_text(text: &str) -> (RawFile, Vec<crate::config::diagnostics::Problem>) {
        let root = crate::config::de::parse(text).unwrap();
        let mut problems = Problems::default();
        let file = read(root.into_inner(), &mut problems);
        (file, problems.into_sorted())
    }

    #[test]
    fn every_section_is_read_on_its_own_so_each_error_is_reported() {
        let text = "[proxy]\nlisten = 1\n[upstreams.a]\nurl = 2\nbogus = 1\n\
                    [upstreams.b]\nurl = \"http://x:2\"\n[[routes]]\nname = \"r\"\nshadw = {}\n\
                    [[routes]]\nname = \"s\"\n";
        let (file, problems) = read_text(text);
        let at: Vec<&str> = problems.iter().map(|p| &text[p.span.clone()]).collect();
        assert_eq!(at, vec!["1", "2", "bogus", "shadw"]);
        assert_eq!(
            problems[3].hint.as_deref(),
            Some("did you mean \"shadow\"?")
        );
        // A value of the wrong type rejects its section; an unknown key does not.
        assert!(matches!(file.proxy, Section::Rejected));
        assert_eq!(file.upstreams.len(), 2);
        assert!(matches!(file.upstreams[0].body, Section::Rejected));
        assert!(matches!(file.upstreams[1].body, Section::Parsed(_)));
        assert!(matches!(file.routes[0], Section::Parsed(_)));
        assert!(matches!(file.routes[1], Section::Parsed(_)));
    }

    #[test]
    fn unknown_top_level_keys_and_misshapen_sections_are_reported() {
        let text = "[upstream.a]\nurl = \"x\"\n[routes]\nname = \"r\"\n";
        let (_, problems) = read_text(text);
        assert_eq!(problems[0].message, "unknown key \"upstream\"");
        assert_eq!(
            problems[0].hint.as_deref(),
            Some("did you mean \"upstreams\"?")
        );
        assert!(problems[1].message.starts_with("`routes` must be a list"));
    }

    #[test]
    fn listen_is_one_string_or_a_list() {
        let (file, problems) = read_text("[proxy]\nlisten = [\"a\", \"b\"]\n");
        assert!(problems.is_empty());
        let Section::Parsed(proxy) = file.proxy else {
            panic!()
        };
        assert!(
            matches!(proxy.get_ref().listen.as_ref().map(|l| l.get_ref()), Some(StringOrList::Many(v)) if v.len() == 2)
        );
        let (file, _) = read_text("[proxy]\nlisten = \"a\"\n");
        let Section::Parsed(proxy) = file.proxy else {
            panic!()
        };
        assert!(
            matches!(proxy.get_ref().listen.as_ref().map(|l| l.get_ref()), Some(StringOrList::One(s)) if s == "a")
        );
    }
}
