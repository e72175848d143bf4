use super::FieldError;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time with microsecond precision, exchanged as RFC 3339 and stored as
/// microseconds since the Unix epoch so that comparisons in SQL are plain integer ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time: read through [`crate::clock::Clock::wall`], never directly
    /// (`clippy.toml` forbids it elsewhere).
    #[allow(clippy::disallowed_methods)] // the wall clock's one reading, for `SystemClock`
    pub fn now() -> Self {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        Self(i64::try_from(nanos / 1_000).unwrap_or(i64::MAX))
    }

    /// Parses an RFC 3339 date-time such as the `since` query parameter.
    pub fn parse(field: &'static str, input: &str) -> Result<Self, FieldError> {
        const REASON: &str = "must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z";
        let parsed =
            OffsetDateTime::parse(input, &Rfc3339).map_err(|_| FieldError::new(field, REASON))?;
        i64::try_from(parsed.unix_timestamp_nanos() / 1_000)
            .map(Self)
            .map_err(|_| FieldError::new(field, REASON))
    }

    /// Rebuilds a timestamp from stored microseconds.
    pub fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// The same instant as a `time` date-time (UTC), for what needs calendar arithmetic.
    pub fn to_date_time(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// The RFC 3339 form in UTC, as the API returns it.
    pub fn to_rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_through_microseconds() {
        let t = Timestamp::parse("since", "2026-01-31T12:00:00.123456+01:00");
        assert_eq!(
            t.map(Timestamp::to_rfc3339),
            Ok("2026-01-31T11:00:00.123456Z".to_owned())
        );
    }

    #[test]
    fn malformed_times_are_refused_naming_the_field() {
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-01-01",
            "2026-01-01T00:00:00",
        ] {
            assert_eq!(
                Timestamp::parse("since", bad).err().map(|e| e.field()),
                Some("since")
            );
        }
    }
}
