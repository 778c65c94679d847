//! Scrubbing secret values out of untrusted text and bytes (HTTP responses, plugin log lines, records).
//!
//! A hostile server or plugin may re-encode a secret to get it past the scrubber, so a [`Redactor`] looks for:
//!
//! - the raw value, and any run of at least [`MIN_FRAGMENT_BYTES`] consecutive bytes of it (a value split across
//!   two fields is still caught);
//! - the same in a *decoded view* of the haystack, where percent-encoding, JSON string escapes and HTML character
//!   references are decoded, applied twice so one level of nesting (a JSON-escaped percent-encoding, a
//!   percent-encoded entity, a double percent-encoding) is undone too; every decoded byte remembers the original
//!   bytes it came from, so a match is replaced together with its whole encoded sequence;
//! - base64 (standard and URL-safe, padded or not) at any alignment inside a larger base64 string, and hex.
//!
//! All matching is ASCII-case-insensitive. Every occurrence of every derived needle is found (overlapping search)
//! and the union of the matched ranges is replaced, one [`REDACTED`] per contiguous range.

use std::borrow::Cow;
use std::fmt;

use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use zeroize::Zeroizing;

/// What every scrubbed range is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// The shortest run of a secret's bytes that is redacted on its own; also the shortest value [`Redactor::add`] takes.
pub const MIN_FRAGMENT_BYTES: usize = 8;

/// Replaces every form of a set of registered secret values with [`REDACTED`].
#[derive(Default, Clone)]
pub struct Redactor {
    /// The registered values, wiped from memory when dropped.
    secrets: Vec<Zeroizing<Vec<u8>>>,
    /// Built from `secrets`; `None` while there are none.
    matcher: Option<Matcher>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the count: a value must never reach a log through `{:?}`.
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// Registers a secret value (a no-op for one already registered); rebuilds the matcher.
    ///
    /// Values shorter than [`MIN_FRAGMENT_BYTES`] are ignored: the host refuses them at load, and scrubbing every
    /// occurrence of a few bytes would mangle unrelated text.
    pub fn add(&mut self, value: &[u8]) {
        if value.len() < MIN_FRAGMENT_BYTES || self.secrets.iter().any(|s| s.as_slice() == value) {
            return;
        }
        self.secrets.push(Zeroizing::new(value.to_vec()));
        self.matcher = Some(Matcher::build(&self.secrets));
    }

    /// Whether `value` is registered already (so a caller can skip taking a write lock).
    pub fn knows(&self, value: &[u8]) -> bool {
        self.secrets.iter().any(|s| s.as_slice() == value)
    }

    /// Whether any value is registered.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `bytes` with every form of every registered value replaced by [`REDACTED`], or `None` when nothing matched
    /// (so the caller can keep the original without copying).
    pub fn scrub_bytes(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let matcher = self.matcher.as_ref()?;
        let ranges = matcher.ranges(bytes);
        if ranges.is_empty() {
            return None;
        }
        let removed: usize = ranges.iter().map(|&(s, e)| e - s).sum();
        let mut out = Vec::with_capacity(bytes.len() - removed + ranges.len() * REDACTED.len());
        let mut copied = 0;
        for (start, end) in ranges {
            out.extend_from_slice(&bytes[copied..start]);
            out.extend_from_slice(REDACTED.as_bytes());
            copied = end;
        }
        out.extend_from_slice(&bytes[copied..]);
        Some(out)
    }

    /// `text` scrubbed; borrowed when untouched.
    ///
    /// Replaced ranges always cover whole UTF-8 and escape sequences, so valid UTF-8 stays valid (the lossy
    /// conversion is only a backstop).
    pub fn scrub_str<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.scrub_bytes(text.as_bytes()) {
            None => Cow::Borrowed(text),
            Some(bytes) => Cow::Owned(
                String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
        }
    }

    /// A body, shared unchanged when it holds no secret.
    pub fn scrub_body(&self, body: Bytes) -> Bytes {
        match self.scrub_bytes(&body) {
            None => body,
            Some(scrubbed) => Bytes::from(scrubbed),
        }
    }

