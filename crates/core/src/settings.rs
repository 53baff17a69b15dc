//! Settings as a tree of values: the generic `--set section.key=value` of the command line (in the
//! manner of uv's and cargo's `--config key=value`), config files read as trees, and the difference
//! between two configs named key by key.
//!
//! Configs are serde types; a tree is their `serde_json` form. An override is applied to the tree
//! of the effective config, then the tree is deserialised again, so a field is declared once (in
//! its struct) and every field can be set from the command line, checked by the same code that
//! reads the files.

use serde_json::{Map, Value};

/// A table of settings (a TOML table, a JSON object).
pub type Tree = Map<String, Value>;

/// Why a setting could not be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// `--set` was not `KEY=VALUE`.
    #[error("--set {0:?}: expected KEY=VALUE, e.g. loss.bins=20 or optim.lr=1e-4")]
    NotAnAssignment(String),
    /// The key walks through a value that is not a table.
    #[error("{key}: `{at}` is a value, not a section")]
    NotATable {
        /// The whole key.
        key: String,
        /// The part of it that is not a table.
        at: String,
    },
    /// A TOML document could not be parsed.
    #[error("{0}")]
    Toml(String),
    /// A value does not fit its field (or the field does not exist).
    #[error("{key}: {message}")]
    Invalid {
        /// The dotted key of the field (the section itself when empty).
        key: String,
        /// What is wrong, from the field's type.
        message: String,
    },
}

/// Deserialises the tree of section `section` into `T`; an error names the dotted key of the field
/// it concerns (`loss.delta: invalid type: string "x", expected f32`).
pub fn deserialize<T: serde::de::DeserializeOwned>(section: &str, tree: Tree) -> Result<T, SettingsError> {
    serde_path_to_error::deserialize(Value::Object(tree)).map_err(|e| {
        let path = e.path().to_string();
        let key = match (section.is_empty(), path == ".") {
            (true, _) => path,
            (false, true) => section.to_string(),
            (false, false) => format!("{section}.{path}"),
        };
        SettingsError::Invalid {
            key,
            message: e.into_inner().to_string(),
        }
    })
}

/// A config section that is a tagged enum: `kind` (or `arch`) names the variant and the other keys
/// are that variant's own fields, e.g. `[loss] kind = "fastap"  bins = 10`.
pub trait Tagged: Sized + serde::Serialize {
    /// The section's name in a config (`loss`, `sampler`, …).
    const SECTION: &'static str;
    /// The key holding the variant's name.
    const TAG: &'static str = "kind";
    /// Every variant's name; the first is the default.
    const KINDS: &'static [&'static str];

    /// The variant `kind` with its default settings.
    fn default_of(kind: &str) -> Option<Self>;

    /// Reads variant `kind` from its own fields (the tag already removed).
    fn variant_from_tree(kind: &str, tree: Tree) -> Result<Self, SettingsError>;

    /// Reads the section: the tag (the first kind when absent) and that variant's fields; an error
    /// names the key (`loss.delta: …`).
    fn from_tree(mut tree: Tree) -> Result<Self, SettingsError> {
        let kind = take_tag(Self::SECTION, &mut tree, Self::TAG, Self::KINDS, Self::KINDS[0])?;
        Self::variant_from_tree(&kind, tree)
    }

    /// The section as a tree, tag included.
    fn to_tree(&self) -> Tree {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Tree::new(),
        }
    }

    /// The keys variant `kind` accepts (besides the tag): those of its default settings.
    fn keys_of(kind: &str) -> Vec<String> {
        Self::default_of(kind)
            .map(|d| {
                d.to_tree()
                    .into_iter()
                    .map(|(k, _)| k)
                    .filter(|k| k != Self::TAG)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Takes the tag of a tagged section out of `tree`: its `tag` key (`kind`, `arch`), or `default`
/// when absent; refuses a name not in `kinds`.
pub fn take_tag(
    section: &str,
    tree: &mut Tree,
    tag: &str,
    kinds: &[&str],
    default: &str,
) -> Result<String, SettingsError> {
    let kind = match tree.remove(tag) {
        None => default.to_string(),
        Some(Value::String(k)) => k,
        Some(other) => {
            return Err(SettingsError::Invalid {
                key: format!("{section}.{tag}"),
                message: format!("expected one of {}, got {other}", kinds.join(", ")),
            })
        }
    };
    if !kinds.contains(&kind.as_str()) {
        return Err(SettingsError::Invalid {
            key: format!("{section}.{tag}"),
            message: format!("unknown {section} `{kind}`; expected one of {}", kinds.join(", ")),
        });
    }
    Ok(kind)
}

/// Parses `KEY=VALUE`: the key is dotted (`optim.lr`), the value a TOML literal (`1e-4`, `true`,
/// `"text"`, `[1, 5]`), or else taken as plain text (`fappy`, `runs/x`, `cuda:0`).
pub fn parse_assignment(arg: &str) -> Result<(String, Value), SettingsError> {
    let (key, value) = arg
        .split_once('=')
        .ok_or_else(|| SettingsError::NotAnAssignment(arg.to_string()))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|part| part.trim().is_empty()) {
        return Err(SettingsError::NotAnAssignment(arg.to_string()));
    }
    Ok((key.to_string(), parse_value(value.trim())))
}

/// A command-line value as a tree value: a TOML literal if it is one, else the text itself
/// (also for `inf` and `nan`, which a tree cannot hold as numbers).
pub fn parse_value(text: &str) -> Value {
    let doc = format!("v = {text}");
    let literal = toml::from_str::<toml::Table>(&doc)
        .ok()
        .and_then(|mut table| table.remove("v"))
        .and_then(|v| serde_json::to_value(v).ok())
        .filter(|v| !v.is_null());
    literal.unwrap_or_else(|| Value::String(text.to_string()))
}

/// Sets `key` (dotted) in `tree` to `value`, creating sections on the way. Where the tree already
/// holds text and `value` is a TOML literal of another type (`--set run.out_dir=inf`), the text of
/// the literal is kept: a path or a name stays text.
pub fn set(tree: &mut Tree, key: &str, value: Value) -> Result<(), SettingsError> {
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    let (last, sections) = parts.split_last().expect("split yields at least one part");
    let mut table = tree;
    for (i, part) in sections.iter().enumerate() {
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        table = entry.as_object_mut().ok_or_else(|| SettingsError::NotATable {
            key: key.to_string(),
            at: parts[..=i].join("."),
        })?;
    }
    let value = match (table.get(*last), &value) {
        (Some(Value::String(_)), Value::Number(_) | Value::Bool(_)) => Value::String(literal_text(&value)),
        _ => value,
    };
    table.insert(last.to_string(), value);
    Ok(())
}

fn literal_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The value at a dotted `key`, if any.
pub fn get<'a>(tree: &'a Tree, key: &str) -> Option<&'a Value> {
    let mut parts = key.split('.');
    let mut value = tree.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// Parses a TOML document into a tree.
pub fn from_toml(text: &str) -> Result<Tree, SettingsError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| SettingsError::Toml(e.to_string()))?;
    match serde_json::to_value(table) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(SettingsError::Toml("a TOML document is a table".into())),
        Err(e) => Err(SettingsError::Toml(e.to_string())),
    }
}

