//! Shifting DA and DT values by a whole number of days, keeping their precision and format.

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// The date of a day count (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Shifts the date part `YYYY[MM[DD]]` (8, 6 or 4 digits). Missing month/day count as the
/// first, and the result keeps the input's precision. `None` if it is not a valid date.
fn shift_date_digits(s: &str, days: i64) -> Option<String> {
    let (y, m, d) = match s.len() {
        8 => (digits(&s[..4])?, digits(&s[4..6])?, digits(&s[6..8])?),
        6 => (digits(&s[..4])?, digits(&s[4..6])?, 1),
        4 => (digits(s)?, 1, 1),
        _ => return None,
    };
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y as i64, m) {
        return None;
    }
    let (ny, nm, nd) = civil_from_days(days_from_civil(y as i64, m, d) + days);
    if !(0..=9999).contains(&ny) {
        return None;
    }
    Some(match s.len() {
        8 => format!("{ny:04}{nm:02}{nd:02}"),
        6 => format!("{ny:04}{nm:02}"),
        _ => format!("{ny:04}"),
    })
}

/// Shifts one DA value: `YYYYMMDD`, the ACR-NEMA form `YYYY.MM.DD`, or a range `A-B`
/// (either side may be empty). `None` when the value is not a date (the caller then empties it).
pub fn shift_da(value: &str, days: i64) -> Option<String> {
    let v = value.trim_matches([' ', '\0']);
    if !v.is_ascii() {
        return None; // not a date; and the byte slicing below needs ASCII
    }
    if v.is_empty() {
        return Some(String::new());
    }
    if let Some((a, b)) = v.split_once('-') {
        return shift_range(a, b, |x| shift_da_single(x, days));
    }
    shift_da_single(v, days)
}

/// Shifts both ends of a range `A-B`; an empty end stays empty (open range).
fn shift_range(a: &str, b: &str, shift: impl Fn(&str) -> Option<String>) -> Option<String> {
    let end = |x: &str| {
        if x.is_empty() {
            Some(String::new())
        } else {
            shift(x)
        }
    };
    Some(format!("{}-{}", end(a)?, end(b)?))
}

fn shift_da_single(v: &str, days: i64) -> Option<String> {
    if v.len() == 10 && v.as_bytes()[4] == b'.' && v.as_bytes()[7] == b'.' {
        let s = shift_date_digits(&format!("{}{}{}", &v[..4], &v[5..7], &v[8..]), days)?;
        return Some(format!("{}.{}.{}", &s[..4], &s[4..6], &s[6..]));
    }
    if v.len() != 8 {
        return None;
    }
    shift_date_digits(v, days)
}

/// Shifts one DT value `YYYY[MM[DD[HH[MM[SS[.F]]]]]][&ZZXX]`, or a range `A-B`: the date part
/// moves by whole days, the time and UTC offset stay. `None` when it is not a date-time.
pub fn shift_dt(value: &str, days: i64) -> Option<String> {
    let v = value.trim_matches([' ', '\0']);
    if !v.is_ascii() {
        return None; // not a date-time; and the byte slicing below needs ASCII
    }
    if v.is_empty() {
        return Some(String::new());
    }
    // A '-' after position 0 is either a range separator or a negative UTC offset; a UTC offset
    // is exactly 5 characters at the end (`-HHMM`) following at least a year.
    if let Some(pos) = v.find('-') {
        let tail = &v[pos..];
        let is_offset =
            tail.len() == 5 && pos >= 4 && tail[1..].bytes().all(|b| b.is_ascii_digit());
        if !is_offset {
            return shift_range(&v[..pos], &v[pos + 1..], |x| shift_dt_single(x, days));
        }
    }
    shift_dt_single(v, days)
}

fn shift_dt_single(v: &str, days: i64) -> Option<String> {
    let (main, offset) = match v.find(['+', '-']) {
        Some(p) => (&v[..p], &v[p..]),
        None => (v, ""),
    };
    let valid_offset =
        offset.is_empty() || (offset.len() == 5 && offset[1..].bytes().all(|b| b.is_ascii_digit()));
    if !valid_offset {
        return None;
    }
    let date_len = main.len().min(8);
    let (date, time) = main.split_at(date_len);
    if !matches!(date.len(), 4 | 6 | 8) || (!time.is_empty() && date.len() != 8) {
        return None;
    }
    if !time.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    Some(format!("{}{time}{offset}", shift_date_digits(date, days)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trip() {
        for z in -800_000..800_000i64 {
            if z % 997 != 0 {
                continue;
            }
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(
            days_from_civil(2000, 3, 1) - days_from_civil(2000, 2, 28),
            2
        );
    }

    #[test]
    fn da_shifts_keep_intervals_and_format() {
        assert_eq!(shift_da("20200301", -1).unwrap(), "20200229");
        assert_eq!(shift_da("20210101", -366).unwrap(), "20200101");
        assert_eq!(shift_da("1951.08.29", -10).unwrap(), "1951.08.19");
        assert_eq!(
            shift_da("20200101-20200201", -31).unwrap(),
            "20191201-20200101"
        );
        assert_eq!(shift_da("-20200201", -1).unwrap(), "-20200131");
        assert_eq!(shift_da("", -1).unwrap(), "");
        assert!(shift_da("2020131", -1).is_none());
        assert!(shift_da("20201301", -1).is_none());
        assert!(shift_da("20200230", -1).is_none());
        assert!(shift_da("yesterday", -1).is_none());
        let (a, b) = ("19990315", "20040822");
        let gap = |x: &str, y: &str| {
            let p = |s: &str| {
                days_from_civil(
                    s[..4].parse().unwrap(),
                    s[4..6].parse().unwrap(),
                    s[6..].parse().unwrap(),
                )
            };
            p(y) - p(x)
        };
        let (sa, sb) = (shift_da(a, -1234).unwrap(), shift_da(b, -1234).unwrap());
        assert_eq!(gap(a, b), gap(&sa, &sb));
    }

    #[test]
    fn dt_shifts_date_part_only() {
        assert_eq!(
            shift_dt("20200301123456.123456", -1).unwrap(),
            "20200229123456.123456"
        );
        assert_eq!(
            shift_dt("20200301120000+0100", -1).unwrap(),
            "20200229120000+0100"
        );
        assert_eq!(
            shift_dt("20200301120000-0500", -1).unwrap(),
            "20200229120000-0500"
        );
        assert_eq!(shift_dt("2020", -400).unwrap(), "2018");
        assert_eq!(shift_dt("202003", -1).unwrap(), "202002");
        assert_eq!(
            shift_dt("20200101-20200301", -1).unwrap(),
            "20191231-20200229"
        );
        assert!(shift_dt("2020-03-01", -1).is_none());
        assert!(shift_dt("20200301T1200", -1).is_none());
        // found by the fuzz target: non-ASCII where digits belong
        assert!(shift_dt("20030û0", -1).is_none());
        assert!(shift_da("2003.û.01", -1).is_none());
        assert!(shift_da("2003û0101", -1).is_none());
    }
}