    /// Scrubs header values in place, and removes any header whose name contains a secret form.
    ///
    /// A scrubbed value that is no longer a valid [`HeaderValue`] becomes [`REDACTED`].
    pub fn scrub_headers(&self, headers: &mut HeaderMap) {
        if self.matcher.is_none() {
            return;
        }
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| self.contains(name.as_str().as_bytes()))
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(&name);
        }
        for value in headers.values_mut() {
            if let Some(scrubbed) = self.scrub_bytes(value.as_bytes()) {
                let mut new = HeaderValue::from_bytes(&scrubbed).unwrap_or_else(|_| HeaderValue::from_static(REDACTED));
                new.set_sensitive(value.is_sensitive());
                *value = new;
            }
        }
    }

    /// Whether `bytes` contains any registered form (no allocation of the output).
    pub fn contains(&self, bytes: &[u8]) -> bool {
        let Some(matcher) = &self.matcher else {
            return false;
        };
        if matcher.ac.is_match(bytes) {
            return true;
        }
        let Some(once) = View::decode(bytes) else {
            return false;
        };
        matcher.ac.is_match(once.bytes.as_slice())
            || View::decode(&once.bytes).is_some_and(|twice| matcher.ac.is_match(twice.bytes.as_slice()))
    }
}

/// How far a needle's match is widened, for base64 characters that carry only part of the secret's bits.
#[derive(Clone, Copy, Default)]
struct Widen {
    /// A leading base64 character mixes the secret's first bits with unknown preceding ones.
    before: bool,
    /// A trailing base64 character mixes the secret's last bits with unknown following ones (or padding bits).
    after: bool,
    /// `=` characters that follow when the secret ends the encoded string.
    padding: u8,
}

impl Widen {
    fn max(self, other: Widen) -> Widen {
        Widen {
            before: self.before || other.before,
            after: self.after || other.after,
            padding: self.padding.max(other.padding),
        }
    }
}

/// The automaton over every needle derived from the registered values.
#[derive(Clone)]
struct Matcher {
    /// Case-insensitive, standard semantics for an overlapping search: the union of *every* occurrence is exact,
    /// where leftmost-longest plus skipping past a match can stop short inside a periodic value (`aaaaaaaaaX`).
    ac: AhoCorasick,
    /// Indexed by pattern id.
    widen: Vec<Widen>,
}

impl Matcher {
    fn build(secrets: &[Zeroizing<Vec<u8>>]) -> Matcher {
        let mut needles: Vec<(Zeroizing<Vec<u8>>, Widen)> = Vec::new();
        for secret in secrets {
            // Form-encoding turns a space into `+`, which the decoded view keeps as `+` (a literal `+` is far more
            // common); both spellings are searched instead. The reverse catches a `+` that a server form-decoded.
            let mut variants = vec![Zeroizing::new(secret.to_vec())];
            if secret.contains(&b' ') {
                variants.push(Zeroizing::new(
                    secret.iter().map(|&b| if b == b' ' { b'+' } else { b }).collect(),
                ));
            }
            if secret.contains(&b'+') {
                variants.push(Zeroizing::new(
                    secret.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect(),
                ));
            }
            // Every window of MIN_FRAGMENT_BYTES: the union of their occurrences covers every run of at least that
            // many secret bytes, so a whole occurrence and a fragment are the same case.
            for variant in &variants {
                for window in variant.windows(MIN_FRAGMENT_BYTES) {
                    needles.push((Zeroizing::new(window.to_ascii_lowercase()), Widen::default()));
                }
            }
            let mut hex = Zeroizing::new(Vec::with_capacity(secret.len() * 2));
            for &b in secret.iter() {
                hex.extend_from_slice(&[HEX_DIGITS[usize::from(b >> 4)], HEX_DIGITS[usize::from(b & 15)]]);
            }
            needles.push((hex, Widen::default()));
            base64_needles(secret, &mut needles);
        }
        // Needles are lower-cased above (matching ignores ASCII case anyway), so duplicates compare equal.
        needles.sort_unstable_by(|a, b| a.0.as_slice().cmp(b.0.as_slice()));
        let mut unique: Vec<(Zeroizing<Vec<u8>>, Widen)> = Vec::with_capacity(needles.len());
        for (needle, widen) in needles {
            match unique.last_mut() {
                Some(last) if last.0 == needle => last.1 = last.1.max(widen),
                _ => unique.push((needle, widen)),
            }
        }
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(unique.iter().map(|(needle, _)| needle.as_slice()))
            // Only a value of many megabytes could exceed the automaton's limits; failing open is not an option.
            .expect("secret needles fit in an Aho-Corasick automaton");
        Matcher {
            ac,
            widen: unique.into_iter().map(|(_, widen)| widen).collect(),
        }
    }

