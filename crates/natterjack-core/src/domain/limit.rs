use super::FieldError;

/// A page size between 1 and 100; pagination is mandatory so that no request can ask the
/// server for an unbounded amount of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u8);

impl Limit {
    /// Largest page a client may ask for.
    pub const MAX: u8 = 100;
    /// Page size when the client does not say.
    pub const DEFAULT: Self = Self(20);

    /// Parses the `limit` query parameter.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        const REASON: &str = "must be an integer from 1 to 100";
        if input.is_empty() || input.len() > 3 || !input.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new("limit", REASON));
        }
        match input.parse::<u8>() {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(FieldError::new("limit", REASON)),
        }
    }

    /// The page size.
    pub fn get(self) -> u8 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_range_from_1_to_100() {
        assert_eq!(Limit::parse("1").map(Limit::get), Ok(1));
        assert_eq!(Limit::parse("100").map(Limit::get), Ok(100));
        for bad in ["0", "101", "-1", "", "1000", "5 ", "ten"] {
            assert!(Limit::parse(bad).is_err(), "{bad:?}");
        }
    }
}
