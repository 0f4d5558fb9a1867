//! SQL identifiers from the config or the catalog: validated against a strict pattern, then quoted.

use std::fmt;

/// A table, column, database or user name that is safe to splice into SQL once quoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

/// Why a name was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid identifier: use 1 to 64 ASCII letters, digits or '_', not starting with a digit")]
pub struct BadIdent(pub String);

impl Ident {
    /// Checks `name` against `[A-Za-z_][A-Za-z0-9_]{0,63}`.
    pub fn new(name: &str) -> Result<Self, BadIdent> {
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if first_ok && rest_ok && name.len() <= 64 {
            Ok(Self(name.to_owned()))
        } else {
            Err(BadIdent(name.to_owned()))
        }
    }

    /// The bare name, for messages and for binding as a value (for example in information_schema).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name in backquotes, ready for SQL text; the pattern admits no backquote, so none escapes.
    pub fn quoted(&self) -> String {
        format!("`{}`", self.0)
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Ident {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ident::new(&s).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Ident {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A host part of a MariaDB account (`'user'@'host'`): `%`, or letters, digits, `.`, `-`, `_`, `%`, `:`.
pub fn account_host(host: &str) -> Result<&str, BadIdent> {
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '%' | ':'));
    if ok {
        Ok(host)
    } else {
        Err(BadIdent(host.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names_and_quotes_them() {
        assert_eq!(
            Ident::new("location").map(|i| i.quoted()),
            Ok("`location`".into())
        );
        assert_eq!(Ident::new("_x9").map(|i| i.quoted()), Ok("`_x9`".into()));
        assert_eq!(
            Ident::new("partition").map(|i| i.quoted()),
            Ok("`partition`".into())
        );
    }

    #[test]
    fn refuses_anything_that_could_escape() {
        for bad in [
            "",
            "9abc",
            "a`b",
            "a b",
            "a;drop",
            "a-b",
            "a.b",
            "é",
            "x'",
            &"a".repeat(65),
        ] {
            assert!(Ident::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn account_hosts() {
        assert!(account_host("%").is_ok());
        assert!(account_host("10.0.%").is_ok());
        assert!(account_host("db-1.example.net").is_ok());
        assert!(account_host("a'b").is_err());
        assert!(account_host("").is_err());
    }
}