    /// The sorted, disjoint, non-touching ranges of `bytes` to replace.
    fn ranges(&self, bytes: &[u8]) -> Vec<(usize, usize)> {
        let mut ranges = Vec::new();
        self.scan(bytes, &mut ranges);
        if let Some(once) = View::decode(bytes) {
            let mut found = Vec::new();
            self.scan(&once.bytes, &mut found);
            ranges.extend(found.drain(..).map(|r| once.source_range(r)));
            if let Some(twice) = View::decode(&once.bytes) {
                self.scan(&twice.bytes, &mut found);
                ranges.extend(found.into_iter().map(|r| once.source_range(twice.source_range(r))));
            }
        }
        for range in &mut ranges {
            *range = utf8_boundaries(bytes, *range);
        }
        ranges.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }

    /// Appends the ranges of `hay` holding a needle, merging overlapping ones as they come.
    fn scan(&self, hay: &[u8], out: &mut Vec<(usize, usize)>) {
        for m in self.ac.find_overlapping_iter(hay) {
            let (mut start, mut end) = (m.start(), m.end());
            let widen = self.widen[m.pattern().as_usize()];
            if widen.before && start > 0 && is_base64_char(hay[start - 1]) {
                start -= 1;
            }
            if widen.after && hay.get(end).is_some_and(|&b| is_base64_char(b)) {
                end += 1;
            }
            for _ in 0..widen.padding {
                if hay.get(end) == Some(&b'=') {
                    end += 1;
                }
            }
            // Matches come in order of end, so merging with the tail keeps the list short on hostile input
            // (e.g. the secret repeated a million times).
            while let Some(&(s, e)) = out.last() {
                if s <= end && start <= e {
                    start = start.min(s);
                    end = end.max(e);
                    out.pop();
                } else {
                    break;
                }
            }
            out.push((start, end));
        }
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The base64 characters fully determined by `secret`'s own bits, for each of the three alignments the secret can
/// have inside a larger encoded string, in both alphabets.
fn base64_needles(secret: &[u8], needles: &mut Vec<(Zeroizing<Vec<u8>>, Widen)>) {
    for shift in 0..3 {
        let mut shifted = Zeroizing::new(Vec::with_capacity(shift + secret.len()));
        shifted.resize(shift, 0);
        shifted.extend_from_slice(secret);
        let (first_bit, end_bit) = (8 * shift, 8 * (shift + secret.len()));
        // Character j encodes bits [6j, 6j + 6); keep those entirely within the secret's bits.
        let (first, end) = (first_bit.div_ceil(6), end_bit / 6);
        let widen = Widen {
            before: first_bit % 6 != 0,
            after: end_bit % 6 != 0,
            padding: ((3 - (shift + secret.len()) % 3) % 3) as u8,
        };
        for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
            let encoded = Zeroizing::new(engine.encode(shifted.as_slice()));
            needles.push((
                Zeroizing::new(encoded.as_bytes()[first..end].to_ascii_lowercase()),
                widen,
            ));
        }
    }
}

fn is_base64_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

/// Widens `(start, end)` so it neither starts nor ends inside a UTF-8 sequence.
fn utf8_boundaries(bytes: &[u8], (mut start, mut end): (usize, usize)) -> (usize, usize) {
    let continuation = |b: u8| b & 0xC0 == 0x80;
    for _ in 0..3 {
        if start > 0 && continuation(bytes[start]) {
            start -= 1;
        }
        if bytes.get(end).is_some_and(|&b| continuation(b)) {
            end += 1;
        }
    }
    (start, end)
}

/// A haystack with its escape sequences decoded, remembering where each decoded byte came from.
struct View {
    /// The decoded bytes; wiped on drop since they may hold a decoded secret.
    bytes: Zeroizing<Vec<u8>>,
    /// The decoded sequences, in order; bytes between them are copied one for one.
    escapes: Vec<Escape>,
}

/// One decoded sequence. 32-bit offsets keep a heavily escaped body's map small.
#[derive(Clone, Copy)]
struct Escape {
    /// Offset in the view.
    at: u32,
    /// Offset in the source.
    from: u32,
    /// Decoded length (1 to 4 bytes).
    len: u8,
    /// Encoded length.
    source_len: u8,
}

impl View {
    /// The decoded view of `source`, or `None` when it has nothing to decode (or exceeds 4 GiB).
    fn decode(source: &[u8]) -> Option<View> {
        if u32::try_from(source.len()).is_err() {
            return None;
        }
        let mut bytes = Zeroizing::new(Vec::new());
        let mut escapes = Vec::new();
        let (mut copied, mut at) = (0, 0);
        while let Some(offset) = memchr::memchr3(b'%', b'\\', b'&', &source[at..]) {
            let pos = at + offset;
            let Some((decoded, len, source_len)) = decode_at(source, pos) else {
                at = pos + 1;
                continue;
            };
            if escapes.is_empty() {
                bytes.reserve_exact(source.len());
            }
            bytes.extend_from_slice(&source[copied..pos]);
            escapes.push(Escape {
                at: bytes.len() as u32,
                from: pos as u32,
                len,
                source_len: source_len as u8,
            });
            bytes.extend_from_slice(&decoded[..usize::from(len)]);
            at = pos + source_len;
            copied = at;
        }
        if escapes.is_empty() {
            return None;
        }
        bytes.extend_from_slice(&source[copied..]);
        Some(View { bytes, escapes })
    }

