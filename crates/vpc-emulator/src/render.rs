//! Response bodies in the two formats of the RPC API. A response is built once as a JSON
//! value; XML is derived from it the way the service does: object keys become elements, an
//! array repeats its key's element (`{"Entries":{"Entry":[a,b]}}` ->
//! `<Entries><Entry>a</Entry><Entry>b</Entry></Entries>`).

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Xml,
}

impl Format {
    /// `Format` parameter, case-insensitive; absent or unknown means JSON (VPC default).
    pub fn from_param(v: Option<&str>) -> Self {
        match v {
            Some(f) if f.eq_ignore_ascii_case("xml") => Format::Xml,
            _ => Format::Json,
        }
    }

    /// The exact value the Tea SDK compares to decide to parse an error body as XML.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json;charset=utf-8",
            Format::Xml => "text/xml;charset=utf-8",
        }
    }
}

pub fn render(format: Format, root: &str, body: &Value) -> String {
    match format {
        Format::Json => body.to_string(),
        Format::Xml => {
            let mut out = String::with_capacity(256);
            out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
            element(&mut out, root, body);
            out
        }
    }
}

fn element(out: &mut String, name: &str, value: &Value) {
    match value {
        Value::Null => {}
        Value::Array(items) => {
            for item in items {
                element(out, name, item);
            }
        }
        Value::Object(map) => {
            open(out, name);
            for (k, v) in map {
                element(out, k, v);
            }
            close(out, name);
        }
        Value::String(s) => {
            open(out, name);
            escape(out, s);
            close(out, name);
        }
        Value::Bool(b) => {
            open(out, name);
            out.push_str(if *b { "true" } else { "false" });
            close(out, name);
        }
        Value::Number(n) => {
            open(out, name);
            out.push_str(&n.to_string());
            close(out, name);
        }
    }
}

fn open(out: &mut String, name: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
}

fn close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn xml_repeats_array_elements() {
        let v = json!({"RequestId": "r", "List": {"Item": [{"A": 1}, {"A": 2}]}, "Empty": {"Item": []}, "S": "a<b"});
        assert_eq!(
            render(Format::Xml, "XResponse", &v),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><XResponse><Empty></Empty><List><Item><A>1</A></Item><Item><A>2</A></Item></List><RequestId>r</RequestId><S>a&lt;b</S></XResponse>"
        );
    }
}
