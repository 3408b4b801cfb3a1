//! Weighted splits that keep each user on one side.
//!
//! A stable hash (xxh3, fixed seed) of the sticky key is read as a fraction of the whole range and
//! compared with cumulative weights, sides taken in the order their upstreams are declared. Only
//! the fraction matters, not the total: raising `orders` from 10 to 20 against `legacy = 90` moves
//! the users whose fraction lies between the old and the new boundary from legacy to orders and
//! nobody the other way. Without a sticky key (or when the request does not carry it) a side is
//! drawn at random by weight.

use std::net::IpAddr;

use http::HeaderMap;

use super::conditions::cookie_value;
use super::table::{StickyKey, UpstreamId};

const SEED: u64 = 0x6669_6375_735f_7631; // "ficus_v1"

#[derive(Debug, Clone)]
pub struct Split {
    /// (upstream, weight), ordered by upstream id.
    pub sides: Vec<(UpstreamId, u32)>,
    pub sticky: Option<StickyKey>,
    /// Running sum of the weights, one per side.
    cumulative: Vec<u64>,
    /// The last side: where a point past every boundary lands (the split is never empty).
    last: (usize, UpstreamId),
}

/// The side a request landed on, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitChoice {
    /// Index into [`Split::sides`].
    pub side: usize,
    pub upstream: UpstreamId,
    /// The point drawn in `0..total`.
    pub point: u64,
    pub total: u64,
    /// True when the point came from the sticky key, false when it was random.
    pub keyed: bool,
}

impl Split {
    /// `sides` must have positive weights (the config compiler checks); `None` when it is empty.
    pub fn new(mut sides: Vec<(UpstreamId, u32)>, sticky: Option<StickyKey>) -> Option<Split> {
        sides.sort_by_key(|(id, _)| *id);
        let last = sides.len().checked_sub(1).zip(sides.last().map(|s| s.0))?;
        let cumulative = sides
            .iter()
            .scan(0u64, |sum, (_, w)| {
                *sum += u64::from(*w);
                Some(*sum)
            })
            .collect();
        Some(Split {
            sides,
            sticky,
            cumulative,
            last,
        })
    }

