//! A subnet's `pools`: ranges inside the prefix that overlap no other
//! pool, of this subnet or another.

use std::net::Ipv4Addr;
use std::ops::Range;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::value::parse_range;
use super::{ConfigError, Validator};

/// The pools read so far, with where they are written.
#[derive(Default)]
pub(super) struct PlacedPools(Vec<(u32, u32, Range<usize>)>);

impl Validator<'_> {
    /// One subnet's pools as inclusive ranges of numbers; `key` names them
    /// in errors (`subnet[N].pools`).
    pub(super) fn pools(
        &self,
        key: &str,
        prefix: Ipv4Net,
        raw: &[Spanned<String>],
        placed: &mut PlacedPools,
    ) -> Result<Vec<(u32, u32)>, ConfigError> {
        let mut pools = Vec::new();
        for p in raw {
            let (a, b) = parse_range(p.get_ref()).map_err(|r| self.err(p.span(), key, r))?;
            if !prefix.contains(&Ipv4Addr::from(a)) || !prefix.contains(&Ipv4Addr::from(b)) {
                return Err(self.err(
                    p.span(),
                    key,
                    format!("{} lies outside {prefix}", p.get_ref()),
                ));
            }
            if let Some((_, _, span)) = placed.0.iter().find(|(x, y, _)| a <= *y && *x <= b) {
                return Err(self.err(
                    p.span(),
                    key,
                    format!(
                        "{} overlaps the pool on line {}",
                        p.get_ref(),
                        self.line(span.clone())
                    ),
                ));
            }
            placed.0.push((a, b, p.span()));
            pools.push((a, b));
        }
        Ok(pools)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, GOOD};

    #[test]
    fn pool_outside_prefix_names_key_and_line() {
        let text = GOOD.replace("10.0.0.10-10.0.255.250", "10.1.0.10-10.1.0.20");
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("t:8:"), "{e}");
        assert!(e.contains("subnet[0].pools"), "{e}");
        assert!(e.contains("outside"), "{e}");
    }

    #[test]
    fn overlapping_pools_refused() {
        let text = GOOD.replace(
            "pools = [\"10.0.0.10-10.0.255.250\"]",
            "pools = [\"10.0.0.10-10.0.0.100\", \"10.0.0.50-10.0.0.60\"]",
        );
        let e = Config::parse(&text, "t").unwrap_err().to_string();
        assert!(e.contains("overlaps"), "{e}");
    }
}
