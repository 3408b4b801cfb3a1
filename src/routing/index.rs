//! An index over the routes by their literal leading path segments.
//!
//! Each route sits at the trie node of the literal segments every path it matches must start with
//! (`/api/orders/*` at `api/orders`, `/api/{v}/x` at `api`, a regex or `/*` at the root). A
//! request walks the trie along its own segments and only the routes at the nodes it passes can
//! match. Each node keeps its routes in file order and the walk merges the lists lazily, so the
//! first match found is the first in file order, exactly as a full scan would find it, and a hit
//! early in the file stops the merge at once.

use std::collections::HashMap;

use super::table::Route;

#[derive(Debug, Default)]
pub struct RouteIndex {
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    /// Indices into the route list, ascending.
    routes: Vec<usize>,
    children: HashMap<Box<str>, Node>,
}

impl RouteIndex {
    pub fn build(routes: &[Route]) -> RouteIndex {
        let mut root = Node::default();
        for (i, route) in routes.iter().enumerate() {
            let mut node = &mut root;
            for seg in route.matcher.path.literal_prefix() {
                node = node.children.entry(seg.into()).or_default();
            }
            node.routes.push(i);
        }
        RouteIndex { root }
    }

    /// The routes that may match `path`, in file order.
    pub fn candidates<'a>(&'a self, path: &str) -> Candidates<'a> {
        let mut c = Candidates::default();
        let mut node = &self.root;
        c.push(&node.routes);
        let rest = path.strip_prefix('/').unwrap_or(path);
        for seg in rest.split('/') {
            match node.children.get(seg) {
                Some(child) => {
                    node = child;
                    c.push(&node.routes);
                }
                None => break,
            }
        }
        c
    }
}

const INLINE: usize = 16;

/// A lazy k-way merge of the route lists met along the path (no allocation for paths of up to
/// 16 indexed segments).
#[derive(Default)]
pub struct Candidates<'a> {
    inline: [&'a [usize]; INLINE],
    len: usize,
    overflow: Vec<&'a [usize]>,
}

impl<'a> Candidates<'a> {
    fn push(&mut self, list: &'a [usize]) {
        if list.is_empty() {
            return;
        }
        if self.len < INLINE {
            self.inline[self.len] = list;
            self.len += 1;
        } else {
            self.overflow.push(list);
        }
    }
}

impl<'a> Candidates<'a> {
    fn list(&mut self, i: usize) -> &mut &'a [usize] {
        if i < self.len {
            &mut self.inline[i]
        } else {
            &mut self.overflow[i - self.len]
        }
    }
}

impl Iterator for Candidates<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for i in 0..self.len + self.overflow.len() {
            if let Some(&head) = self.list(i).first() {
                if best.is_none_or(|(b, _)| head < b) {
                    best = Some((head, i));
                }
            }
        }
        let (head, i) = best?;
        let list = self.list(i);
        *list = &list[1..];
        Some(head)
    }
}
