//! The lease times a client is granted (RFC 2131 §4.4.5): the one place
//! that decides T1 and T2. The ACK sends them and the binding keeps them,
//! so a leasequery reports what the client was told (RFC 4388 §6.4.2), even
//! after a configuration reload changes the subnet's values.

use leaseline_proto::Binding;

/// Lease time, T1 and T2 of one grant, in seconds from the grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub lease_time: u32,
    pub renew_time: u32,
    pub rebind_time: u32,
}

impl Grant {
    /// A subnet's grant from its configured values: T1 defaults to half the
    /// lease, T2 to 7/8 of it (RFC 2131 §4.4.5), and they must satisfy
    /// T1 < T2 < lease.
    pub fn resolve(
        lease_time: u32,
        renew_time: Option<u32>,
        rebind_time: Option<u32>,
    ) -> Result<Grant, &'static str> {
        let g = Grant {
            lease_time,
            renew_time: renew_time.unwrap_or(lease_time / 2),
            rebind_time: rebind_time.unwrap_or((u64::from(lease_time) * 7 / 8) as u32),
        };
        if g.renew_time < g.rebind_time && g.rebind_time < g.lease_time {
            Ok(g)
        } else {
            Err("need renew_time < rebind_time < lease_time (RFC 2131 §4.4.5)")
        }
    }

    /// Record this grant, made at `now`, in `b`: the lease runs from `now`
    /// (also the CLTT), and T1/T2 are kept as sent.
    pub fn record(self, b: &mut Binding, now: u32) {
        b.expiry = now.saturating_add(self.lease_time);
        b.lease_time = self.lease_time;
        b.renew_time = Some(self.renew_time);
        b.rebind_time = Some(self.rebind_time);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_half_and_seven_eighths() {
        assert_eq!(
            Grant::resolve(3600, None, None),
            Ok(Grant {
                lease_time: 3600,
                renew_time: 1800,
                rebind_time: 3150
            })
        );
        assert_eq!(
            Grant::resolve(u32::MAX, None, None).map(|g| g.rebind_time),
            Ok((u64::from(u32::MAX) * 7 / 8) as u32)
        );
    }

    #[test]
    fn configured_values_are_kept_when_ordered() {
        assert_eq!(
            Grant::resolve(60, Some(2), Some(4)),
            Ok(Grant {
                lease_time: 60,
                renew_time: 2,
                rebind_time: 4
            })
        );
        assert!(Grant::resolve(60, Some(4), Some(4)).is_err());
        assert!(Grant::resolve(60, Some(5), Some(4)).is_err());
        assert!(Grant::resolve(60, Some(2), Some(60)).is_err());
        // A T1 above the default T2 needs a T2 configured above it.
        assert!(Grant::resolve(60, Some(55), None).is_err());
    }
}
