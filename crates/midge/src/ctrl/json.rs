//! JSON for `midge ctrl` is serde_json's (`preserve_order`, so objects keep the order their
//! keys were inserted in, as cJSON's do). What no crate gives is here: cJSON's way of reading
//! a response (keys matched case-insensitively, numbers as C's `int`, the text ending at a
//! NUL) and cJSON's pretty printer, so that the file `dynsec init` writes is byte for byte
//! what `mosquitto_ctrl` 2.0.11 writes.
//!
//! The request on the wire needs nothing of its own: cJSON_PrintUnformatted and
//! `serde_json::to_string` print the same bytes for the documents `midge ctrl` builds
//! (strings, booleans, integers, arrays, objects; `"`, `\` and control characters escaped
//! alike, `\u00XX` in lower case, nothing else escaped).

use std::io;

use serde_json::ser::Formatter;
use serde_json::Value;

/// Parses a complete JSON text as cJSON_ParseWithLength reads it: the text ends at the first
/// NUL, if any. Stricter than cJSON where no broker's answer goes: raw control characters in
/// strings are refused, and of a key given twice the last value is kept.
pub fn parse(text: &[u8]) -> Option<Value> {
    let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    serde_json::from_slice(&text[..end]).ok()
}

/// The first member called `key`, matched case-insensitively as cJSON's
/// `cJSON_GetObjectItem` does. `None` on anything but an object.
pub fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value
        .as_object()?
        .iter()
        .find_map(|(k, v)| k.eq_ignore_ascii_case(key).then_some(v))
}

/// A number as C's `(int)valuedouble` gives it (truncated, saturated to `int`).
pub fn as_int(value: &Value) -> Option<i64> {
    let n = value.as_number()?;
    let n = match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => i,
        (None, Some(_)) => i64::MAX,
        (None, None) => n.as_f64()? as i64,
    };
    Some(n.clamp(i64::from(i32::MIN), i64::from(i32::MAX)))
}

/// cJSON_PrintUnformatted: no whitespace at all.
pub fn to_compact(value: &Value) -> String {
    value.to_string()
}

/// cJSON_Print: tab indentation, `"key":\tvalue`, arrays on one line with `, `. No trailing
/// newline.
pub fn to_pretty(value: &Value) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, CjsonPretty::default());
    serde::Serialize::serialize(value, &mut ser).expect("a Value always serialises");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// cJSON's formatted printing. Like cJSON, arrays and objects both deepen the print depth,
/// though only objects indent: `[{` opens an object whose members are two levels deeper than
/// the array's key. Empty objects print as `{\n<indent>}`, empty arrays as `[]`.
#[derive(Default)]
struct CjsonPretty {
    depth: usize,
    /// For each open object: whether it has a member yet.
    members: Vec<bool>,
}

impl CjsonPretty {
    fn indent<W: ?Sized + io::Write>(&self, writer: &mut W, depth: usize) -> io::Result<()> {
        for _ in 0..depth {
            writer.write_all(b"\t")?;
        }
        Ok(())
    }
}

impl Formatter for CjsonPretty {
    fn begin_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth += 1;
        writer.write_all(b"[")
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth -= 1;
        writer.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth += 1;
        self.members.push(false);
        writer.write_all(b"{\n")
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.depth -= 1;
        if self.members.pop() == Some(true) {
            // The last member's line end (the others' are written before the next key).
            writer.write_all(b"\n")?;
        }
        self.indent(writer, self.depth)?;
        writer.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if let Some(has) = self.members.last_mut() {
            *has = true;
        }
        if !first {
            writer.write_all(b",\n")?;
        }
        self.indent(writer, self.depth)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b":\t")
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn compact_matches_cjson_unformatted() {
        let v = json!({"commands": [{"command": "addRoleACL", "allow": true, "priority": 5}]});
        assert_eq!(
            to_compact(&v),
            r#"{"commands":[{"command":"addRoleACL","allow":true,"priority":5}]}"#
        );
    }

    #[test]
    fn pretty_matches_cjson_print() {
        let v = json!({
            "clients": [{"username": "a", "roles": [{"rolename": "admin"}]}],
            "d": {"x": false},
            "e": [],
            "f": {},
            "g": [1, "two", [], {}],
        });
        assert_eq!(
            to_pretty(&v),
            "{\n\t\"clients\":\t[{\n\t\t\t\"username\":\t\"a\",\n\t\t\t\"roles\":\t[{\n\t\t\t\t\t\"rolename\":\t\"admin\"\n\t\t\t\t}]\n\t\t}],\n\t\"d\":\t{\n\t\t\"x\":\tfalse\n\t},\n\t\"e\":\t[],\n\t\"f\":\t{\n\t},\n\t\"g\":\t[1, \"two\", [], {\n\t\t}]\n}"
        );
        assert_eq!(to_pretty(&json!({})), "{\n}");
    }

    #[test]
    fn strings_escape_like_cjson() {
        let s = Value::from("a\"b\\c\n\u{1}\u{1f}\u{7f}é/");
        assert_eq!(to_compact(&s), "\"a\\\"b\\\\c\\n\\u0001\\u001f\u{7f}é/\"");
        assert_eq!(to_pretty(&s), to_compact(&s));
    }

    #[test]
    fn reads_responses_as_cjson_does() {
        let v = parse(
            br#" {"responses":[{"command":"getClient","data":{"client":{"username":"u\u00e9\ud83d\ude00","n":-3,"f":2.5,"big":1e300,"huge":18446744073709551615,"ok":true,"x":null}}}]} "#,
        )
        .unwrap();
        let responses = get(&v, "responses").unwrap().as_array().unwrap();
        let c = get(get(&responses[0], "data").unwrap(), "client").unwrap();
        assert_eq!(get(c, "username").unwrap().as_str(), Some("ué😀"));
        assert_eq!(get(c, "n").and_then(as_int), Some(-3));
        assert_eq!(get(c, "f").and_then(as_int), Some(2));
        assert_eq!(get(c, "big").and_then(as_int), Some(i64::from(i32::MAX)));
        assert_eq!(get(c, "huge").and_then(as_int), Some(i64::from(i32::MAX)));
        assert_eq!(get(c, "OK").unwrap().as_bool(), Some(true));
        assert_eq!(get(c, "x"), Some(&Value::Null));
        assert_eq!(get(&Value::from("s"), "x"), None);
        // The text ends at a NUL.
        assert_eq!(parse(b"{\"a\":1}\0garbage"), Some(json!({"a": 1})));
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
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        assert_eq!(parse(deep.as_bytes()), None);
    }
}