    /// The source range that view byte `pos` came from.
    fn source_of(&self, pos: usize) -> (usize, usize) {
        let index = self.escapes.partition_point(|e| e.at as usize <= pos);
        let Some(e) = index.checked_sub(1).map(|i| self.escapes[i]) else {
            return (pos, pos + 1);
        };
        let (at, from) = (e.at as usize, e.from as usize);
        if pos < at + usize::from(e.len) {
            (from, from + usize::from(e.source_len))
        } else {
            let source = from + usize::from(e.source_len) + (pos - at - usize::from(e.len));
            (source, source + 1)
        }
    }

    /// The source range that view range `(start, end)` came from, covering whole escape sequences.
    fn source_range(&self, (start, end): (usize, usize)) -> (usize, usize) {
        (self.source_of(start).0, self.source_of(end - 1).1)
    }
}

/// Decodes the escape sequence starting at `source[pos]` (a `%`, `\` or `&`): the decoded bytes, their count, and
/// the sequence's length; `None` when it is not a well-formed sequence.
fn decode_at(source: &[u8], pos: usize) -> Option<([u8; 4], u8, usize)> {
    let rest = &source[pos..];
    match rest[0] {
        b'%' => {
            let byte = hex_value(rest.get(1..3)?)?;
            Some(([byte as u8, 0, 0, 0], 1, 3))
        }
        b'\\' => {
            let simple = match *rest.get(1)? {
                b @ (b'"' | b'\\' | b'/') => b,
                b'b' => 0x08,
                b'f' => 0x0C,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'u' => return decode_json_unicode(rest),
                _ => return None,
            };
            Some(([simple, 0, 0, 0], 1, 2))
        }
        b'&' => decode_entity(rest),
        _ => None,
    }
}

/// `\uXXXX`, or a `\uD8XX\uDCXX` surrogate pair; a lone surrogate is left undecoded.
fn decode_json_unicode(rest: &[u8]) -> Option<([u8; 4], u8, usize)> {
    let unit = hex_value(rest.get(2..6)?)?;
    let (code, source_len) = match unit {
        0xD800..=0xDBFF => {
            let low = rest
                .get(6..12)
                .filter(|s| s.starts_with(b"\\u"))
                .and_then(|s| hex_value(&s[2..]))?;
            if !(0xDC00..=0xDFFF).contains(&low) {
                return None;
            }
            (0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00), 12)
        }
        _ => (unit, 6),
    };
    encode_char(code, source_len)
}

/// `&#DDD;`, `&#xHH;` or a named ASCII character reference.
fn decode_entity(rest: &[u8]) -> Option<([u8; 4], u8, usize)> {
    // The longest reference decoded here, `&DiacriticalGrave;`, fits in 18 bytes.
    let body = &rest[1..rest.len().min(18)];
    let semi = memchr::memchr(b';', body)?;
    let name = &body[..semi];
    let source_len = semi + 2;
    if let Some(number) = name.strip_prefix(b"#") {
        let code = match number.split_first()? {
            (b'x' | b'X', digits) => hex_value(digits)?,
            _ if number.iter().all(u8::is_ascii_digit) => number
                .iter()
                .try_fold(0u32, |n, &d| n.checked_mul(10)?.checked_add(u32::from(d - b'0')))?,
            _ => return None,
        };
        return encode_char(code, source_len);
    }
    let &(_, byte) = NAMED_ENTITIES.iter().find(|(entity, _)| entity.as_bytes() == name)?;
    Some(([byte, 0, 0, 0], 1, source_len))
}

