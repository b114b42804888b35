//! Response bodies: JSON or XML into one `serde_json::Value`, error fields, and lenient field
//! decoders.
//!
//! Both formats go through `Value` so the typed responses have one set of serde rules. XML
//! leaves are strings and a one-item list looks like a single object, so numeric, boolean and
//! list fields use the decoders in [`de`], which accept both shapes.

use quick_xml::events::Event;
use serde_json::{Map, Value};

/// XML deeper than this is refused: no VPC answer nests more than a few levels, and a bound
/// keeps hostile input from exhausting the stack when the value is dropped.
const MAX_XML_DEPTH: usize = 32;

/// The `Content-Type` of an answer, which says how [`decode`] reads its body.
pub(crate) fn content_type(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Decodes a body as JSON or XML (by content type, else by its first byte).
pub(crate) fn decode(bytes: &[u8], content_type: Option<&str>) -> Result<Value, String> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let xml = match content_type {
        Some(ct) if ct.contains("xml") => true,
        Some(ct) if ct.contains("json") => false,
        _ => first == Some(b'<'),
    };
    if first.is_none() {
        return Err("empty body".into());
    }
    if xml {
        xml_to_value(bytes)
    } else {
        serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))
    }
}

/// Converts an XML document to a `Value`: the root element is unwrapped, elements with children
/// become objects (repeated names become arrays), leaves become trimmed strings.
fn xml_to_value(bytes: &[u8]) -> Result<Value, String> {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut buf = Vec::new();
    // (name, children, text) of each open element.
    let mut stack: Vec<(String, Map<String, Value>, String)> = Vec::new();
    let mut root: Option<Value> = None;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("invalid XML: {e}"))?;
        match event {
            Event::Start(e) => {
                if root.is_some() {
                    return Err("invalid XML: content after the root element".into());
                }
                if stack.len() >= MAX_XML_DEPTH {
                    return Err("invalid XML: nested too deeply".into());
                }
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                stack.push((name, Map::new(), String::new()));
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match stack.last_mut() {
                    Some((_, children, _)) => insert(children, name, Value::String(String::new())),
                    None if root.is_none() => root = Some(Value::Object(Map::new())),
                    None => return Err("invalid XML: content after the root element".into()),
                }
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| format!("invalid XML text: {e}"))?;
                push_text(&mut stack, &text)?;
            }
            Event::CData(c) => {
                let text = c.decode().map_err(|e| format!("invalid XML CDATA: {e}"))?;
                push_text(&mut stack, &text)?;
            }
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(|e| format!("invalid XML reference: {e}"))?
                        .map(String::from)
                } else {
                    let name = r
                        .decode()
                        .map_err(|e| format!("invalid XML reference: {e}"))?;
                    quick_xml::escape::resolve_predefined_entity(&name).map(str::to_owned)
                };
                let text = resolved.ok_or("invalid XML: unknown entity")?;
                push_text(&mut stack, &text)?;
            }
            Event::End(_) => {
                let (name, children, text) =
                    stack.pop().ok_or("invalid XML: unbalanced end tag")?;
                let value = if children.is_empty() {
                    Value::String(text.trim().to_owned())
                } else {
                    Value::Object(children)
                };
                match stack.last_mut() {
                    Some((_, parent, _)) => insert(parent, name, value),
                    // The root's own fields are the response; a leaf root is kept as is.
                    None => root = Some(value),
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err("invalid XML: unclosed element".into());
    }
    root.ok_or_else(|| "invalid XML: no root element".into())
}

fn push_text(stack: &mut [(String, Map<String, Value>, String)], text: &str) -> Result<(), String> {
    match stack.last_mut() {
        Some((_, _, buf)) => {
            buf.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err("invalid XML: text outside the root element".into()),
    }
}

fn insert(map: &mut Map<String, Value>, name: String, value: Value) {
    match map.get_mut(&name) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            map.insert(name, value);
        }
    }
}

/// The documented fields of an error body. Both `Code` and `code` casings occur (both are documented).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ErrorFields {
    pub code: Option<String>,
    pub message: Option<String>,
    pub request_id: Option<String>,
    pub host_id: Option<String>,
    pub recommend: Option<String>,
}

impl ErrorFields {
    pub fn from_value(value: &Value) -> Self {
        let get = |names: &[&str]| -> Option<String> {
            names.iter().find_map(|n| match value.get(*n) {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            })
        };
        Self {
            code: get(&["Code", "code"]),
            message: get(&["Message", "message"]),
            request_id: get(&["RequestId", "requestId"]),
            host_id: get(&["HostId", "hostId"]),
            recommend: get(&["Recommend", "recommend"]),
        }
    }
}

/// Lenient decoders for fields that may arrive as JSON numbers/booleans or as XML strings.
pub(crate) mod de {
    use serde::de::{DeserializeOwned, Error};
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// A value of an optional answer field, read leniently.
    pub trait Lenient: Sized {
        /// The value of `v`; `None` for null (for numbers and booleans, also for an empty or
        /// blank string, which is how XML leaves them out).
        fn from_value<E: Error>(v: Value) -> Result<Option<Self>, E>;
    }

