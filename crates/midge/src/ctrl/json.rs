//! The little JSON `midge ctrl` needs: a value type, a strict parser for the broker's
//! responses, and the two printers of cJSON (the library `mosquitto_ctrl` uses), so that the
//! requests on the wire and the file `dynsec init` writes are byte for byte what
//! `mosquitto_ctrl` produces.

use std::fmt::Write;

/// A JSON value. Objects keep their keys in order (cJSON does, and the printed form depends
/// on it).
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// An integer, printed as `%d` (cJSON's raw integers and whole numbers).
    Int(i64),
    /// Any other number.
    Float(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// An empty object.
    pub fn object() -> Json {
        Json::Object(Vec::new())
    }

    /// Appends `key: value` to an object (no-op on anything else).
    pub fn push(&mut self, key: &str, value: impl Into<Json>) -> &mut Json {
        if let Json::Object(members) = self {
            members.push((key.to_string(), value.into()));
        }
        self
    }

    /// `key: value`, builder style.
    pub fn with(mut self, key: &str, value: impl Into<Json>) -> Json {
        self.push(key, value);
        self
    }

    /// The first member called `key`, matched case-insensitively as cJSON's
    /// `cJSON_GetObjectItem` does.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }

    /// A number as C's `(int)valuedouble` gives it (truncated, saturated).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Json::Int(n) => Some((*n).clamp(i32::MIN as i64, i32::MAX as i64)),
            Json::Float(f) => Some((*f as i64).clamp(i32::MIN as i64, i32::MAX as i64)),
            _ => None,
        }
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    /// cJSON_PrintUnformatted: no whitespace at all.
    pub fn to_compact(&self) -> String {
        let mut out = String::new();
        self.print(&mut out, None);
        out
    }

    /// cJSON_Print: tab indentation, `"key":\tvalue`, arrays on one line with `, `. No
    /// trailing newline.
    pub fn to_pretty(&self) -> String {
        let mut out = String::new();
        self.print(&mut out, Some(0));
        out
    }

    /// `depth` is cJSON's print depth (`None` = unformatted). Like cJSON, arrays and objects
    /// both deepen it, though only objects indent.
    fn print(&self, out: &mut String, depth: Option<usize>) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(true) => out.push_str("true"),
            Json::Bool(false) => out.push_str("false"),
            Json::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Float(f) => print_float(out, *f),
            Json::String(s) => print_string(out, s),
            Json::Array(items) => {
                let inner = depth.map(|d| d + 1);
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                        if depth.is_some() {
                            out.push(' ');
                        }
                    }
                    item.print(out, inner);
                }
                out.push(']');
            }
            Json::Object(members) => {
                let inner = depth.map(|d| d + 1);
                out.push('{');
                if depth.is_some() {
                    out.push('\n');
                }
                for (i, (key, value)) in members.iter().enumerate() {
                    if let Some(d) = inner {
                        out.extend(std::iter::repeat_n('\t', d));
                    }
                    print_string(out, key);
                    out.push(':');
                    if depth.is_some() {
                        out.push('\t');
                    }
                    value.print(out, inner);
                    if i + 1 < members.len() {
                        out.push(',');
                    }
                    if depth.is_some() {
                        out.push('\n');
                    }
                }
                if let Some(d) = depth {
                    out.extend(std::iter::repeat_n('\t', d));
                }
                out.push('}');
            }
        }
    }

    /// Parses a complete JSON text (surrounding whitespace allowed, nothing else after it).
    pub fn parse(text: &[u8]) -> Option<Json> {
        let mut p = Parser { s: text, i: 0 };
        let v = p.value(0)?;
        p.ws();
        // cJSON_ParseWithLength stops at a NUL as well.
        (p.i == text.len() || text[p.i] == 0).then_some(v)
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::String(s.to_string())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Json {
        Json::String(s)
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Json {
        Json::Bool(b)
    }
}

impl From<i64> for Json {
    fn from(n: i64) -> Json {
        Json::Int(n)
    }
}

impl From<Vec<Json>> for Json {
    fn from(v: Vec<Json>) -> Json {
        Json::Array(v)
    }
}

fn print_float(out: &mut String, f: f64) {
    if !f.is_finite() {
        out.push_str("null");
    } else if f.fract() == 0.0 && f.abs() < 1e15 {
        let _ = write!(out, "{}", f as i64);
    } else {
        let _ = write!(out, "{f}");
    }
}

/// cJSON's string escaping: `"` `\` and the control characters; everything else raw.
fn print_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Deep enough for any response, shallow enough that a hostile one cannot overflow the stack.
const MAX_DEPTH: usize = 128;

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Option<Json> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match *self.s.get(self.i)? {
            b'n' if self.eat(b"null") => Some(Json::Null),
            b't' if self.eat(b"true") => Some(Json::Bool(true)),
            b'f' if self.eat(b"false") => Some(Json::Bool(false)),
            b'"' => self.string().map(Json::String),
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat(b"]") {
                    return Some(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat(b",") {
                        continue;
                    }
                    return self.eat(b"]").then_some(Json::Array(items));
                }
            }
            b'{' => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.eat(b"}") {
                    return Some(Json::Object(members));
                }
                loop {
                    self.ws();
                    if self.s.get(self.i) != Some(&b'"') {
                        return None;
                    }
                    let key = self.string()?;
                    self.ws();
                    if !self.eat(b":") {
                        return None;
                    }
                    members.push((key, self.value(depth + 1)?));
                    self.ws();
                    if self.eat(b",") {
                        continue;
                    }
                    return self.eat(b"}").then_some(Json::Object(members));
                }
            }
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn number(&mut self) -> Option<Json> {
        let start = self.i;
        while self.i < self.s.len()
            && matches!(
                self.s[self.i],
                b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
            )
        {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).ok()?;
        if let Ok(n) = text.parse::<i64>() {
            return Some(Json::Int(n));
        }
        text.parse::<f64>().ok().map(Json::Float)
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.s.get(self.i..self.i + 4)?;
        let v = u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
        self.i += 4;
        Some(v)
    }

    fn string(&mut self) -> Option<String> {
        self.i += 1; // opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            let c = *self.s.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if !self.eat(b"\\u") {
                                    return None;
                                }
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(code)?
                        }
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_matches_cjson_unformatted() {
        let v = Json::object().with(
            "commands",
            vec![Json::object()
                .with("command", "addRoleACL")
                .with("allow", true)
                .with("priority", 5i64)],
        );
        assert_eq!(
            v.to_compact(),
            r#"{"commands":[{"command":"addRoleACL","allow":true,"priority":5}]}"#
        );
    }

    #[test]
    fn pretty_matches_cjson_print() {
        let v = Json::object()
            .with(
                "clients",
                vec![Json::object()
                    .with("username", "a")
                    .with("roles", vec![Json::object().with("rolename", "admin")])],
            )
            .with("d", Json::object().with("x", false))
            .with("e", Json::Array(vec![]))
            .with("f", Json::object());
        assert_eq!(
            v.to_pretty(),
            "{\n\t\"clients\":\t[{\n\t\t\t\"username\":\t\"a\",\n\t\t\t\"roles\":\t[{\n\t\t\t\t\t\"rolename\":\t\"admin\"\n\t\t\t\t}]\n\t\t}],\n\t\"d\":\t{\n\t\t\"x\":\tfalse\n\t},\n\t\"e\":\t[],\n\t\"f\":\t{\n\t}\n}"
        );
    }

    #[test]
    fn strings_escape_like_cjson() {
        assert_eq!(
            Json::from("a\"b\\c\n\u{1}é/").to_compact(),
            "\"a\\\"b\\\\c\\n\\u0001é/\""
        );
    }

    #[test]
    fn parses_responses() {
        let v = Json::parse(
            br#" {"responses":[{"command":"getClient","data":{"client":{"username":"u\u00e9\ud83d\ude00","n":-3,"f":2.5,"ok":true,"x":null}}}]} "#,
        )
        .unwrap();
        let c = v.get("responses").unwrap().as_array().unwrap()[0]
            .get("data")
            .unwrap()
            .get("client")
            .unwrap();
        assert_eq!(c.get("username").unwrap().as_str(), Some("ué😀"));
        assert_eq!(c.get("n").unwrap().as_int(), Some(-3));
        assert_eq!(c.get("f").unwrap().as_int(), Some(2));
        assert_eq!(c.get("OK").unwrap().as_bool(), Some(true));
        assert_eq!(c.get("x"), Some(&Json::Null));
    }

    #[test]
    fn rejects_malformed_json() {
        for bad in [
            &b""[..],
            b"{",
            b"{\"a\"}",
            b"[1,]",
            b"{\"a\":1}x",
            b"\"\\q\"",
            b"nul",
        ] {
            assert_eq!(Json::parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "[".repeat(1000);
        assert_eq!(Json::parse(deep.as_bytes()), None);
    }
}
