//! The one check on a token's time claims (RFC 7519 §4.1.4–4.1.6), shared
//! by the server's introspection and the verifier so the two cannot
//! disagree about when a token is valid.
//!
//! Times are Unix seconds; `leeway` is the clock skew tolerated, in
//! seconds, in the token's favour on every claim. Arithmetic saturates, so
//! a huge leeway (the server's "any age" check when revoking) never
//! overflows.

/// The time claims of a token; `nbf` and `iat` only when it has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeClaims {
    /// Expiration time: valid only before it.
    pub exp: i64,
    /// Not before: valid only from it.
    pub nbf: Option<i64>,
    /// Issued at: a token from the future is refused.
    pub iat: Option<i64>,
}

/// Which time claim refused the token. These are all the time claims
/// RFC 7519 defines, so the enum is exhaustive: callers map every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// `now >= exp + leeway`.
    #[error("expired at {exp} (Unix time)")]
    Expired {
        /// The token's `exp`.
        exp: i64,
    },
    /// `now + leeway < nbf`.
    #[error("not valid before {nbf} (Unix time)")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: i64,
    },
    /// `iat > now + leeway`.
    #[error("issued in the future, at {iat} (Unix time)")]
    IssuedInFuture {
        /// The token's `iat`.
        iat: i64,
    },
}

impl TimeClaims {
    /// Check, in this order, `exp`, `nbf` and `iat` against `now`.
    pub fn check(&self, now: i64, leeway: i64) -> Result<(), TimeError> {
        // RFC 7519 §4.1.4: valid only while now is before exp.
        if now >= self.exp.saturating_add(leeway) {
            return Err(TimeError::Expired { exp: self.exp });
        }
        // §4.1.5: not accepted before nbf.
        if let Some(nbf) = self.nbf
            && now.saturating_add(leeway) < nbf
        {
            return Err(TimeError::NotYetValid { nbf });
        }
        if let Some(iat) = self.iat
            && iat > now.saturating_add(leeway)
        {
            return Err(TimeError::IssuedInFuture { iat });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn claims(exp: i64, nbf: Option<i64>, iat: Option<i64>) -> TimeClaims {
        TimeClaims { exp, nbf, iat }
    }

    #[test]
    fn valid_only_while_now_is_before_exp_plus_leeway() {
        assert_eq!(claims(NOW + 1, None, None).check(NOW, 0), Ok(()));
        assert_eq!(claims(NOW, None, None).check(NOW, 0), Err(TimeError::Expired { exp: NOW }));
        assert_eq!(claims(NOW, None, None).check(NOW, 1), Ok(()));
        assert_eq!(claims(NOW - 30, None, None).check(NOW, 30), Err(TimeError::Expired { exp: NOW - 30 }));
    }

    #[test]
    fn refused_while_now_plus_leeway_is_before_nbf() {
        let early = claims(NOW + 600, Some(NOW + 10), Some(NOW));
        assert_eq!(early.check(NOW, 9), Err(TimeError::NotYetValid { nbf: NOW + 10 }));
        assert_eq!(early.check(NOW, 10), Ok(()));
        assert_eq!(early.check(NOW + 10, 0), Ok(()));
        assert_eq!(claims(NOW + 600, Some(NOW + 3600), None).check(NOW, 30), Err(TimeError::NotYetValid { nbf: NOW + 3600 }));
    }

    #[test]
    fn refused_when_issued_after_now_plus_leeway() {
        let future = claims(NOW + 600, None, Some(NOW + 10));
        assert_eq!(future.check(NOW, 9), Err(TimeError::IssuedInFuture { iat: NOW + 10 }));
        assert_eq!(future.check(NOW, 10), Ok(()));
    }

    #[test]
    fn exp_is_checked_first_then_nbf_then_iat_and_nothing_overflows() {
        let everything_wrong = claims(NOW, Some(NOW + 10), Some(NOW + 10));
        assert_eq!(everything_wrong.check(NOW, 0), Err(TimeError::Expired { exp: NOW }));
        assert_eq!(claims(NOW + 600, Some(NOW + 10), Some(NOW + 10)).check(NOW, 0), Err(TimeError::NotYetValid { nbf: NOW + 10 }));
        assert_eq!(claims(i64::MAX, Some(i64::MAX), Some(i64::MAX)).check(NOW, i64::MAX), Ok(()));
        assert_eq!(claims(i64::MAX, None, None).check(i64::MAX - 1, i64::MAX), Ok(()));
    }
}
