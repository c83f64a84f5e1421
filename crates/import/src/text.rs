//! Small value syntaxes both lease files use.

/// `01:0a:ff` (one or two hex digits per octet, as dhcpd and Kea write
/// them) → bytes. An empty string is no bytes.
pub(crate) fn colon_hex(s: &str) -> Result<Vec<u8>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let bad = || format!("{s:?} is not colon-separated hex octets");
    let mut out = Vec::with_capacity(s.len() / 3 + 1);
    for o in s.as_bytes().split(|&b| b == b':') {
        if o.is_empty() || o.len() > 2 {
            return Err(bad());
        }
        out.push(hex_octet(o).ok_or_else(bad)?);
    }
    Ok(out)
}

/// One or two hex digits as `u8::from_str_radix(_, 16)` reads them (a
/// `+` sign allowed), without its generic machinery.
fn hex_octet(o: &[u8]) -> Option<u8> {
    let digits = match o {
        [b'+', rest @ ..] => rest,
        _ => o,
    };
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u8, |v, &d| {
        let d = char::from(d).to_digit(16)?;
        v.checked_mul(16)?.checked_add(u8::try_from(d).ok()?)
    })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// dhcpd.leases(5) `YYYY/MM/DD` and `HH:MM:SS` (UTC) → Unix seconds.
pub(crate) fn utc_date_time(date: &str, time: &str) -> Result<u32, String> {
    let bad = || format!("{date} {time} is not a YYYY/MM/DD HH:MM:SS time");
    let (Some([y, mo, da]), Some([h, mi, s])) = (three(date, b'/'), three(time, b':')) else {
        return Err(bad());
    };
    if !(1970..=2106).contains(&y)
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&da)
        || !(0..24).contains(&h)
        || !(0..60).contains(&mi)
        || !(0..=60).contains(&s)
    {
        return Err(bad());
    }
    let secs = days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + s;
    u32::try_from(secs).map_err(|_| format!("{date} {time} is outside 1970..2106"))
}

/// Exactly three numbers separated by `sep`.
fn three(s: &str, sep: u8) -> Option<[i64; 3]> {
    let mut out = [0i64; 3];
    let mut n = 0;
    for part in s.as_bytes().split(|&b| b == sep) {
        *out.get_mut(n)? = number(part)?;
        n += 1;
    }
    (n == 3).then_some(out)
}

/// A decimal number as `str::parse::<i64>` reads it (a sign, then at
/// least one digit), without its generic machinery.
fn number(b: &[u8]) -> Option<i64> {
    let (negative, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, b),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        v = v
            .checked_mul(10)?
            .checked_add(if negative { -d } else { d })?;
    }
    Some(v)
}

/// Kea's CSV escapes commas (and other specials) in text fields as `&#xHH`.
pub(crate) fn kea_unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"&#x") && i + 5 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 3..i + 5], 16) {
                out.push(v);
                i += 5;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_unix_seconds() {
        assert_eq!(utc_date_time("1970/01/01", "00:00:00"), Ok(0));
        assert_eq!(utc_date_time("2026/11/23", "12:35:39"), Ok(1_795_437_339));
        assert!(utc_date_time("2026/13/01", "00:00:00").is_err());
        assert!(utc_date_time("2026/1", "00:00:00").is_err());
    }

    #[test]
    fn numbers_as_parse_reads_them() {
        for s in [
            "0",
            "007",
            "+5",
            "-12",
            "",
            "+",
            "-",
            "1a",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            " 1",
        ] {
            assert_eq!(number(s.as_bytes()), s.parse::<i64>().ok(), "{s:?}");
        }
    }

    #[test]
    fn octets_as_from_str_radix_reads_them() {
        for a in 0..=255u8 {
            for o in [vec![a], vec![a, b'7'], vec![b'+', a], vec![a, a]] {
                if let Ok(t) = std::str::from_utf8(&o) {
                    assert_eq!(hex_octet(&o), u8::from_str_radix(t, 16).ok(), "{t:?}");
                }
            }
        }
    }

    #[test]
    fn hex_octets() {
        assert_eq!(colon_hex("1:0a:FF"), Ok(vec![1, 10, 255]));
        assert!(colon_hex("1::2").is_err());
        assert!(colon_hex("123").is_err());
    }

    #[test]
    fn kea_commas() {
        assert_eq!(kea_unescape("a&#x2cb"), b"a,b");
    }
}