/// Named references to ASCII characters (HTML5); names are case-sensitive.
const NAMED_ENTITIES: &[(&str, u8)] = &[
    ("amp", b'&'),
    ("AMP", b'&'),
    ("lt", b'<'),
    ("LT", b'<'),
    ("gt", b'>'),
    ("GT", b'>'),
    ("quot", b'"'),
    ("QUOT", b'"'),
    ("apos", b'\''),
    ("plus", b'+'),
    ("sol", b'/'),
    ("bsol", b'\\'),
    ("equals", b'='),
    ("num", b'#'),
    ("percnt", b'%'),
    ("colon", b':'),
    ("semi", b';'),
    ("commat", b'@'),
    ("excl", b'!'),
    ("quest", b'?'),
    ("dollar", b'$'),
    ("period", b'.'),
    ("comma", b','),
    ("lowbar", b'_'),
    ("UnderBar", b'_'),
    ("lpar", b'('),
    ("rpar", b')'),
    ("ast", b'*'),
    ("midast", b'*'),
    ("lsqb", b'['),
    ("lbrack", b'['),
    ("rsqb", b']'),
    ("rbrack", b']'),
    ("lcub", b'{'),
    ("lbrace", b'{'),
    ("rcub", b'}'),
    ("rbrace", b'}'),
    ("verbar", b'|'),
    ("vert", b'|'),
    ("VerticalLine", b'|'),
    ("Hat", b'^'),
    ("grave", b'`'),
    ("DiacriticalGrave", b'`'),
    ("Tab", b'\t'),
    ("NewLine", b'\n'),
];

/// The value of 1 to 8 hex digits.
fn hex_value(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    digits
        .iter()
        .try_fold(0u32, |n, &d| Some((n << 4) | (d as char).to_digit(16)?))
}

