//! The plugin kinds ficus knows, by the name `use = "KIND"` gives them. Each kind is its own
//! crate in `plugins/`, written against the `ficus-plugin` interface only.

use ficus_plugin::PluginKind;

/// Every built-in kind.
pub fn kinds() -> &'static [&'static dyn PluginKind] {
    &[
        &ficus_plugin_respond::Kind,
        &ficus_plugin_headers::Kind,
        &ficus_plugin_rewrite::Kind,
        &ficus_plugin_rate_limit::Kind,
        &ficus_plugin_jwt::Kind,
    ]
}

/// The kind named `name`.
pub fn kind(name: &str) -> Option<&'static dyn PluginKind> {
    kinds().iter().copied().find(|k| k.kind() == name)
}
