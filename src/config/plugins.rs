//! `[plugins.NAME]`: named plugin instances. Each section's `use` names its kind
//! ([`crate::plugins`]); the kind reads the rest of the section and builds the instance's filter
//! (no I/O), reporting its problems with their spans like every other section.

use std::sync::Arc;

use ficus_plugin::config::{Diagnostics, Node, Section};
use ficus_plugin::Filter;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::compile::Ctx;
use super::de::absorb;
use super::diagnostics::Problems;
use super::diagnostics::{name_list, HINT_NAMES};

/// One `[plugins.NAME]`: the name is known even when the section is rejected, so routes that
/// list it are not reported as well.
pub(crate) struct PluginEntry {
    pub name: Spanned<String>,
    pub filter: Option<Arc<dyn Filter>>,
}

impl std::fmt::Debug for PluginEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEntry")
            .field("name", self.name.get_ref())
            .field("built", &self.filter.is_some())
            .finish()
    }
}

impl Ctx<'_> {
    /// The instances a `plugins = [...]` list names, in order; `None` when one is unknown (an
    /// error at its name) or was rejected (already reported).
    pub fn plugins(
        &mut self,
        list: Option<&Spanned<Vec<Spanned<String>>>>,
    ) -> Option<Vec<Arc<dyn Filter>>> {
        let mut out: Vec<Arc<dyn Filter>> = Vec::new();
        let mut ok = true;
        let names = list.map_or(&[][..], |l| l.get_ref().as_slice());
        for (i, name) in names.iter().enumerate() {
            if names[..i].iter().any(|n| n.get_ref() == name.get_ref()) {
                self.problems.hinted(
                    name.span(),
                    format!("plugin {:?} is listed twice", name.get_ref()),
                    "list each plugin once; it runs where it is first listed",
                );
                ok = false;
                continue;
            }
            if self
                .proxy_plugins
                .iter()
                .any(|f| f.name() == name.get_ref())
            {
                self.problems.hinted(
                    name.span(),
                    format!("plugin {:?} already runs on every request", name.get_ref()),
                    "it is listed in [proxy] plugins; remove it here",
                );
                ok = false;
                continue;
            }
            match self.plugins.get(name.get_ref().as_str()) {
                Some(Some(filter)) => {
                    let verified_before = self
                        .proxy_plugins
                        .iter()
                        .chain(&out)
                        .any(|f| f.gives_claims());
                    if filter.reads_claims() && !verified_before {
                        self.problems.hinted(
                            name.span(),
                            format!(
                                "plugin {:?} reads a verified token's claims, but no jwt runs before it",
                                name.get_ref()
                            ),
                            "list a jwt plugin before it (here or in [proxy] plugins)",
                        );
                        ok = false;
                    }
                    out.push(Arc::clone(filter));
                }
                Some(None) => ok = false,
                None => {
                    let closest =
                        ficus_plugin::config::closest_key(name.get_ref(), &self.plugin_names);
                    let hint = match closest {
                        Some(k) => format!("did you mean {k:?}?"),
                        None if self.plugin_names.is_empty() => {
                            "no plugins are defined; add [plugins.NAME] with use = \"KIND\""
                                .to_string()
                        }
                        None => {
                            let names = self.plugin_names.iter().copied();
                            format!("known: {}", name_list(names, HINT_NAMES))
                        }
                    };
                    self.problems.hinted(
                        name.span(),
                        format!("unknown plugin {:?}", name.get_ref()),
                        hint,
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }
}

/// Every instance of the `plugins` table, in file order.
pub(crate) fn read(
    node: Node<'_>,
    upstreams: &[String],
    problems: &mut Problems,
) -> Vec<PluginEntry> {
    let span = node.span();
    let DeValue::Table(entries) = node.into_inner() else {
        problems.hinted(
            span,
            "`plugins` must be a table of named plugins",
            "write [plugins.NAME] with use = \"KIND\"",
        );
        return Vec::new();
    };
    entries
        .into_iter()
        .map(|(key, body)| {
            let name = Spanned::new(key.span(), key.into_inner().into_owned());
            let filter = instance(&name, body, upstreams, problems);
            PluginEntry { name, filter }
        })
        .collect()
}

fn instance(
    name: &Spanned<String>,
    body: Node<'_>,
    upstreams: &[String],
    problems: &mut Problems,
) -> Option<Arc<dyn Filter>> {
    let span = body.span();
    let DeValue::Table(table) = body.into_inner() else {
        problems.hinted(
            span,
            format!("plugin {:?} must be a table", name.get_ref()),
            "write [plugins.NAME] with use = \"KIND\" and the kind's keys",
        );
        return None;
    };
    let mut kind = None;
    let mut rest = DeTable::new();
    for (k, v) in table {
        if k.get_ref().as_ref() == "use" {
            kind = Some(v);
        } else {
            rest.insert(k, v);
        }
    }
    let known = || {
        let kinds: Vec<&str> = crate::plugins::kinds().iter().map(|k| k.kind()).collect();
        format!("known kinds: {}", kinds.join(", "))
    };
    let Some(kind) = kind else {
        problems.hinted(
            span,
            format!("plugin {:?} has no `use`", name.get_ref()),
            format!("add use = \"KIND\"; {}", known()),
        );
        return None;
    };
    let kind_span = kind.span();
    let DeValue::String(kind_name) = kind.into_inner() else {
        problems.hinted(kind_span, "`use` must be a string", known());
        return None;
    };
    let Some(kind) = crate::plugins::kind(&kind_name) else {
        problems.hinted(
            kind_span,
            format!("unknown plugin kind {:?}", kind_name.as_ref()),
            known(),
        );
        return None;
    };
    let mut diags = Diagnostics::default();
    let node = Spanned::new(span, DeValue::Table(rest));
    let section = Section::new(name.get_ref(), node).with_upstreams(upstreams.to_vec());
    let built = kind.build(section, &mut diags);
    let failed = !diags.is_empty();
    absorb(problems, diags);
    built.filter(|_| !failed)
}
