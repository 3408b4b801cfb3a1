//! Which requests a route's shadow samples: one decision, made by the proxy for every request of
//! a shadowed route and reported by `ficus explain` for one request.

use std::net::IpAddr;

use http::{HeaderMap, Method, Version};

use super::ShadowSpec;
use crate::filters::headers::is_websocket_upgrade;
use crate::routing::split::{in_sample, salted_sticky_hash};

/// Whether a request is mirrored, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Its method is not in the shadow's `methods`.
    MethodNotListed,
    /// A websocket upgrade: never mirrored.
    Upgrade,
    /// `percent = 0`.
    Never,
    /// `percent = 100`.
    Always,
    /// Its sticky key falls in the sample (`true`) or outside it (`false`).
    Keyed(bool),
    /// No sticky key (none set, or the request lacks it): drawn at random with `percent`.
    Random,
}

impl Sampling {
    /// The decision for one request of the route `route` (whose name salts the sticky hash).
    pub fn of(
        spec: &ShadowSpec,
        route: &str,
        method: &Method,
        version: Version,
        headers: &HeaderMap,
        client_ip: Option<IpAddr>,
    ) -> Sampling {
        if !spec.methods.contains(method) {
            return Sampling::MethodNotListed;
        }
        if is_websocket_upgrade(version, headers) {
            return Sampling::Upgrade;
        }
        if spec.percent <= 0.0 {
            return Sampling::Never;
        }
        if spec.percent >= 100.0 {
            return Sampling::Always;
        }
        match spec
            .sticky
            .as_ref()
            .and_then(|k| salted_sticky_hash(k, headers, client_ip, salt(route)))
        {
            Some(hash) => Sampling::Keyed(in_sample(hash, spec.percent)),
            None => Sampling::Random,
        }
    }

    /// Whether the request is mirrored; a [`Sampling::Random`] one draws its chance now.
    pub fn draw(self, percent: f64) -> bool {
        match self {
            Sampling::Always | Sampling::Keyed(true) => true,
            Sampling::Random => fastrand::f64() * 100.0 < percent,
            Sampling::MethodNotListed | Sampling::Upgrade | Sampling::Never => false,
            Sampling::Keyed(false) => false,
        }
    }

    /// `yes`, `no` or `sampled`, and why, as `ficus explain` says it.
    pub fn explain(self, spec: &ShadowSpec, method: &Method) -> (&'static str, String) {
        match self {
            Sampling::MethodNotListed => ("no", format!("method {method} is not mirrored")),
            Sampling::Upgrade => ("no", "websocket upgrades are never mirrored".to_string()),
            Sampling::Never => ("no", "percent is 0".to_string()),
            Sampling::Always => ("yes", "every request is mirrored".to_string()),
            Sampling::Keyed(true) => ("yes", "the sticky key is in the sample".to_string()),
            Sampling::Keyed(false) => ("no", "the sticky key is outside the sample".to_string()),
            Sampling::Random => (
                "sampled",
                format!("mirrored with probability {}%", spec.percent),
            ),
        }
    }
}

/// The sticky hash's seed for a route's shadow sample.
fn salt(route: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(format!("shadow:{route}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::split::sticky_hash;
    use crate::routing::StickyKey;

    fn spec(percent: f64) -> ShadowSpec {
        ShadowSpec {
            upstream: crate::routing::UpstreamId::from_index(0).unwrap(),
            percent,
            sticky: Some(StickyKey::Header("x-user-id".parse().unwrap())),
            methods: vec![Method::GET],
            max_body: 1 << 20,
            ignore_headers: vec![],
            ignore: vec![],
            unordered: vec![],
            tolerance: vec![],
            learn_noise: 0.0,
            timeout: std::time::Duration::from_secs(10),
            max_in_flight: 64,
        }
    }

    fn user(id: u32) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-user-id", id.to_string().parse().unwrap());
        h
    }

    #[test]
    fn a_sticky_sample_keeps_its_users_and_is_not_the_split_s_users() {
        let s = spec(10.0);
        let of = |route: &str, id| {
            Sampling::of(&s, route, &Method::GET, Version::HTTP_11, &user(id), None)
        };
        let sampled: Vec<u32> = (0..20_000)
            .filter(|id| of("r", *id) == Sampling::Keyed(true))
            .collect();
        // About 10%, and the same users every time.
        assert!((1_700..2_300).contains(&sampled.len()), "{}", sampled.len());
        assert!(sampled
            .iter()
            .all(|id| of("r", *id) == Sampling::Keyed(true)));
        // A 10% split side by the same key: not the same users (salted with the route name).
        let key = StickyKey::Header("x-user-id".parse().unwrap());
        let split: Vec<u32> = (0..20_000)
            .filter(|id| in_sample(sticky_hash(&key, &user(*id), None).unwrap(), 10.0))
            .collect();
        let both = sampled
            .iter()
            .filter(|id| split.binary_search(id).is_ok())
            .count();
        assert!(
            both < sampled.len() / 4,
            "{both} of {} in both",
            sampled.len()
        );
        // Another route samples other users.
        let other = sampled
            .iter()
            .filter(|id| of("s", **id) == Sampling::Keyed(true))
            .count();
        assert!(other < sampled.len() / 4);
    }

    #[test]
    fn methods_upgrades_and_the_extremes_decide_before_any_key() {
        let s = spec(50.0);
        let h = user(1);
        assert_eq!(
            Sampling::of(&s, "r", &Method::POST, Version::HTTP_11, &h, None),
            Sampling::MethodNotListed
        );
        let mut ws = h.clone();
        ws.insert("connection", "Upgrade".parse().unwrap());
        ws.insert("upgrade", "websocket".parse().unwrap());
        assert_eq!(
            Sampling::of(&s, "r", &Method::GET, Version::HTTP_11, &ws, None),
            Sampling::Upgrade
        );
        assert_eq!(
            Sampling::of(&spec(0.0), "r", &Method::GET, Version::HTTP_11, &h, None),
            Sampling::Never
        );
        assert_eq!(
            Sampling::of(&spec(100.0), "r", &Method::GET, Version::HTTP_11, &h, None),
            Sampling::Always
        );
        assert_eq!(
            Sampling::of(
                &s,
                "r",
                &Method::GET,
                Version::HTTP_11,
                &HeaderMap::new(),
                None
            ),
            Sampling::Random
        );
        assert!(!Sampling::Never.draw(50.0) && Sampling::Always.draw(50.0));
    }
}
