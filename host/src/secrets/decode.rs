//! Content decoding before scanning: a response body compressed with gzip or deflate is decoded
//! by the host (inside the response cap), so a secret cannot hide from the redactor in a
//! compressed body that the plugin would decompress itself.

use std::io::Read;

use bytes::Bytes;
use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};

use crate::http::EgressError;

/// Decodes `body` as its `content-encoding` says (gzip, x-gzip, deflate, identity; several
/// in order), removing the header. A decoded body larger than `max_bytes` is
/// [`EgressError::BodyTooLarge`]; an encoding the host cannot decode is refused, since the
/// body could not be checked for secrets.
///
/// # Errors
/// [`EgressError::BodyTooLarge`], or [`EgressError::Connection`] for an undecodable body.
pub(crate) fn decode_body(headers: &mut HeaderMap, body: Bytes, max_bytes: u64) -> Result<Bytes, EgressError> {
    let encodings: Vec<String> = headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .flat_map(|v| {
            let list = String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase();
            list.split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>()
        })
        .filter(|e| !e.is_empty() && e != "identity")
        .collect();
    // An empty body (a HEAD request, a 304) has nothing to decode, whatever the header says.
    if encodings.is_empty() || body.is_empty() {
        return Ok(body);
    }
    let mut body = body;
    // Codings are listed in the order they were applied: undo them from the last.
    for encoding in encodings.iter().rev() {
        body = match encoding.as_str() {
            "gzip" | "x-gzip" => read_capped(MultiGzDecoder::new(&body[..]), max_bytes)?,
            // RFC 9110's "deflate" is zlib-wrapped, but some servers send raw deflate.
            "deflate" => read_capped(ZlibDecoder::new(&body[..]), max_bytes)
                .or_else(|_| read_capped(DeflateDecoder::new(&body[..]), max_bytes))?,
            other => {
                return Err(EgressError::Connection(format!(
                    "the response is encoded with `{other}`, which the host cannot check for secrets"
                )));
            }
        };
    }
    headers.remove(CONTENT_ENCODING);
    headers.remove(CONTENT_LENGTH);
    Ok(body)
}

fn read_capped(reader: impl Read, max_bytes: u64) -> Result<Bytes, EgressError> {
    let mut out = Vec::new();
    reader
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| EgressError::Connection(format!("the response body could not be decoded: {e}")))?;
    if out.len() as u64 > max_bytes {
        return Err(EgressError::BodyTooLarge(max_bytes));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::{GzEncoder, ZlibEncoder};
    use http::HeaderValue;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        Bytes::from(encoder.finish().unwrap())
    }

    fn headers(encoding: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_ENCODING, HeaderValue::from_str(encoding).unwrap());
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("10"));
        headers
    }

    #[test]
    fn gzip_and_deflate_are_decoded_and_the_headers_dropped() {
        let mut h = headers("gzip");
        assert_eq!(decode_body(&mut h, gzip(b"hello secret"), 100).unwrap(), "hello secret");
        assert!(h.get(CONTENT_ENCODING).is_none() && h.get(CONTENT_LENGTH).is_none());

        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::default());
        zlib.write_all(b"deflated").unwrap();
        let mut h = headers("deflate");
        assert_eq!(
            decode_body(&mut h, Bytes::from(zlib.finish().unwrap()), 100).unwrap(),
            "deflated"
        );

        let twice = gzip(&gzip(b"twice"));
        let mut h = headers("gzip, gzip");
        assert_eq!(decode_body(&mut h, twice, 100).unwrap(), "twice");
    }

    #[test]
    fn an_empty_body_is_left_alone_whatever_its_encoding() {
        let mut h = headers("gzip");
        assert_eq!(decode_body(&mut h, Bytes::new(), 100).unwrap(), "");
    }

    #[test]
    fn identity_is_untouched() {
        let mut h = HeaderMap::new();
        assert_eq!(decode_body(&mut h, Bytes::from_static(b"plain"), 3).unwrap(), "plain");
    }

    /// A gzip bomb is stopped at the response cap, not decoded into memory.
    #[test]
    fn a_body_that_inflates_past_the_cap_is_too_large() {
        let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
        assert!(bomb.len() < 64 * 1024);
        let err = decode_body(&mut headers("gzip"), bomb, 1024 * 1024).unwrap_err();
        assert_eq!(err, EgressError::BodyTooLarge(1024 * 1024));
    }

    #[test]
    fn an_encoding_the_host_cannot_read_is_refused() {
        let err = decode_body(&mut headers("br"), Bytes::from_static(b"??"), 100).unwrap_err();
        assert!(err.to_string().contains("`br`"), "{err}");
        let err = decode_body(&mut headers("gzip"), Bytes::from_static(b"not gzip"), 100).unwrap_err();
        assert!(matches!(err, EgressError::Connection(_)), "{err}");
    }
}
