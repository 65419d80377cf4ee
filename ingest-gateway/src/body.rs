//! A request body as JSON text: media type checked, gzip undone within the
//! size limit, so a small compressed bomb cannot grow past it.

use std::fmt;
use std::io::Read;
use std::marker::PhantomData;

use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use flate2::read::MultiGzDecoder;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};

use crate::error::ApiError;

/// Media types a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// `application/json` only.
    Json,
    /// However Segment-style SDKs label the JSON they send: also
    /// `text/plain` (analytics.js, to skip the CORS preflight),
    /// `application/x-www-form-urlencoded` (RudderStack's Node SDK, whose
    /// HTTP client labels its gzip buffer so) or no `Content-Type`. The body
    /// is read as JSON whatever the label.
    SdkJson,
}

impl Accept {
    /// The media types, in words, for the refusal of another.
    pub fn described(self) -> &'static str {
        match self {
            Accept::Json => "application/json",
            Accept::SdkJson => {
                "application/json, text/plain or application/x-www-form-urlencoded \
                 (the body is read as JSON)"
            }
        }
    }
}

/// The body, checked and decompressed; at most `max_bytes` long.
pub fn read_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    accept: Accept,
    max_bytes: usize,
) -> Result<Bytes, ApiError> {
    check_media_type(headers, accept)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(max_bytes)
        } else {
            ApiError::UnreadableBody(rejection.body_text())
        }
    })?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|value| value.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("" | "identity") => Ok(body),
        Some("gzip" | "x-gzip") => gunzip(&body, max_bytes),
        Some(other) => Err(ApiError::UnsupportedEncoding(other.to_owned())),
    }
}

/// A JSON body as `T`, or 400 `invalid_json` saying where it is wrong.
///
/// UTF-8 is checked once for the whole body, not string by string; a body
/// that is not UTF-8 is parsed as bytes, so the error says where.
pub fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    parse_with(body, PhantomData::<T>)
}

/// A body that must be one JSON object, such as `{"events": [...]}`: serde
/// would also read a struct from an array of its fields (`[[...]]`), which
/// no client means.
pub fn parse_json_object<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    parse_json_object_with(body, PhantomData::<T>)
}

/// Like [`parse_json_object`], read by `seed` (a reader that knows a limit).
pub fn parse_json_object_with<'a, S: DeserializeSeed<'a>>(
    body: &'a [u8],
    seed: S,
) -> Result<S::Value, ApiError> {
    if body.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::InvalidJson(
            "the body must be a JSON object, not an array".to_owned(),
        ));
    }
    parse_with(body, seed)
}

/// The whole body read by `seed`, or 400 `invalid_json`.
fn parse_with<'a, S: DeserializeSeed<'a>>(body: &'a [u8], seed: S) -> Result<S::Value, ApiError> {
    let parsed = match std::str::from_utf8(body) {
        Ok(text) => read_all(serde_json::Deserializer::from_str(text), seed),
        Err(_) => read_all(serde_json::Deserializer::from_slice(body), seed),
    };
    parsed.map_err(|error| {
        let (field, reason) = json_refusal(&String::from_utf8_lossy(body), &error);
        ApiError::InvalidJson(if field == "$" {
            reason
        } else {
            format!("{field}: {reason}")
        })
    })
}

fn read_all<'a, R: serde_json::de::Read<'a>, S: DeserializeSeed<'a>>(
    mut json: serde_json::Deserializer<R>,
    seed: S,
) -> serde_json::Result<S::Value> {
    let value = seed.deserialize(&mut json)?;
    json.end()?;
    Ok(value)
}

/// A JSON array of which at most `keep` elements were kept: the others were
/// read (they must still be valid JSON) and counted, never stored. A batch
/// of a million tiny elements then costs the memory of `keep` of them.
#[derive(Debug)]
pub struct BoundedList<T> {
    pub kept: Vec<T>,
    /// Elements in the array, kept or not.
    pub len: usize,
}

/// Reads a [`BoundedList`] that keeps at most `.0` elements.
pub struct KeepAtMost<T>(pub usize, pub PhantomData<T>);

