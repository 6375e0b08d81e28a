//! Times as records, markers and the API carry them: durations since the
//! Unix epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long after the Unix epoch `t` is; zero for a time before it.
pub fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Milliseconds since the Unix epoch at `t`; 0 for a time before it.
pub fn millis(t: SystemTime) -> u64 {
    since_epoch(t).as_millis() as u64
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> u64 {
    millis(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_before_the_epoch_are_zero_and_after_it_exact() {
        assert_eq!(millis(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert_eq!(millis(UNIX_EPOCH + Duration::from_micros(1_234_567)), 1234);
        assert!(now_millis() > 1_700_000_000_000);
    }
}
