//! Small value syntaxes both lease files use.

/// `01:0a:ff` (one or two hex digits per octet, as dhcpd and Kea write
/// them) → bytes. An empty string is no bytes.
pub(crate) fn colon_hex(s: &str) -> Result<Vec<u8>, String> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(':')
        .map(|o| {
            if o.is_empty() || o.len() > 2 {
                return Err(format!("{s:?} is not colon-separated hex octets"));
            }
            u8::from_str_radix(o, 16)
                .map_err(|_| format!("{s:?} is not colon-separated hex octets"))
        })
        .collect()
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
    let (Some([y, mo, da]), Some([h, mi, s])) = (three(date, '/'), three(time, ':')) else {
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
fn three(s: &str, sep: char) -> Option<[i64; 3]> {
    let mut out = [0i64; 3];
    let mut n = 0;
    for part in s.split(sep) {
        *out.get_mut(n)? = part.parse::<i64>().ok()?;
        n += 1;
    }
    (n == 3).then_some(out)
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