impl<T> KeepAtMost<T> {
    pub fn new(keep: usize) -> Self {
        Self(keep, PhantomData)
    }
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for KeepAtMost<T> {
    type Value = BoundedList<T>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for KeepAtMost<T> {
    type Value = BoundedList<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut kept = Vec::new();
        let mut len = 0;
        loop {
            if len < self.0 {
                match seq.next_element::<T>()? {
                    Some(element) => kept.push(element),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            len += 1;
        }
        Ok(BoundedList { kept, len })
    }
}

/// Besides `application/json`, what [`Accept::SdkJson`] takes.
const SDK_MEDIA_TYPES: [&str; 2] = ["text/plain", "application/x-www-form-urlencoded"];

fn check_media_type(headers: &HeaderMap, accept: Accept) -> Result<(), ApiError> {
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or("").trim());
    let accepted = match (mime, accept) {
        (Some(mime), _) if mime.eq_ignore_ascii_case("application/json") => true,
        (None, Accept::SdkJson) => true,
        (Some(mime), Accept::SdkJson) => SDK_MEDIA_TYPES
            .iter()
            .any(|sdk| mime.eq_ignore_ascii_case(sdk)),
        _ => false,
    };
    if accepted {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType {
            allowed: accept.described(),
        })
    }
}

/// Decompresses at most `max_bytes`; one byte more is a 413, not a larger buffer.
fn gunzip(body: &[u8], max_bytes: usize) -> Result<Bytes, ApiError> {
    let mut decoded = Vec::with_capacity(body.len().saturating_mul(4).min(max_bytes));
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    MultiGzDecoder::new(body)
        .take(limit)
        .read_to_end(&mut decoded)
        .map_err(|error| ApiError::InvalidGzip(error.to_string()))?;
    if decoded.len() > max_bytes {
        return Err(ApiError::PayloadTooLarge(max_bytes));
    }
    Ok(Bytes::from(decoded))
}

/// Why `text` cannot be read, as a field and a reason: the field is `$`
/// (the whole text), except for a number no 64-bit float can hold, whose
/// path it names (`properties.price`), as `POST /v1/events` does.
pub fn json_refusal(text: &str, error: &serde_json::Error) -> (String, String) {
    if !error.to_string().starts_with("number out of range") {
        return ("$".to_owned(), error.to_string());
    }
    // serde counts lines and columns from 1; the column in bytes.
    let line_start: usize = text
        .split_inclusive('\n')
        .take(error.line().saturating_sub(1))
        .map(str::len)
        .sum();
    let mut offset = (line_start + error.column().saturating_sub(1)).min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let path = sluice_schemas::rules::path_at(text, offset, "$");
    let field = path.strip_prefix("$.").map_or(path.clone(), str::to_owned);
    (
        field,
        "a number is out of range: JSON numbers must fit a 64-bit float (at most about 1.8e308)"
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use axum::http::HeaderValue;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn headers(content_type: &str, encoding: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        if let Some(encoding) = encoding {
            headers.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_str(encoding).unwrap(),
            );
        }
        headers
    }

    fn gzip(data: &[u8]) -> Bytes {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        Bytes::from(encoder.finish().unwrap())
    }

    #[test]
    fn a_bounded_list_keeps_its_first_elements_and_counts_them_all() {
        let read = |json: &str, keep: usize| {
            let mut json = serde_json::Deserializer::from_str(json);
            KeepAtMost::<u32>::new(keep)
                .deserialize(&mut json)
                .map(|list| (list.kept, list.len))
        };
        assert_eq!(read("[1, 2, 3, 4]", 2).unwrap(), (vec![1, 2], 4));
        assert_eq!(read("[1]", 2).unwrap(), (vec![1], 1));
        assert_eq!(read("[]", 2).unwrap(), (vec![], 0));
        // Elements past the limit must still be valid JSON.
        assert!(read("[1, 2, nul]", 1).is_err());
        let body: std::result::Result<BoundedList<u32>, _> =
            parse_json_object_with(b"[1]", KeepAtMost::new(1));
        assert!(body.is_err(), "a body must be an object");
    }

    #[test]
    fn passes_plain_json_and_undoes_gzip() {
        let json = Bytes::from_static(br#"{"a":1}"#);
        let plain = read_body(
            &headers("application/json; charset=utf-8", None),
            Ok(json.clone()),
            Accept::Json,
            100,
        );
        assert_eq!(plain.unwrap(), json);
        let unzipped = read_body(
            &headers("application/json", Some("gzip")),
            Ok(gzip(&json)),
            Accept::Json,
            100,
        );
        assert_eq!(unzipped.unwrap(), json);
    }

    #[test]
    fn sdk_labels_only_where_accepted() {
        let json = Bytes::from_static(b"{}");
        for label in [
            "text/plain",
            "application/x-www-form-urlencoded; charset=utf-8",
        ] {
            let sdk = read_body(&headers(label, None), Ok(json.clone()), Accept::SdkJson, 9);
            assert!(sdk.is_ok(), "{label}");
            let native = read_body(&headers(label, None), Ok(json.clone()), Accept::Json, 9);
            assert!(
                matches!(native, Err(ApiError::UnsupportedMediaType { .. })),
                "{label}"
            );
        }
        assert!(read_body(&HeaderMap::new(), Ok(json.clone()), Accept::SdkJson, 9).is_ok());
        assert!(matches!(
            read_body(
                &headers("multipart/form-data", None),
                Ok(json.clone()),
                Accept::SdkJson,
                9
            ),
            Err(ApiError::UnsupportedMediaType { .. })
        ));
        assert!(matches!(
            read_body(
                &headers("text/plain", None),
                Ok(json.clone()),
                Accept::Json,
                9
            ),
            Err(ApiError::UnsupportedMediaType { .. })
        ));
        assert!(matches!(
            read_body(&HeaderMap::new(), Ok(json), Accept::Json, 9),
            Err(ApiError::UnsupportedMediaType { .. })
        ));
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_limit() {
        let bomb = gzip(&vec![b' '; 10 * 1024 * 1024]);
        assert!(bomb.len() < 20 * 1024);
        let result = read_body(
            &headers("application/json", Some("gzip")),
            Ok(bomb),
            Accept::Json,
            64 * 1024,
        );
        assert!(matches!(result, Err(ApiError::PayloadTooLarge(65536))));
    }

    #[test]
    fn truncated_gzip_and_unknown_encodings_are_refused() {
        let zipped = gzip(br#"{"type":"a"}"#);
        let truncated = zipped.slice(..zipped.len() - 6);
        assert!(matches!(
            read_body(
                &headers("application/json", Some("gzip")),
                Ok(truncated),
                Accept::Json,
                100
            ),
            Err(ApiError::InvalidGzip(_))
        ));
        assert!(matches!(
            read_body(&headers("application/json", Some("br")), Ok(zipped), Accept::Json, 100),
            Err(ApiError::UnsupportedEncoding(e)) if e == "br"
        ));
    }
}
