//! Times given on the command line: Unix seconds or RFC 3339.

/// `1700000000` or `2026-11-23T10:00:00Z` → Unix seconds.
pub fn parse_time(s: &str) -> Result<u32, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("`{s}` is neither Unix seconds nor RFC 3339 ({e})"))?;
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("`{s}` is before 1970"))?
        .as_secs();
    u32::try_from(secs).map_err(|_| format!("`{s}` is past 2106"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_and_rfc3339() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert!(parse_time("yesterday").is_err());
    }
}
