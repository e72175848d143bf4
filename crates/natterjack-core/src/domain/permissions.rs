use super::FieldError;
use std::fmt;

/// A set of space permissions: `r` read messages, `w` post, `d` delete (moderate).
///
/// Parsed from any ordering of distinct letters and always printed canonically (`rwd`
/// order), so "dr" and "rd" are the same grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Permissions(u8);

impl Permissions {
    /// No permission: not a member.
    pub const NONE: Self = Self(0);
    /// Read messages, the space and its members.
    pub const READ: Self = Self(1);
    /// Post messages.
    pub const WRITE: Self = Self(2);
    /// Delete (moderate) messages.
    pub const DELETE: Self = Self(4);
    /// Every permission; what a space's creator holds.
    pub const ALL: Self = Self(7);

    /// Parses a non-empty set such as `"rw"`; unknown or repeated letters are refused.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        const REASON: &str = "must be a non-empty combination of the letters r, w and d";
        let mut bits = 0u8;
        for c in input.chars() {
            let bit = match c {
                'r' => 1,
                'w' => 2,
                'd' => 4,
                _ => return Err(FieldError::new("permissions", REASON)),
            };
            if bits & bit != 0 {
                return Err(FieldError::new("permissions", REASON));
            }
            bits |= bit;
        }
        if bits == 0 {
            return Err(FieldError::new("permissions", REASON));
        }
        Ok(Self(bits))
    }

    /// Rebuilds a set from its stored bit pattern; bits outside `rwd` are refused so a
    /// corrupted row cannot grant something that does not exist.
    pub fn from_bits(bits: i64) -> Option<Self> {
        u8::try_from(bits).ok().filter(|b| b & !7 == 0).map(Self)
    }

    /// The stored bit pattern.
    pub fn bits(self) -> i64 {
        i64::from(self.0)
    }

    /// True when every permission in `other` is also in `self`.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// True for the empty set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Set union.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Set difference: `self` without `other`.
    pub fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// All eight sets, for exhaustive tests.
    pub fn every_set() -> impl Iterator<Item = Self> {
        (0u8..8).map(Self)
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, letter) in [(1, "r"), (2, "w"), (4, "d")] {
            if self.0 & bit != 0 {
                f.write_str(letter)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_canonicalised_whatever_the_input_order() {
        let p = Permissions::parse("dwr").map(|p| p.to_string());
        assert_eq!(p, Ok("rwd".to_owned()));
        assert_eq!(
            Permissions::parse("dr").map(|p| p.to_string()),
            Ok("rd".to_owned())
        );
    }

    #[test]
    fn permissions_refuse_empty_unknown_and_repeated_letters() {
        for bad in ["", "x", "rr", "R", "rwdx", " r", "r,w"] {
            assert!(Permissions::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stored_bits_outside_rwd_are_refused() {
        assert_eq!(Permissions::from_bits(8), None);
        assert_eq!(Permissions::from_bits(-1), None);
        assert_eq!(
            Permissions::from_bits(5),
            Some(Permissions::READ.union(Permissions::DELETE))
        );
    }
}
