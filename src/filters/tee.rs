//! A copy of a body as it streams past a filter, up to a limit: what the shadow mirrors and
//! compares, and what a webhook's event carries. Past the limit nothing more is kept and the copy
//! is marked over, so memory per request stays bounded whatever the body's size.

use bytes::{Bytes, BytesMut};

#[derive(Debug, Clone, Default)]
pub struct Tee {
    kept: BytesMut,
    max: usize,
    over: bool,
}

impl Tee {
    /// A copy of at most `max` bytes.
    pub fn new(max: u64) -> Tee {
        Tee {
            kept: BytesMut::new(),
            max: usize::try_from(max).unwrap_or(usize::MAX),
            over: false,
        }
    }

    /// Adds a chunk; past the limit, forgets what it kept and keeps nothing more.
    pub fn push(&mut self, chunk: &Bytes) {
        if self.over {
            return;
        }
        if self.kept.len() + chunk.len() > self.max {
            self.over = true;
            self.kept = BytesMut::new();
            return;
        }
        self.kept.extend_from_slice(chunk);
    }

    /// Marks the copy over without a chunk (a declared length past the limit).
    pub fn overflow(&mut self) {
        self.over = true;
        self.kept = BytesMut::new();
    }

    pub fn is_over(&self) -> bool {
        self.over
    }

    /// Forgets what was kept (the body is sent again from its start).
    pub fn clear(&mut self) {
        self.kept.clear();
        self.over = false;
    }

    /// The whole body, or `None` when it went past the limit.
    pub fn finish(self) -> Option<Bytes> {
        (!self.over).then(|| self.kept.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_keeps_the_body_up_to_its_limit_and_nothing_past_it() {
        let mut tee = Tee::new(5);
        tee.push(&Bytes::from_static(b"abc"));
        tee.push(&Bytes::from_static(b"de"));
        assert_eq!(tee.clone().finish().as_deref(), Some(&b"abcde"[..]));
        tee.push(&Bytes::from_static(b"f"));
        assert!(tee.is_over());
        tee.push(&Bytes::from_static(b""));
        assert_eq!(tee.finish(), None);
    }
}
