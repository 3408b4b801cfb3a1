//! The side filters a route's action gets once its upstreams are built: the shadow's `Mirror` and
//! the webhook's `Emitter`, each appended to the end of the route's filter chain, after its
//! plugins, so they see the request and the answer as the client's own filters left them.

use std::sync::Arc;

use crate::routing::{Route, UpstreamId};
use crate::shadow::compare::Rules;
use crate::shadow::{Mirror, Setup};
use crate::upstream::Upstream;
use crate::webhook::emit::Emitter;

/// Puts a route's shadow at the end of its filter chain, with the upstreams it sends to (its
/// shadow upstream, and its own for noise probes).
pub(super) fn mirror(route: &mut Route, upstreams: &[Arc<Upstream>]) {
    let action = &mut route.action;
    let Some(spec) = &action.shadow else {
        return;
    };
    let Ok(rules) = Rules::from_spec(spec) else {
        // The patterns were checked by `shadow::compile`; a spec that got past it is a bug.
        tracing::error!(route = %route.name, "shadow rules did not compile; not mirrored");
        return;
    };
    let Some(shadow) = upstreams.get(spec.upstream.index()) else {
        return;
    };
    let own = action.target.upstream_ids().chain(action.fallback);
    let mut primaries: Vec<Arc<Upstream>> = Vec::new();
    for id in own {
        if let Some(u) = upstreams.get(id.index()) {
            if !primaries.iter().any(|p| Arc::ptr_eq(p, u)) {
                primaries.push(Arc::clone(u));
            }
        }
    }
    let mirror = Arc::new(Mirror::new(Setup {
        route: Arc::clone(&route.name),
        spec: spec.clone(),
        rules,
        shadow: Arc::clone(shadow),
        primaries,
        base: action.filters.clone(),
    }));
    action.filters = action.filters.then(mirror.clone());
    action.mirror = Some(mirror);
}

/// Puts a route's webhook at the end of its filter chain, with the names of the upstreams whose
/// answers emit (by default every upstream but the table's default: the legacy app is never told
/// about its own writes).
pub(super) fn emitter(route: &mut Route, upstreams: &[Arc<Upstream>], default: UpstreamId) {
    let action = &mut route.action;
    let Some(spec) = &action.webhook else {
        return;
    };
    let from: Vec<String> = match &spec.from {
        Some(ids) => ids
            .iter()
            .filter_map(|id| upstreams.get(id.index()))
            .map(|u| u.name.clone())
            .collect(),
        None => upstreams
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != default.index())
            .map(|(_, u)| u.name.clone())
            .collect(),
    };
    let emitter = Arc::new(Emitter::new(Arc::clone(&route.name), spec.clone(), from));
    action.filters = action.filters.then(emitter.clone());
    action.emitter = Some(emitter);
}
