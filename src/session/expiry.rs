//! The bounds of `expires_in`: the one check every decoder of a call uses.

/// The bounds an `expires_in` is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryLimits {
    /// Granted when `expires_in` is absent or null (`SESSIOND_DEFAULT_EXPIRES_IN`).
    pub default: u64,
    /// The largest value accepted (`SESSIOND_MAX_EXPIRES_IN`).
    pub max: u64,
    /// Seconds after `issued_at` past which no extension reaches
    /// (`SESSIOND_MAX_SESSION_LIFETIME`); `None`: no cap.
    pub max_lifetime: Option<u64>,
}

impl ExpiryLimits {
    /// The seconds to grant for a requested `expires_in` (`None`: absent or null), or `None`
    /// when the request is out of bounds.
    pub fn grant(&self, requested: Option<u64>) -> Option<u64> {
        match requested {
            None => Some(self.default),
            Some(seconds) if (1..=self.max).contains(&seconds) => Some(seconds),
            Some(_) => None,
        }
    }

    /// What a refused `expires_in` is told.
    pub fn rule(&self) -> String {
        format!(
            "expires_in must be a whole number of seconds from 1 to {}, or null for the default ({})",
            self.max, self.default
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_the_default_or_a_value_in_bounds() {
        let limits = ExpiryLimits {
            default: 30,
            max: 60,
            max_lifetime: None,
        };
        assert_eq!(limits.grant(None), Some(30));
        assert_eq!(limits.grant(Some(1)), Some(1));
        assert_eq!(limits.grant(Some(60)), Some(60));
        assert_eq!(limits.grant(Some(0)), None);
        assert_eq!(limits.grant(Some(61)), None);
    }
}
