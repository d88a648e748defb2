//! Reading a request's untyped JSON field by field, collecting every
//! problem with the field's path (`payload.severity`, `alerts[1].labels`)
//! instead of stopping at the first, as PagerDuty's `errors` list does.
//!
//! `null` counts as absent: clients often send `"dedup_key": null`.

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The JSON type of a value, as an error names it.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `parent.key`, or `key` at the top.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// A value as a custom detail: strings as they are, anything else as compact JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Problems found so far, each `"path: reason"`.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<String>);

impl Problems {
    pub fn push(&mut self, path: &str, reason: impl std::fmt::Display) {
        let line = format!("{path}: {reason}");
        if !self.0.contains(&line) {
            self.0.push(line);
        }
    }

    /// Lines already in `"path: reason"` form.
    pub fn extend(&mut self, lines: Vec<String>) {
        for line in lines {
            if !self.0.contains(&line) {
                self.0.push(line);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn wrong(&mut self, path: &str, want: &str, got: &Value) {
        self.push(path, format!("expected {want}, got {}", kind(got)));
    }

    /// An optional string member of `obj` at `parent`.
    pub fn string(&mut self, obj: &Map<String, Value>, parent: &str, key: &str) -> Option<String> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.wrong(&join(parent, key), "a string", other);
                None
            }
        }
    }

    /// A string member that must be there and not blank; `when` qualifies
    /// "required" (`" on trigger"`).
    pub fn required(
        &mut self,
        obj: &Map<String, Value>,
        parent: &str,
        key: &str,
        when: &str,
    ) -> Option<String> {
        let absent = matches!(obj.get(key), None | Some(Value::Null));
        match self.string(obj, parent, key) {
            Some(s) if !s.trim().is_empty() => Some(s),
            Some(_) => {
                self.push(
                    &join(parent, key),
                    format!("required{when}, got an empty string"),
                );
                None
            }
            None if absent => {
                self.push(&join(parent, key), format!("required{when}"));
                None
            }
            None => None,
        }
    }

    pub fn object<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        parent: &str,
        key: &str,
    ) -> Option<&'a Map<String, Value>> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => {
                self.wrong(&join(parent, key), "an object", other);
                None
            }
        }
    }

    pub fn array<'a>(
        &mut self,
        obj: &'a Map<String, Value>,
        parent: &str,
        key: &str,
    ) -> Option<&'a Vec<Value>> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(a),
            Some(other) => {
                self.wrong(&join(parent, key), "an array", other);
                None
            }
        }
    }

    /// Element `i` of the array at `path`, which must be an object.
    pub fn element<'a>(&mut self, v: &'a Value, path: &str) -> Option<&'a Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                self.wrong(path, "an object", other);
                None
            }
        }
    }

    /// An object whose members are all strings (labels, annotations).
    pub fn string_map(
        &mut self,
        obj: &Map<String, Value>,
        parent: &str,
        key: &str,
    ) -> BTreeMap<String, String> {
        let Some(m) = self.object(obj, parent, key) else {
            return BTreeMap::new();
        };
        let path = join(parent, key);
        m.iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k.clone(), s.clone())),
                other => {
                    self.wrong(&join(&path, k), "a string", other);
                    None
                }
            })
            .collect()
    }

    /// A non-negative integer member.
    pub fn count(&mut self, obj: &Map<String, Value>, parent: &str, key: &str) -> Option<u64> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) => Some(n),
                None => {
                    self.wrong(&join(parent, key), "a non-negative integer", v);
                    None
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn every_problem_is_named_by_its_path() {
        let o = obj(json!({"a": 1, "b": "", "n": null, "m": {"x": "1", "y": 2}, "c": -1}));
        let mut p = Problems::default();
        assert_eq!(p.string(&o, "payload", "a"), None);
        assert_eq!(p.required(&o, "", "b", " on trigger"), None);
        assert_eq!(p.required(&o, "", "n", ""), None);
        assert_eq!(p.required(&o, "", "missing", ""), None);
        let m = p.string_map(&o, "alerts[0]", "m");
        assert_eq!(m.len(), 1);
        assert_eq!(p.count(&o, "", "c"), None);
        assert_eq!(
            p.0,
            [
                "payload.a: expected a string, got number",
                "b: required on trigger, got an empty string",
                "n: required",
                "missing: required",
                "alerts[0].m.y: expected a string, got number",
                "c: expected a non-negative integer, got number",
            ]
        );
    }

    #[test]
    fn details_keep_strings_and_encode_the_rest() {
        assert_eq!(text(&json!("1%")), "1%");
        assert_eq!(text(&json!(0.75)), "0.75");
        assert_eq!(text(&json!({"a": [1]})), r#"{"a":[1]}"#);
    }
}