    pub fn total(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// Picks a side for a request with these headers from this client address.
    pub fn choose(&self, headers: &HeaderMap, client_ip: Option<IpAddr>) -> SplitChoice {
        let total = self.total().max(1);
        let key_hash = self
            .sticky
            .as_ref()
            .and_then(|s| sticky_hash(s, headers, client_ip));
        let (point, keyed) = match key_hash {
            Some(h) => (scale(h, total), true),
            None => (fastrand::u64(0..total), false),
        };
        let (side, upstream) = self
            .cumulative
            .iter()
            .zip(&self.sides)
            .enumerate()
            .find(|(_, (&c, _))| point < c)
            .map_or(self.last, |(i, (_, &(id, _)))| (i, id));
        SplitChoice {
            side,
            upstream,
            point,
            total,
            keyed,
        }
    }
}

/// Maps a 64-bit hash onto `0..total` keeping its place as a fraction of the range.
fn scale(hash: u64, total: u64) -> u64 {
    ((u128::from(hash) * u128::from(total)) >> 64) as u64
}

/// The stable hash of the request's sticky key, `None` when the request does not carry it.
pub fn sticky_hash(key: &StickyKey, headers: &HeaderMap, client_ip: Option<IpAddr>) -> Option<u64> {
    salted_sticky_hash(key, headers, client_ip, SEED)
}

/// [`sticky_hash`] with another seed: a shadow sample's, salted with its route's name, so that
/// a 10% sample is not the same users as a 10% side of a split.
pub fn salted_sticky_hash(
    key: &StickyKey,
    headers: &HeaderMap,
    client_ip: Option<IpAddr>,
    seed: u64,
) -> Option<u64> {
    let hash = |bytes: &[u8]| xxhash_rust::xxh3::xxh3_64_with_seed(bytes, seed);
    match key {
        StickyKey::Header(name) => headers.get(name).map(|v| hash(v.as_bytes())),
        StickyKey::Cookie(name) => cookie_value(headers, name).map(|v| hash(v.as_bytes())),
        StickyKey::ClientIp => client_ip.map(|ip| match ip {
            IpAddr::V4(a) => hash(&a.octets()),
            IpAddr::V6(a) => hash(&a.octets()),
        }),
    }
}

/// Whether a request with this sticky hash falls in a `percent` sample (0..=100).
pub fn in_sample(hash: u64, percent: f64) -> bool {
    (scale(hash, 1_000_000) as f64) < percent * 10_000.0
}

impl StickyKey {
    /// `header:NAME`, `cookie:NAME` or `ip`.
    pub fn parse(spec: &str) -> Result<StickyKey, String> {
        let bad =
            || format!("bad sticky key {spec:?}; write \"header:NAME\", \"cookie:NAME\" or \"ip\"");
        match spec.split_once(':') {
            None if spec == "ip" => Ok(StickyKey::ClientIp),
            Some(("header", name)) if !name.is_empty() => {
                http::HeaderName::from_bytes(name.as_bytes())
                    .map(StickyKey::Header)
                    .map_err(|_| format!("bad sticky key {spec:?}: invalid header name {name:?}"))
            }
            Some(("cookie", name)) if !name.is_empty() && !name.contains([';', '=', ' ']) => {
                Ok(StickyKey::Cookie(name.to_string()))
            }
            _ => Err(bad()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            StickyKey::Header(h) => format!("header:{h}"),
            StickyKey::Cookie(c) => format!("cookie:{c}"),
            StickyKey::ClientIp => "ip".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(i: usize) -> UpstreamId {
        UpstreamId::from_index(i).unwrap()
    }

    #[test]
    fn an_empty_split_cannot_be_made() {
        assert!(Split::new(Vec::new(), None).is_none());
    }

    fn user(id: u32) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-user-id", id.to_string().parse().unwrap());
        h
    }

    fn split(new: u32, old: u32) -> Split {
        Split::new(
            vec![(up(1), old), (up(0), new)],
            StickyKey::parse("header:x-user-id").ok(),
        )
        .unwrap()
    }

    #[test]
    fn the_same_key_always_lands_on_the_same_side() {
        let s = split(10, 90);
        for id in 0..1000 {
            let first = s.choose(&user(id), None);
            assert!(first.keyed);
            assert_eq!(s.choose(&user(id), None), first);
        }
    }

    #[test]
    fn proportions_follow_the_weights() {
        let s = split(10, 90);
        let n = 20_000;
        let new = (0..n)
            .filter(|&id| s.choose(&user(id), None).upstream == up(0))
            .count();
        let share = new as f64 / n as f64;
        assert!(
            (0.09..0.11).contains(&share),
            "share of the new side: {share}"
        );
    }

    #[test]
    fn raising_a_weight_only_moves_users_toward_that_side() {
        let before = split(10, 90);
        for after in [split(20, 80), split(20, 90), split(50, 50)] {
            let mut moved = 0;
            for id in 0..10_000 {
                let (a, b) = (
                    before.choose(&user(id), None),
                    after.choose(&user(id), None),
                );
                if a.upstream == up(0) {
                    assert_eq!(b.upstream, up(0), "user {id} moved back to legacy");
                }
                moved += usize::from(a.upstream != b.upstream);
            }
            assert!(moved > 0);
        }
    }

    #[test]
    fn a_request_without_the_key_is_drawn_at_random() {
        let s = split(50, 50);
        let sides: std::collections::HashSet<_> = (0..200)
            .map(|_| s.choose(&HeaderMap::new(), None))
            .map(|c| {
                assert!(!c.keyed);
                c.upstream
            })
            .collect();
        assert_eq!(sides.len(), 2);
    }

    #[test]
    fn client_ip_and_cookie_keys() {
        let s = Split::new(vec![(up(0), 1), (up(1), 1)], Some(StickyKey::ClientIp)).unwrap();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let a = s.choose(&HeaderMap::new(), Some(ip));
        assert!(a.keyed);
        assert_eq!(a, s.choose(&HeaderMap::new(), Some(ip)));
        let c = Split::new(
            vec![(up(0), 1), (up(1), 1)],
            StickyKey::parse("cookie:uid").ok(),
        )
        .unwrap();
        let mut h = HeaderMap::new();
        h.insert("cookie", "uid=42".parse().unwrap());
        assert!(c.choose(&h, None).keyed);
    }

    #[test]
    fn sticky_specs() {
        assert_eq!(StickyKey::parse("ip"), Ok(StickyKey::ClientIp));
        assert!(
            matches!(StickyKey::parse("header:X-User"), Ok(StickyKey::Header(h)) if h == "x-user")
        );
        for bad in [
            "",
            "ip:x",
            "header:",
            "cookie:",
            "header:bad name",
            "query:x",
        ] {
            assert!(StickyKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sampling_is_proportional() {
        let hits = (0..10_000u64)
            .filter(|i| in_sample(xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes()), 25.0))
            .count();
        assert!((2300..2700).contains(&hits), "{hits}");
        assert!(!in_sample(0, 0.0));
        assert!(in_sample(u64::MAX, 100.0));
    }
}