/// One key whose value differs between two trees.
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// The dotted key.
    pub key: String,
    /// Its value in the first tree (`None`: absent).
    pub before: Option<Value>,
    /// Its value in the second tree (`None`: absent).
    pub after: Option<Value>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map_or("(unset)".to_string(), Value::to_string);
        write!(f, "{}: {} → {}", self.key, show(&self.before), show(&self.after))
    }
}

/// Every leaf key whose value differs between `a` and `b`, sorted by key.
pub fn diff(a: &Tree, b: &Tree) -> Vec<Difference> {
    let mut out = Vec::new();
    diff_into("", a, b, &mut out);
    out.sort_by(|x, y| x.key.cmp(&y.key));
    out
}

fn diff_into(prefix: &str, a: &Tree, b: &Tree, out: &mut Vec<Difference>) {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (a.get(k), b.get(k)) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => diff_into(&key, x, y, out),
            (x, y) if x != y => out.push(Difference {
                key,
                before: x.cloned(),
                after: y.cloned(),
            }),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_toml_literals_or_text() {
        assert_eq!(parse_value("20"), json!(20));
        assert_eq!(parse_value("1e-4"), json!(1e-4));
        assert_eq!(parse_value("true"), json!(true));
        assert_eq!(parse_value("\"a b\""), json!("a b"));
        assert_eq!(parse_value("[1, 5]"), json!([1, 5]));
        assert_eq!(parse_value("fappy"), json!("fappy"));
        assert_eq!(parse_value("cuda:0"), json!("cuda:0"));
        assert_eq!(parse_value("runs/x y"), json!("runs/x y"));
        assert_eq!(parse_value("inf"), json!("inf"));
    }

    #[test]
    fn assignments_set_nested_keys() {
        let mut tree = Tree::new();
        let (k, v) = parse_assignment("loss.bins=20").unwrap();
        set(&mut tree, &k, v).unwrap();
        let (k, v) = parse_assignment(" optim.lr = 1e-4").unwrap();
        set(&mut tree, &k, v).unwrap();
        assert_eq!(
            Value::Object(tree.clone()),
            json!({"loss": {"bins": 20}, "optim": {"lr": 1e-4}})
        );
        assert_eq!(get(&tree, "loss.bins"), Some(&json!(20)));
        assert!(parse_assignment("loss.bins").is_err());
        assert!(parse_assignment("loss..bins=3").is_err());
        assert!(parse_assignment("=3").is_err());
        let err = set(&mut tree, "loss.bins.x", json!(1)).unwrap_err();
        assert_eq!(
            err,
            SettingsError::NotATable {
                key: "loss.bins.x".into(),
                at: "loss.bins".into()
            }
        );
    }

    #[test]
    fn text_fields_stay_text() {
        let mut tree = from_toml("[run]\nout_dir = \"runs/a\"\nepochs = 2\n").unwrap();
        set(&mut tree, "run.out_dir", parse_value("inf")).unwrap();
        set(&mut tree, "run.epochs", parse_value("5")).unwrap();
        assert_eq!(get(&tree, "run.out_dir"), Some(&json!("inf")));
        assert_eq!(get(&tree, "run.epochs"), Some(&json!(5)));
    }

    #[test]
    fn diff_names_each_changed_leaf() {
        let a = from_toml("[optim]\nlr = 0.001\nkind = \"adam\"\n[loss]\nbins = 10\n").unwrap();
        let b = from_toml("[optim]\nlr = 0.5\nkind = \"adam\"\n[loss]\nbins = 10\ndelta = 0.1\n").unwrap();
        let d: Vec<String> = diff(&a, &b).iter().map(ToString::to_string).collect();
        assert_eq!(d, ["loss.delta: (unset) → 0.1", "optim.lr: 0.001 → 0.5"]);
    }
}
