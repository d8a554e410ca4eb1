//! The one timestamp format stored in the database and written in logs:
//! UTC, microseconds, `Z`. Fixed width, so text order is time order on both
//! engines.

use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

const FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

pub fn format(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .unwrap_or_else(|_| String::from("1970-01-01T00:00:00.000000Z"))
}

pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

/// A stored timestamp back as a time (`None` if it is not one of ours).
pub fn parse(text: &str) -> Option<OffsetDateTime> {
    time::PrimitiveDateTime::parse(text, FORMAT)
        .ok()
        .map(time::PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_one_fixed_width_utc_format() {
        let at = time::macros::datetime!(2026-01-02 03:04:05.000006 +01:00);
        assert_eq!(format(at), "2026-01-02T02:04:05.000006Z");
        assert_eq!(parse("2026-01-02T02:04:05.000006Z"), Some(at));
        assert_eq!(parse("yesterday"), None);
    }
}
