//! How the loop shares out mio tokens. Connections use their slab index,
//! counting up from the first token of the range (0 for an `EventLoop`);
//! the top of the range is reserved, counting down from its last token
//! (`usize::MAX` for an `EventLoop`): the waker, then the UDP sockets, then
//! the TCP listeners. Placed relative to the top, the layout fits a 32-bit
//! `usize` as well as a 64-bit one, with room for every connection a `u32`
//! index can name on 64 bits, and for all but the last few thousand on 32
//! bits. An `Endpoint` in someone else's `Poll` gets the range its user
//! chose, with fewer sockets of each kind.

use mio::Token;

/// Listeners, and separately UDP sockets, one loop can hold.
pub(crate) const MAX_SOCKETS_PER_KIND: usize = 1 << 12;

/// Listeners, and separately UDP sockets, an `Endpoint` in a token range of
/// its user's choosing can hold.
pub(crate) const ENDPOINT_SOCKETS_PER_KIND: usize = 64;

/// What a token stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Connection(u32),
    Listener(usize),
    Udp(usize),
    Waker,
}

/// The token layout for a `usize` whose largest value is `top`: a pure
/// function of it, so tests can check the 32-bit layout on a 64-bit host.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tokens {
    first: usize,
    top: usize,
    per_kind: usize,
}

impl Tokens {
    /// The layout of this platform's `usize`.
    pub(crate) const NATIVE: Tokens = Tokens::for_top(usize::MAX);

    pub(crate) const fn for_top(top: usize) -> Tokens {
        Tokens {
            first: 0,
            top,
            per_kind: MAX_SOCKETS_PER_KIND,
        }
    }

    /// The layout within `range`, if it has room for the reserved tokens and
    /// at least one connection.
    pub(crate) fn within(range: std::ops::Range<usize>) -> Option<Tokens> {
        let reserved = 1 + 2 * ENDPOINT_SOCKETS_PER_KIND;
        (range.end.checked_sub(range.start)? > reserved).then(|| Tokens {
            first: range.start,
            top: range.end - 1,
            per_kind: ENDPOINT_SOCKETS_PER_KIND,
        })
    }

    /// Sockets of each kind (listeners, UDP sockets) the layout has room for.
    pub(crate) fn per_kind(self) -> usize {
        self.per_kind
    }

    /// Connections the layout has room for.
    pub(crate) fn connections(self) -> usize {
        self.first_listener() - self.first
    }

    /// Whether `token` is in this layout's range.
    pub(crate) fn contains(self, token: Token) -> bool {
        (self.first..=self.top).contains(&token.0)
    }

    pub(crate) fn waker(self) -> Token {
        Token(self.top)
    }

    fn first_udp(self) -> usize {
        self.top - self.per_kind
    }

    /// The lowest reserved token: every connection index is below it.
    fn first_listener(self) -> usize {
        self.first_udp() - self.per_kind
    }

    /// The token of listener `n`, if the loop has room for it.
    pub(crate) fn listener(self, n: usize) -> Option<Token> {
        (n < self.per_kind).then(|| Token(self.first_listener() + n))
    }

    /// The token of UDP socket `n`, if the loop has room for it.
    pub(crate) fn udp(self, n: usize) -> Option<Token> {
        (n < self.per_kind).then(|| Token(self.first_udp() + n))
    }

    /// The token of the connection at slab `index`, if it is below the
    /// reserved range.
    pub(crate) fn connection(self, index: u32) -> Option<Token> {
        let index = usize::try_from(index).ok()?;
        (index < self.connections()).then(|| Token(self.first + index))
    }

    pub(crate) fn slot(self, token: Token) -> Slot {
        match token.0 {
            t if t == self.top => Slot::Waker,
            t if t >= self.first_udp() => Slot::Udp(t - self.first_udp()),
            t if t >= self.first_listener() => Slot::Listener(t - self.first_listener()),
            // Below the reserved range, so it came from `connection`: a u32.
            t => Slot::Connection((t - self.first) as u32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPS: [(&str, usize); 2] = [("32-bit", u32::MAX as usize), ("64-bit", u64::MAX as usize)];

    #[test]
    fn every_reserved_token_fits_in_usize_and_reads_back_as_what_it_was_given_for() {
        for (bits, top) in TOPS {
            let tokens = Tokens::for_top(top);
            assert_eq!(tokens.slot(tokens.waker()), Slot::Waker, "{bits}");
            for n in [0, 1, MAX_SOCKETS_PER_KIND - 1] {
                let listener = tokens.listener(n).expect("room for a listener");
                let udp = tokens.udp(n).expect("room for a UDP socket");
                assert!(listener.0 < top && udp.0 < top, "{bits}: {listener:?} {udp:?}");
                assert_eq!(tokens.slot(listener), Slot::Listener(n), "{bits}");
                assert_eq!(tokens.slot(udp), Slot::Udp(n), "{bits}");
            }
            assert_eq!(tokens.listener(MAX_SOCKETS_PER_KIND), None, "{bits}");
            assert_eq!(tokens.udp(MAX_SOCKETS_PER_KIND), None, "{bits}");
        }
    }

    #[test]
    fn connections_stay_below_the_reserved_tokens_on_32_and_64_bits() {
        for (bits, top) in TOPS {
            let tokens = Tokens::for_top(top);
            for index in [0, 1, 1 << 20, u32::MAX / 2] {
                let token = tokens.connection(index).expect("room for the connection");
                assert_eq!(tokens.slot(token), Slot::Connection(index), "{bits}");
            }
            let first_reserved = tokens.listener(0).unwrap().0;
            // The largest index given a token is just below the reserved range.
            let last = u32::try_from(first_reserved - 1).unwrap_or(u32::MAX);
            let token = tokens.connection(last).expect("room for the last connection");
            assert_eq!(tokens.slot(token), Slot::Connection(last), "{bits}");
            if let Ok(reserved) = u32::try_from(first_reserved) {
                assert_eq!(tokens.connection(reserved), None, "{bits}");
            }
        }
    }

    #[test]
    fn a_chosen_range_holds_its_connections_and_sockets_and_nothing_outside_it() {
        let tokens = Tokens::within(1000..2000).expect("room");
        assert_eq!(tokens.waker(), Token(1999));
        assert_eq!(tokens.connection(0), Some(Token(1000)));
        let last = tokens.connections() as u32 - 1;
        let token = tokens.connection(last).expect("the last connection");
        assert_eq!(tokens.slot(token), Slot::Connection(last));
        assert_eq!(tokens.connection(last + 1), None);
        for n in [0, ENDPOINT_SOCKETS_PER_KIND - 1] {
            assert_eq!(tokens.slot(tokens.listener(n).unwrap()), Slot::Listener(n));
            assert_eq!(tokens.slot(tokens.udp(n).unwrap()), Slot::Udp(n));
        }
        assert!(tokens.contains(Token(1000)) && tokens.contains(Token(1999)));
        assert!(!tokens.contains(Token(999)) && !tokens.contains(Token(2000)));
        assert!(Tokens::within(0..129).is_none(), "no room for a connection");
    }

    #[test]
    fn the_native_layout_is_the_layout_of_usize_max() {
        assert_eq!(Tokens::NATIVE.waker(), Token(usize::MAX));
        assert_eq!(Tokens::NATIVE.connection(u32::MAX).is_some(), usize::BITS > 32);
    }
}
