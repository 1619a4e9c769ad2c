//! Connecting to the addresses a name resolves to, in turn, within one
//! deadline.

use std::time::{Duration, Instant};

/// The least time one address gets before the next is tried (unless less
/// is left): a connect over a slow path needs a round trip or two, and a
/// lost SYN is sent again after 1 s.
pub const MIN_ADDRESS_SHARE: Duration = Duration::from_secs(2);

/// When the attempt on the first of `left` addresses still to try gives
/// up, for a connect that must be done by `deadline`: an equal share of
/// the time left, at least [`MIN_ADDRESS_SHARE`], and all of it for the
/// last address. An address that never answers (a firewall that drops
/// its SYNs, an IPv6 route that goes nowhere) so takes only its share,
/// and the addresses after it are still tried.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
/// use pulse_driver::attempt_deadline;
///
/// let now = Instant::now();
/// let deadline = now + Duration::from_secs(10);
/// assert_eq!(attempt_deadline(now, deadline, 2), now + Duration::from_secs(5));
/// assert_eq!(attempt_deadline(now, deadline, 10), now + Duration::from_secs(2));
/// assert_eq!(attempt_deadline(now, deadline, 1), deadline);
/// ```
pub fn attempt_deadline(now: Instant, deadline: Instant, left: usize) -> Instant {
    let time_left = deadline.saturating_duration_since(now);
    let share = time_left / u32::try_from(left.max(1)).unwrap_or(u32::MAX);
    now + share.max(MIN_ADDRESS_SHARE).min(time_left)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_short_deadline_is_all_the_first_address_s() {
        let now = Instant::now();
        assert_eq!(attempt_deadline(now, now + SECOND, 3), now + SECOND);
    }

    #[test]
    fn a_deadline_already_past_gives_no_time() {
        let now = Instant::now();
        assert_eq!(attempt_deadline(now + SECOND, now, 2), now + SECOND);
    }

    #[test]
    fn many_addresses_get_at_least_the_minimum_share_each() {
        let now = Instant::now();
        let deadline = now + 60 * SECOND;
        assert_eq!(attempt_deadline(now, deadline, 4), now + 15 * SECOND);
        assert_eq!(attempt_deadline(now, deadline, 100), now + MIN_ADDRESS_SHARE);
    }
}
