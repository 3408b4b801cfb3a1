//! Removing a body's content-encoding (gzip, deflate, br) before it is compared, with the
//! decoded size bounded so that a small compressed body cannot fill memory.

use std::borrow::Cow;
use std::io::Read;

use http::header::CONTENT_ENCODING;
use http::HeaderMap;

/// More codings than anyone stacks; each is a full decoding pass over up to `max_decoded` bytes.
const MAX_CODINGS: usize = 4;

/// Why a body's content-encoding could not be removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("content-encoding {0:?} is not one ficus removes (gzip, deflate, br, identity)")]
    Unknown(String),
    #[error("more than {MAX_CODINGS} content-encodings")]
    TooManyCodings,
    #[error("the {coding} body is corrupt: {reason}")]
    Corrupt {
        coding: &'static str,
        reason: String,
    },
    #[error("the body decodes to more than {0} bytes")]
    TooLarge(usize),
}

/// The codings applied to a body, first applied first, lower-cased, `identity` left out: every
/// `Content-Encoding` field line in order, each a comma-separated list.
pub(super) fn codings(headers: &HeaderMap) -> Result<Vec<String>, DecodeError> {
    let mut out = Vec::new();
    for value in headers.get_all(CONTENT_ENCODING) {
        let text = value
            .to_str()
            .map_err(|_| DecodeError::Unknown(String::from_utf8_lossy(value.as_bytes()).into()))?;
        for coding in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            let coding = coding.to_ascii_lowercase();
            if coding != "identity" {
                out.push(coding);
            }
        }
    }
    if out.len() > MAX_CODINGS {
        return Err(DecodeError::TooManyCodings);
    }
    Ok(out)
}

/// `body` with `codings` removed, last applied first removed; every step's output is at most
/// `max` bytes.
pub(super) fn decode<'b>(
    codings: &[String],
    body: &'b [u8],
    max: usize,
) -> Result<Cow<'b, [u8]>, DecodeError> {
    let mut data = Cow::Borrowed(body);
    for coding in codings.iter().rev() {
        data = Cow::Owned(decode_one(coding, &data, max)?);
    }
    Ok(data)
}

fn decode_one(coding: &str, data: &[u8], max: usize) -> Result<Vec<u8>, DecodeError> {
    match coding {
        // `x-gzip` is the old name (RFC 9110 section 8.4.1.3). Several gzip members may follow
        // one another; they decode to their concatenation.
        "gzip" | "x-gzip" => bounded(flate2::read::MultiGzDecoder::new(data), "gzip", max),
        // HTTP's deflate is a zlib stream, but some servers send raw deflate: read what is there.
        "deflate" if is_zlib(data) => bounded(flate2::read::ZlibDecoder::new(data), "deflate", max),
        "deflate" => bounded(flate2::read::DeflateDecoder::new(data), "deflate", max),
        "br" => bounded(brotli::Decompressor::new(data, 4096), "br", max),
        other => Err(DecodeError::Unknown(other.to_string())),
    }
}

/// A zlib header (RFC 1950): method 8 (deflate), a window of at most 32 KiB, and a check that
/// makes the first two bytes a multiple of 31.
fn is_zlib(data: &[u8]) -> bool {
    match data {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// Everything `reader` yields, or `TooLarge` as soon as it yields more than `max` bytes.
fn bounded(reader: impl Read, coding: &'static str, max: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Corrupt {
            coding,
            reason: e.to_string(),
        })?;
    if out.len() > max {
        return Err(DecodeError::TooLarge(max));
    }
    Ok(out)
}

#[cfg(test)]
pub(super) mod tests {
    use std::io::Write;

    use super::*;

    /// `data` encoded with one coding, as an upstream would send it.
    pub(in crate::shadow::compare) fn encode(coding: &str, data: &[u8]) -> Vec<u8> {
        use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
        use flate2::Compression;
        let done = |r: std::io::Result<Vec<u8>>| r.unwrap_or_else(|e| panic!("{coding}: {e}"));
        match coding {
            "gzip" => {
                let mut w = GzEncoder::new(Vec::new(), Compression::default());
                w.write_all(data).unwrap();
                done(w.finish())
            }
            "deflate" => {
                let mut w = ZlibEncoder::new(Vec::new(), Compression::default());
                w.write_all(data).unwrap();
                done(w.finish())
            }
            "raw-deflate" => {
                let mut w = DeflateEncoder::new(Vec::new(), Compression::default());
                w.write_all(data).unwrap();
                done(w.finish())
            }
            "br" => {
                let mut out = Vec::new();
                {
                    let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                    w.write_all(data).unwrap();
                }
                out
            }
            other => panic!("no encoder for {other}"),
        }
    }

    fn with(codings: &[&str]) -> Vec<String> {
        codings.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn each_coding_is_removed() {
        let text = b"{\"a\": 1}".repeat(50);
        for coding in ["gzip", "deflate", "br"] {
            let body = encode(coding, &text);
            let got = decode(&with(&[coding]), &body, 1 << 20);
            assert_eq!(got.as_deref(), Ok(&text[..]), "{coding}");
        }
        let raw = encode("raw-deflate", &text);
        assert_eq!(
            decode(&with(&["deflate"]), &raw, 1 << 20).as_deref(),
            Ok(&text[..]),
            "raw deflate where zlib is meant"
        );
    }

    #[test]
    fn stacked_codings_are_removed_last_first() {
        let mut h = HeaderMap::new();
        h.append(CONTENT_ENCODING, "gzip, Identity".parse().unwrap());
        h.append(CONTENT_ENCODING, "BR".parse().unwrap());
        let codings = codings(&h).unwrap();
        assert_eq!(codings, ["gzip", "br"]);
        let body = encode("br", &encode("gzip", b"hello"));
        assert_eq!(decode(&codings, &body, 100).as_deref(), Ok(&b"hello"[..]));
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_bound() {
        let bomb = encode("gzip", &vec![0; 16 << 20]);
        assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
        assert_eq!(
            decode(&with(&["gzip"]), &bomb, 1 << 20),
            Err(DecodeError::TooLarge(1 << 20))
        );
        assert!(
            decode(&with(&["gzip"]), &bomb, 16 << 20).is_ok(),
            "at the bound"
        );
    }

    #[test]
    fn corrupt_unknown_and_piled_up_codings_are_errors() {
        let gz = encode("gzip", b"hello world");
        let corrupt = [&gz[..gz.len() - 6], b"xxxxxx"].concat();
        for (coding, body) in [
            ("gzip", &b"not gzip"[..]),
            ("gzip", &corrupt[..]),
            ("gzip", &gz[..gz.len() / 2]),
            ("br", b"\xff\xff\xff\xff"),
            ("deflate", b"\xff\xff\xff\xff"),
        ] {
            let got = decode(&with(&[coding]), body, 100);
            assert!(
                matches!(got, Err(DecodeError::Corrupt { .. })),
                "{coding}: {got:?}"
            );
        }
        assert_eq!(
            decode(&with(&["zstd"]), b"x", 100),
            Err(DecodeError::Unknown("zstd".into()))
        );
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_ENCODING,
            "gzip,gzip,gzip,gzip,gzip".parse().unwrap(),
        );
        assert_eq!(codings(&h), Err(DecodeError::TooManyCodings));
    }
}
