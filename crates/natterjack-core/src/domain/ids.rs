use super::FieldError;
use std::fmt;

macro_rules! positive_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(i64);

        impl $name {
            /// Parses a decimal id as it appears in a path or query: ASCII digits only,
            /// no sign, no leading zero, from 1 to 2^63-1.
            pub fn parse(input: &str) -> Result<Self, FieldError> {
                let valid_shape = !input.is_empty()
                    && input.len() <= 19
                    && input.bytes().all(|b| b.is_ascii_digit())
                    && !input.starts_with('0');
                if !valid_shape {
                    return Err(FieldError::new($field, "must be a positive integer below 2^63"));
                }
                input
                    .parse::<i64>()
                    .ok()
                    .and_then(|v| Self::from_i64(v).ok())
                    .ok_or(FieldError::new($field, "must be a positive integer below 2^63"))
            }

            /// Accepts an id from a trusted integer source (the database, a JSON number),
            /// still refusing zero and negatives.
            pub fn from_i64(value: i64) -> Result<Self, FieldError> {
                if value > 0 {
                    Ok(Self(value))
                } else {
                    Err(FieldError::new($field, "must be a positive integer below 2^63"))
                }
            }

            /// The raw value, for storage and serialisation.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

positive_id!(
    /// Identifies a user row; never shown to clients, who name users by username.
    UserId,
    "user_id"
);
positive_id!(
    /// Identifies a space; every query that touches space content is scoped by one.
    SpaceId,
    "id"
);
positive_id!(
    /// Identifies a message; only meaningful together with the space it belongs to.
    MessageId,
    "msgId"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_one_and_the_largest_63_bit_value() {
        assert_eq!(SpaceId::parse("1").map(SpaceId::get), Ok(1));
        assert_eq!(
            SpaceId::parse("9223372036854775807").map(SpaceId::get),
            Ok(i64::MAX)
        );
    }

    #[test]
    fn ids_refuse_zero_signs_overflow_padding_and_injection() {
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "01",
            " 1",
            "1 ",
            "9223372036854775808",
            "1e3",
            "1 OR 1=1",
            "1;",
            "0x10",
            "١",
        ] {
            assert!(MessageId::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            MessageId::parse("x").err().map(|e| e.field()),
            Some("msgId")
        );
    }

    #[test]
    fn ids_from_integers_refuse_zero_and_negatives() {
        assert!(UserId::from_i64(0).is_err());
        assert!(UserId::from_i64(-5).is_err());
        assert!(UserId::from_i64(5).is_ok());
    }
}
