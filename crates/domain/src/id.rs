//! Identifiers: short, typeable, URL- and callback-safe strings.
//!
//! CONTRACT.md: ids are lowercase letters, digits, `_` and `-`, at most 32 characters. Generated
//! ids are a short kind prefix and random base32 characters; the amount of randomness per kind is
//! chosen so approval ids carry at least 60 random bits and invite/link codes at least 96.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest id the system accepts.
pub const MAX_ID_LEN: usize = 32;

/// Lowercase base32 alphabet without the easily confused `0 1 l o` look-alikes (RFC 4648 style).
const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// `chars` random characters of the id alphabet (5 bits each), from the operating system's CSPRNG.
/// Used for ids and for secrets people or programs present (API tokens).
pub fn random_string(chars: usize) -> Result<String, getrandom::Error> {
    let mut bytes = vec![0u8; chars];
    getrandom::fill(&mut bytes)?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[(b & 31) as usize] as char)
        .collect())
}

/// What an id names; decides its prefix and how much randomness it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Org,
    User,
    Task,
    Approval,
    /// Invite and link codes: secrets a person types, so long and unguessable.
    Code,
    Token,
}

impl IdKind {
    fn prefix(self) -> &'static str {
        match self {
            IdKind::Org => "org_",
            IdKind::User => "usr_",
            IdKind::Task => "tsk_",
            IdKind::Approval => "apr_",
            IdKind::Code => "",
            IdKind::Token => "tok_",
        }
    }

    /// Random characters (5 bits each) after the prefix.
    fn random_chars(self) -> usize {
        match self {
            IdKind::Org | IdKind::User => 12,
            IdKind::Task | IdKind::Token => 16,
            IdKind::Approval => 16, // 80 bits
            IdKind::Code => 24,     // 120 bits
        }
    }
}

/// A validated identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Id(String);

/// Why a string is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("an id must not be empty")]
    Empty,
    #[error("an id is at most {MAX_ID_LEN} characters")]
    TooLong,
    #[error("an id may contain only lowercase letters, digits, '_' and '-'")]
    BadCharacter,
}

impl Id {
    /// A fresh random id of the given kind, from the operating system's CSPRNG.
    ///
    /// Fails only if the operating system cannot supply randomness.
    pub fn generate(kind: IdKind) -> Result<Id, getrandom::Error> {
        Ok(Id(format!(
            "{}{}",
            kind.prefix(),
            random_string(kind.random_chars())?
        )))
    }

    /// Validates `s` as an id.
    pub fn parse(s: &str) -> Result<Id, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.len() > MAX_ID_LEN {
            return Err(IdError::TooLong);
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        {
            return Err(IdError::BadCharacter);
        }
        Ok(Id(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Id {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Id::parse(&s)
    }
}

impl From<Id> for String {
    fn from(id: Id) -> String {
        id.0
    }
}

impl std::str::FromStr for Id {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Id::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        for kind in [
            IdKind::Org,
            IdKind::User,
            IdKind::Task,
            IdKind::Approval,
            IdKind::Code,
            IdKind::Token,
        ] {
            let a = Id::generate(kind).unwrap();
            let b = Id::generate(kind).unwrap();
            assert_ne!(a, b);
            assert_eq!(Id::parse(a.as_str()), Ok(a.clone()));
            assert!(a.as_str().len() <= MAX_ID_LEN);
        }
    }

    #[test]
    fn randomness_meets_the_contract() {
        // 5 bits per character.
        assert!(IdKind::Approval.random_chars() * 5 >= 60);
        assert!(IdKind::Code.random_chars() * 5 >= 96);
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!(Id::parse(""), Err(IdError::Empty));
        assert_eq!(Id::parse(&"a".repeat(33)), Err(IdError::TooLong));
        assert_eq!(Id::parse("Tsk_1"), Err(IdError::BadCharacter));
        assert_eq!(Id::parse("a/b"), Err(IdError::BadCharacter));
        assert_eq!(Id::parse("ü"), Err(IdError::BadCharacter));
        assert!(Id::parse("tsk_ab-9").is_ok());
    }
}
