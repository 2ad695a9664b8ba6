//! Wall-clock times of node log lines, so `log-pattern` can place a line
//! on the history's clock (given where the history's time 0 was on the
//! wall clock, `CheckOptions::history_start_unix_ns`).
//!
//! Pure arithmetic on the text: no clock, no time zone database. Node logs
//! stamp lines in UTC as `2026-11-26T15:25:41.627128Z`.

/// Nanoseconds since the Unix epoch of a UTC time stamp as the nodes log
/// it, `2026-11-26T15:25:41.627128Z` (fraction optional, any precision up
/// to nanoseconds); `None` for anything else.
pub fn parse_utc_stamp(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        let digits = bytes.get(range)?;
        digits.iter().try_fold(0u64, |acc, &b| b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0')))
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(at, byte)| bytes.get(at) != Some(&byte)) {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut fraction_ns = 0;
    let mut at = 19;
    if bytes.get(at) == Some(&b'.') {
        let digits = bytes[at + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        fraction_ns = number(at + 1..at + 1 + digits)? * 10u64.pow(9 - digits as u32);
        at += 1 + digits;
    }
    if bytes.get(at) != Some(&b'Z') {
        return None;
    }
    let days = u64::try_from(days_from_civil(year as i64, month as u32, day as u32)).ok()?;
    Some((days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000_000 + fraction_ns)
}

/// (year, month, day), proleptic Gregorian, to days since 1970-01-01: the
/// inverse of the harness's `rundir::utc_stamp` calendar.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let doy = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: node log stamps convert to the right instants, with the
    /// fraction, and anything else is refused.
    #[test]
    fn parses_node_log_stamps() {
        let ns = parse_utc_stamp("2026-11-26T12:59:08.627128Z  INFO hserver").expect("parsed");
        assert_eq!(ns, 1_795_697_948_627_128_000);
        assert_eq!(parse_utc_stamp("2024-02-29T23:59:59Z"), Some(1_709_251_199_000_000_000));
        assert_eq!(parse_utc_stamp("1970-01-01T00:00:00.5Z"), Some(500_000_000));
        assert_eq!(parse_utc_stamp("2000-03-01T00:00:00Z"), Some(951_868_800_000_000_000));
        for bad in ["", "2026-11-26 12:59:08,627", "2026-13-26T12:59:08Z", "2026-11-26T12:59:08.Z", "thread 'main'"] {
            assert_eq!(parse_utc_stamp(bad), None, "{bad}");
        }
    }
}