/// The UTF-8 encoding of code point `code` (`None` for a surrogate or out of range).
fn encode_char(code: u32, source_len: usize) -> Option<([u8; 4], u8, usize)> {
    let c = char::from_u32(code)?;
    let mut buf = [0; 4];
    let len = c.encode_utf8(&mut buf).len();
    Some((buf, len as u8, source_len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};

    /// Exercises percent, JSON, HTML and base64 special characters, a space and a two-byte character.
    const S1: &str = "p@ss/w0rd+Key=42 é";
    const S2: &str = "ghp_0123456789abcdefXYZ";
    /// Its base64 holds both `+` and `/`.
    const S3: &str = ">>>???secret-value";

    fn redactor() -> Redactor {
        let mut redactor = Redactor::default();
        redactor.add(S1.as_bytes());
        redactor.add(S2.as_bytes());
        redactor
    }

    fn scrub(text: &str) -> String {
        redactor().scrub_str(text).into_owned()
    }

    /// `encoded` with the characters carrying bits of the secret at `prefix..prefix + len` (in the decoded bytes)
    /// replaced.
    fn base64_expected(encoded: &str, prefix: usize, len: usize) -> String {
        let (start, end) = (8 * prefix / 6, (8 * (prefix + len)).div_ceil(6));
        format!("{}{REDACTED}{}", &encoded[..start], &encoded[end..])
    }

    #[test]
    fn raw_value_in_any_ascii_case() {
        assert_eq!(scrub("a p@ss/w0rd+Key=42 é b"), "a [REDACTED] b");
        assert_eq!(scrub("P@SS/W0RD+KEY=42 é"), "[REDACTED]");
        assert_eq!(scrub("token=ghp_0123456789abcdefXYZ;"), "token=[REDACTED];");
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(scrub("x=p%40ss%2Fw0rd%2BKey%3D42%20%C3%A9&y=1"), "x=[REDACTED]&y=1");
        assert_eq!(scrub("x=p%40ss/w0rd%2BKey=42%20é&y=1"), "x=[REDACTED]&y=1");
        assert_eq!(scrub("x=p%40ss%2fw0rd%2bKey%3d42%20%c3%a9"), "x=[REDACTED]");
        assert_eq!(scrub("/%67%68%70%5F0123456789abcdefXYZ/"), "/[REDACTED]/");
    }

    #[test]
    fn form_encoding_with_plus_for_space() {
        assert_eq!(scrub("q=p%40ss%2Fw0rd%2BKey%3D42+%C3%A9&z=1"), "q=[REDACTED]&z=1");
    }

    #[test]
    fn json_escapes() {
        assert_eq!(
            scrub(r#"{"k":"p@ss\/w0rd\u002bKey=42 \u00e9"}"#),
            r#"{"k":"[REDACTED]"}"#
        );
        assert_eq!(
            scrub(r#"{"k":"p\u0040ss\/w0rd\u002BKey\u003d42\u0020\u00E9"}"#),
            r#"{"k":"[REDACTED]"}"#
        );
    }

    #[test]
    fn json_surrogate_pairs_and_lone_surrogates() {
        let mut redactor = Redactor::default();
        redactor.add("tok\u{1F600}en-secret".as_bytes());
        assert_eq!(
            redactor.scrub_str(r#"["tok\ud83d\ude00en-secret"]"#),
            r#"["[REDACTED]"]"#
        );
        // A lone surrogate is left as it is, without harm to the rest.
        assert_eq!(
            redactor.scrub_str(r#"["\ud83d", "\ude00x"]"#),
            r#"["\ud83d", "\ude00x"]"#
        );
    }

    #[test]
    fn html_entities() {
        assert_eq!(
            scrub("<b>p&#64;ss&#x2f;w0rd&plus;Key&equals;42&#32;&#233;</b>"),
            "<b>[REDACTED]</b>"
        );
        assert_eq!(scrub("p&commat;ss&sol;w0rd&#43;Key&#X3D;42 &#xE9;"), "[REDACTED]");
        assert_eq!(scrub("ghp&lowbar;0123456789abcdef&#88;YZ"), "[REDACTED]");
    }

    #[test]
    fn base64_whole_value() {
        let padded = STANDARD.encode(S1);
        assert!(padded.ends_with('='), "the test needs padding: {padded}");
        assert_eq!(scrub(&format!("Basic {padded}")), "Basic [REDACTED]");
        assert_eq!(
            scrub(&format!("Basic {}", STANDARD_NO_PAD.encode(S1))),
            "Basic [REDACTED]"
        );
        assert_eq!(
            scrub(&format!("?t={}&x", URL_SAFE_NO_PAD.encode(S1))),
            "?t=[REDACTED]&x"
        );
        // A value whose encodings differ between the alphabets: `Pj4+Pz8/...` and `Pj4-Pz8_...`.
        let mut redactor = Redactor::default();
        redactor.add(S3.as_bytes());
        for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
            assert_eq!(
                redactor.scrub_str(&format!("?t={}&x", engine.encode(S3))),
                "?t=[REDACTED]&x"
            );
        }
        assert_eq!(redactor.scrub_str(&URL_SAFE.encode(format!("xy{S3}"))), "eH[REDACTED]");
        assert_eq!(scrub(&format!("\"{}\"", STANDARD.encode(S2))), "\"[REDACTED]\"");
    }

    #[test]
    fn base64_at_every_alignment_inside_a_larger_string() {
        for secret in [S1, S2] {
            for prefix in ["", "x", "xy", "{\"token\":\"", "user:", "Bearer abc "] {
                for suffix in ["", "\"}", ":tail of some length"] {
                    let plain = format!("{prefix}{secret}{suffix}");
                    for engine in [STANDARD, URL_SAFE] {
                        let encoded = engine.encode(&plain);
                        let mut expected = base64_expected(&encoded, prefix.len(), secret.len());
                        if suffix.is_empty() {
                            expected = expected.trim_end_matches('=').to_owned();
                        }
                        assert_eq!(scrub(&encoded), expected, "{plain:?}");
                    }
                }
            }
        }
        // Spelled out once: `user:` puts the secret at alignment 2.
        let encoded = STANDARD.encode(format!("user:{S2}"));
        assert_eq!(&encoded[..6], "dXNlcj");
        assert_eq!(scrub(&format!("Basic {encoded}")), "Basic dXNlcj[REDACTED]");
    }

    #[test]
    fn hex_in_either_case() {
        let lower: String = S1.bytes().map(|b| format!("{b:02x}")).collect();
        assert_eq!(scrub(&format!("<{lower}>")), "<[REDACTED]>");
        assert_eq!(scrub(&format!("<{}>", lower.to_uppercase())), "<[REDACTED]>");
        let s2: String = S2.bytes().map(|b| format!("{b:02X}")).collect();
        assert_eq!(scrub(&format!("0x{s2}")), "0x[REDACTED]");
    }

    #[test]
    fn fragments_of_at_least_eight_bytes() {
        // Split in two fields of 9 and 10 bytes.
        assert_eq!(
            scrub(r#"{"a":"p@ss/w0rd","b":"+Key=42 é"}"#),
            r#"{"a":"[REDACTED]","b":"[REDACTED]"}"#
        );
        assert_eq!(scrub("ghp_0123 + 456789abcdefXYZ"), "[REDACTED] + [REDACTED]");
        assert_eq!(scrub("ghp_012 + 3456789abcdefXYZ"), "ghp_012 + [REDACTED]");
        // Fragments are found in the decoded view too.
        assert_eq!(scrub("a=p%40ss%2Fw0rd&b=%2BKey%3D42%20"), "a=[REDACTED]&b=[REDACTED]");
        // Seven bytes alone are not a secret.
        assert_eq!(redactor().scrub_bytes(b"p@ss/w0 and 42 \xC3\xA9"), None);
        assert_eq!(redactor().scrub_bytes(b"ghp_012 3456789 abcdefX"), None);
    }

    #[test]
    fn one_marker_per_occurrence() {
        assert_eq!(scrub("<p@ss/w0rd+Key=42 é>"), "<[REDACTED]>");
        assert_eq!(scrub("p@ss/w0rd+Key=42 ép@ss/w0rd+Key=42 é"), "[REDACTED]");
        assert_eq!(
            scrub("ghp_0123456789abcdefXYZ ghp_0123456789abcdefXYZ"),
            "[REDACTED] [REDACTED]"
        );
        // An occurrence overlapping a longer run of secret-like bytes still ends in one marker.
        assert_eq!(scrub("ghp_0123456789abcdefXYZXYZ"), "[REDACTED]XYZ");
    }

    #[test]
    fn repetitive_values_are_covered_to_the_end() {
        let mut redactor = Redactor::default();
        redactor.add(b"aaaaaaaaaX");
        assert_eq!(redactor.scrub_str("<aaaaaaaaaaaaaX>"), "<[REDACTED]>");
    }

    #[test]
    fn nested_encodings() {
        // Percent-encoding whose `%` were JSON-escaped.
        assert_eq!(
            scrub(r#"{"u":"p\u002540ss\u00252Fw0rd\u00252BKey\u00253D42\u002520\u0025C3\u0025A9"}"#),
            r#"{"u":"[REDACTED]"}"#
        );
        // JSON escapes, then percent-encoded.
        assert_eq!(scrub("p%40ss%5C%2Fw0rd%5Cu002bKey=42 é"), "[REDACTED]");
        // Percent-encoded HTML entities.
        assert_eq!(scrub("v=p%26%2364%3Bss%26sol%3Bw0rd%26plus%3BKey=42 é"), "v=[REDACTED]");
        // Double percent-encoding.
        assert_eq!(scrub("p%2540ss%252Fw0rd%252BKey%253D42%2520%25C3%25A9"), "[REDACTED]");
        // Base64 in a JSON string with escaped slashes.
        let mut redactor = Redactor::default();
        redactor.add(S3.as_bytes());
        let escaped = STANDARD.encode(S3).replace('/', "\\/");
        assert_eq!(&escaped[..9], "Pj4+Pz8\\/");
        assert_eq!(
            redactor.scrub_str(&format!(r#"{{"b":"{escaped}"}}"#)),
            r#"{"b":"[REDACTED]"}"#
        );
    }

    #[test]
    fn untouched_input_is_not_copied() {
        let redactor = redactor();
        let text = "nothing %41 &amp; \\n here, p@ss/w0 and ghp_012 are only seven bytes";
        assert_eq!(redactor.scrub_bytes(text.as_bytes()), None);
        assert!(matches!(redactor.scrub_str(text), Cow::Borrowed(t) if t.as_ptr() == text.as_ptr()));
        let body = Bytes::from(text.repeat(100));
        assert_eq!(redactor.scrub_body(body.clone()).as_ptr(), body.as_ptr());
        assert!(!redactor.contains(text.as_bytes()));
        assert_eq!(Redactor::default().scrub_bytes(S1.as_bytes()), None);
    }

    #[test]
    fn scrub_body_replaces_secrets() {
        let body = Bytes::from(format!("{{\"token\":\"{S2}\"}}"));
        assert_eq!(
            redactor().scrub_body(body),
            Bytes::from_static(b"{\"token\":\"[REDACTED]\"}")
        );
    }

    #[test]
    fn json_stays_valid_json() {
        let lower_hex: String = S1.bytes().map(|b| format!("{b:02x}")).collect();
        let document = format!(
            r#"{{"raw":{raw},"json":"p@ss\/w0rd\u002BKey=42 \u00e9","pct":"p%40ss%2Fw0rd%2BKey%3D42%20%C3%A9","form":"p%40ss%2Fw0rd%2BKey%3D42+%C3%A9","html":"p&#64;ss&sol;w0rd&#x2b;Key&equals;42 &#233;","b64":"{b64}","basic":"Basic {basic}","hex":"{lower_hex}","quoted":"\"p@ss\/w0rd+Key=42 \u00e9\"","s2":"{S2}","nested":"p\u002540ss\u00252Fw0rd\u00252BKey\u00253D42\u002520\u0025C3\u0025A9"}}"#,
            raw = serde_json::to_string(S1).unwrap(),
            b64 = STANDARD.encode(S1),
            basic = STANDARD.encode(format!("user:{S1}")),
        );
        serde_json::from_str::<serde_json::Value>(&document).expect("the input is JSON");
        let scrubbed = scrub(&document);
        let value: serde_json::Value = serde_json::from_str(&scrubbed).expect("the output is still JSON");
        let object = value.as_object().unwrap();
        assert_eq!(object.len(), 11);
        for (key, field) in object {
            let expected = match key.as_str() {
                "basic" => "Basic dXNlcj[REDACTED]",
                "quoted" => "\"[REDACTED]\"",
                _ => REDACTED,
            };
            assert_eq!(field.as_str(), Some(expected), "{key}");
        }
    }

    #[test]
    fn headers() {
        let redactor = redactor();
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {S2}")).unwrap());
        headers.append(
            "set-cookie",
            HeaderValue::from_static("a=p%40ss%2Fw0rd%2BKey%3D42%20%C3%A9; Path=/"),
        );
        headers.append("set-cookie", HeaderValue::from_static("b=2"));
        headers.insert(
            HeaderName::from_bytes(format!("x-{S2}").as_bytes()).unwrap(),
            HeaderValue::from_static("1"),
        );
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        redactor.scrub_headers(&mut headers);
        assert_eq!(headers.len(), 4);
        assert_eq!(headers["authorization"], "Bearer [REDACTED]");
        let cookies: Vec<_> = headers.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=[REDACTED]; Path=/", "b=2"]);
        assert_eq!(headers["content-type"], "text/plain");
        assert!(headers.keys().all(|name| !name.as_str().contains("0123456789")));
    }

    #[test]
    fn debug_shows_only_the_count() {
        let redactor = redactor();
        assert_eq!(format!("{redactor:?}"), "Redactor { secrets: 2 }");
        let pretty = format!("{redactor:#?}");
        assert!(!pretty.contains("p@ss") && !pretty.contains("ghp_"), "{pretty}");
    }

    #[test]
    fn two_secrets_at_once() {
        assert_eq!(
            scrub("user=p%40ss%2Fw0rd%2BKey%3D42%20%C3%A9 token=ghp_0123456789abcdefXYZ"),
            "user=[REDACTED] token=[REDACTED]"
        );
    }

    #[test]
    fn add_ignores_short_and_repeated_values() {
        let mut redactor = Redactor::default();
        assert!(redactor.is_empty());
        redactor.add(b"1234567");
        assert!(redactor.is_empty());
        redactor.add(S2.as_bytes());
        redactor.add(S2.as_bytes());
        assert!(!redactor.is_empty());
        assert_eq!(format!("{redactor:?}"), "Redactor { secrets: 1 }");
        assert_eq!(redactor.scrub_str("1234567"), "1234567");
    }

    #[test]
    fn replacements_cover_whole_utf8_sequences() {
        let mut redactor = Redactor::default();
        redactor.add("0123456789é".as_bytes());
        // The fragment ends in the first byte of `è`, which shares it with `é`.
        assert_eq!(redactor.scrub_str("x123456789èy"), "x[REDACTED]y");
    }

    #[test]
    fn contains_every_form() {
        let redactor = redactor();
        assert!(redactor.contains(S1.as_bytes()));
        assert!(redactor.contains(b"p%40ss%2Fw0rd"));
        assert!(redactor.contains(br#"p\u002540ss\u00252Fw0rd"#));
        assert!(redactor.contains(STANDARD.encode(S2).as_bytes()));
        assert!(!redactor.contains(b"p@ss/w0"));
        assert!(!Redactor::default().contains(S1.as_bytes()));
    }

    #[test]
    fn clones_scrub_alike() {
        let redactor = redactor().clone();
        assert_eq!(redactor.scrub_str(S2), REDACTED);
    }
}
