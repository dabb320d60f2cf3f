//! A minimal writer for the one JSON line a run prints: flat objects of numbers, strings,
//! booleans and nested objects. Hand-written because that is all the tool emits and the
//! workspace has no JSON dependency to lean on.

use std::fmt::Write;

pub struct JsonObject {
    out: String,
    /// Whether the innermost open object already has a field (so the next needs a comma).
    has_field: Vec<bool>,
}

impl Default for JsonObject {
    fn default() -> Self {
        JsonObject::new()
    }
}

impl JsonObject {
    pub fn new() -> JsonObject {
        JsonObject {
            out: String::from("{"),
            has_field: vec![false],
        }
    }

    fn key(&mut self, key: &str) {
        let has = self.has_field.last_mut().expect("an open object");
        if *has {
            self.out.push(',');
        }
        *has = true;
        push_str(&mut self.out, key);
        self.out.push(':');
    }

    pub fn u64(&mut self, key: &str, v: u64) -> &mut Self {
        self.key(key);
        let _ = write!(self.out, "{v}");
        self
    }

    /// Non-finite numbers have no JSON form: they are written as null.
    pub fn f64(&mut self, key: &str, v: f64) -> &mut Self {
        self.key(key);
        if v.is_finite() {
            // Enough digits for rates and microseconds, without float noise.
            let _ = write!(self.out, "{}", (v * 1000.0).round() / 1000.0);
        } else {
            self.out.push_str("null");
        }
        self
    }

    pub fn opt_f64(&mut self, key: &str, v: Option<f64>) -> &mut Self {
        match v {
            Some(v) => self.f64(key, v),
            None => self.null(key),
        }
    }

    pub fn str(&mut self, key: &str, v: &str) -> &mut Self {
        self.key(key);
        push_str(&mut self.out, v);
        self
    }

    pub fn bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.key(key);
        self.out.push_str(if v { "true" } else { "false" });
        self
    }

    pub fn null(&mut self, key: &str) -> &mut Self {
        self.key(key);
        self.out.push_str("null");
        self
    }

    pub fn strings(&mut self, key: &str, v: &[String]) -> &mut Self {
        self.key(key);
        self.out.push('[');
        for (i, s) in v.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            push_str(&mut self.out, s);
        }
        self.out.push(']');
        self
    }

    pub fn begin(&mut self, key: &str) -> &mut Self {
        self.key(key);
        self.out.push('{');
        self.has_field.push(false);
        self
    }

    pub fn end(&mut self) -> &mut Self {
        self.out.push('}');
        self.has_field.pop();
        self
    }

    pub fn finish(mut self) -> String {
        while !self.has_field.is_empty() {
            self.end();
        }
        self.out
    }
}

fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_and_escaped() {
        let mut j = JsonObject::new();
        j.str("name", "a \"b\"\n\u{1}")
            .u64("n", 3)
            .f64("x", 1.23456)
            .f64("inf", f64::INFINITY)
            .opt_f64("none", None)
            .bool("ok", true)
            .begin("inner")
            .u64("a", 1)
            .u64("b", 2)
            .end()
            .strings("list", &["x".into(), "y".into()]);
        assert_eq!(
            j.finish(),
            r#"{"name":"a \"b\"\n\u0001","n":3,"x":1.235,"inf":null,"none":null,"ok":true,"inner":{"a":1,"b":2},"list":["x","y"]}"#
        );
    }

    #[test]
    fn empty() {
        assert_eq!(JsonObject::new().finish(), "{}");
        let mut j = JsonObject::new();
        j.begin("a").end();
        assert_eq!(j.finish(), r#"{"a":{}}"#);
    }
}