    impl Lenient for i64 {
        fn from_value<E: Error>(v: Value) -> Result<Option<Self>, E> {
            match v {
                Value::Null => Ok(None),
                Value::Number(n) => n
                    .as_i64()
                    .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                    .map(Some)
                    .ok_or_else(|| E::custom(format!("expected an integer, got {n}"))),
                Value::String(s) if s.trim().is_empty() => Ok(None),
                Value::String(s) => s
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| E::custom(format!("expected an integer, got {s:?}"))),
                other => Err(E::custom(format!("expected an integer, got {other}"))),
            }
        }
    }

    impl Lenient for u32 {
        fn from_value<E: Error>(v: Value) -> Result<Option<Self>, E> {
            i64::from_value(v)?
                .map(|v| {
                    u32::try_from(v).map_err(|_| {
                        E::custom(format!("expected a small unsigned integer, got {v}"))
                    })
                })
                .transpose()
        }
    }

    impl Lenient for bool {
        fn from_value<E: Error>(v: Value) -> Result<Option<Self>, E> {
            match v {
                Value::Null => Ok(None),
                Value::Bool(b) => Ok(Some(b)),
                Value::String(s) if s.trim().is_empty() => Ok(None),
                Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
                Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
                other => Err(E::custom(format!("expected a boolean, got {other}"))),
            }
        }
    }

    /// A string that XML may leave empty (kept as `""`) and JSON may send as a number.
    impl Lenient for String {
        fn from_value<E: Error>(v: Value) -> Result<Option<Self>, E> {
            match v {
                Value::Null => Ok(None),
                Value::String(s) => Ok(Some(s)),
                Value::Number(n) => Ok(Some(n.to_string())),
                Value::Bool(b) => Ok(Some(b.to_string())),
                other => Err(E::custom(format!("expected a string, got {other}"))),
            }
        }
    }

    /// An optional field (with `#[serde(default)]` an absent one is `None` too).
    pub fn opt<'de, D: Deserializer<'de>, T: Lenient>(d: D) -> Result<Option<T>, D::Error> {
        T::from_value(Value::deserialize(d)?)
    }

    /// A required count or weight.
    pub fn uint<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        opt(d)?.ok_or_else(|| D::Error::custom("expected an integer"))
    }

    /// A required, non-empty string (a JSON number is taken as its digits: account IDs).
    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        opt::<D, String>(d)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| D::Error::custom("expected a non-empty string"))
    }

    /// A list the cloud wraps in an object (`{"VpnPbrRouteEntry": [...]}`); accepts a missing or
    /// empty wrapper, a one-item list given as an object (XML), and a bare array.
    pub fn wrapped_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: DeserializeOwned,
    {
        let inner = match Value::deserialize(d)? {
            Value::Null => return Ok(Vec::new()),
            Value::String(s) if s.trim().is_empty() => return Ok(Vec::new()),
            Value::Object(map) if map.is_empty() => return Ok(Vec::new()),
            Value::Object(map) if map.len() == 1 => map.into_iter().next().map(|(_, v)| v),
            Value::Array(items) => Some(Value::Array(items)),
            other => {
                return Err(D::Error::custom(format!(
                    "expected a wrapped list, got {other}"
                )));
            }
        };
        let items = match inner {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) if s.trim().is_empty() => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(one) => vec![one],
        };
        items
            .into_iter()
            .map(|v| serde_json::from_value(v).map_err(D::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_becomes_the_json_shape() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeVpnPbrRouteEntriesResponse>
  <RequestId>R</RequestId>
  <TotalCount>2</TotalCount>
  <VpnPbrRouteEntries>
    <VpnPbrRouteEntry><RouteSource>a &amp; b</RouteSource></VpnPbrRouteEntry>
    <VpnPbrRouteEntry><RouteSource><![CDATA[c<d]]></RouteSource></VpnPbrRouteEntry>
  </VpnPbrRouteEntries>
  <Empty/>
</DescribeVpnPbrRouteEntriesResponse>"#;
        let v = decode(xml, Some("text/xml")).unwrap();
        assert_eq!(v["RequestId"], "R");
        assert_eq!(v["TotalCount"], "2");
        assert_eq!(
            v["VpnPbrRouteEntries"]["VpnPbrRouteEntry"][0]["RouteSource"],
            "a & b"
        );
        assert_eq!(
            v["VpnPbrRouteEntries"]["VpnPbrRouteEntry"][1]["RouteSource"],
            "c<d"
        );
        assert_eq!(v["Empty"], "");
    }

    #[test]
    fn error_bodies_in_both_formats() {
        let json = br#"{"RequestId":"R1","HostId":"vpc.aliyuncs.com","Code":"Forbidden","Message":"no","Recommend":"https://x"}"#;
        let f = ErrorFields::from_value(&decode(json, None).unwrap());
        assert_eq!(f.code.as_deref(), Some("Forbidden"));
        assert_eq!(f.request_id.as_deref(), Some("R1"));
        assert_eq!(f.recommend.as_deref(), Some("https://x"));
        let xml = b"<?xml version='1.0'?><Error><RequestId>R2</RequestId><HostId>h</HostId><Code>TaskConflict</Code><Message>busy</Message><Recommend><![CDATA[https://api.aliyun.com/troubleshoot?q=TaskConflict]]></Recommend></Error>";
        let f = ErrorFields::from_value(&decode(xml, None).unwrap());
        assert_eq!(f.code.as_deref(), Some("TaskConflict"));
        assert_eq!(f.message.as_deref(), Some("busy"));
        assert_eq!(f.request_id.as_deref(), Some("R2"));
        let lower = br#"{"requestId":"R3","code":"Throttling.User","message":"slow"}"#;
        let f = ErrorFields::from_value(&decode(lower, None).unwrap());
        assert_eq!(f.code.as_deref(), Some("Throttling.User"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for body in [
            &b""[..],
            b"   ",
            b"<a><b></a>",
            b"<a>",
            b"{",
            b"<a></a><b></b>",
            b"text",
        ] {
            assert!(
                decode(body, None).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let deep = "<a>".repeat(10_000);
        assert!(decode(deep.as_bytes(), None).is_err());
    }
}
