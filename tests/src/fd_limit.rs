//! The soft limit on open files, raised for the tests and tools that hold
//! thousands of connections. Many Linux systems start processes with a soft
//! limit of 1,024 and a much higher hard limit (often 524,288), which any
//! process may raise its soft limit to; children started afterwards
//! inherit it.

/// Raises this process's soft limit on open files to `wanted` (or to the
/// hard limit, if that is lower) and returns the soft limit now in force.
pub fn raise_open_files(wanted: u64) -> u64 {
    imp::raise(wanted)
}

/// Raises the limit as [`raise_open_files`] does and panics, saying how to
/// raise the hard limit, if it stays below `needed`.
pub fn require_open_files(needed: u64) {
    let limit = raise_open_files(needed);
    assert!(
        limit >= needed,
        "this needs {needed} open files, but the hard limit is {limit}: raise it \
         (as root: `ulimit -Hn {needed}` in the shell, or `nofile` in /etc/security/limits.conf)"
    );
}

#[cfg(unix)]
mod imp {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

    pub(super) fn raise(wanted: u64) -> u64 {
        let limit = getrlimit(Resource::Nofile);
        // `None` is unlimited.
        let soft = limit.current.unwrap_or(u64::MAX);
        let hard = limit.maximum.unwrap_or(u64::MAX);
        if soft >= wanted {
            return soft;
        }
        let raised = wanted.min(hard);
        let new = Rlimit {
            current: Some(raised),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, new) {
            Ok(()) => raised,
            Err(_) => soft,
        }
    }
}

#[cfg(not(unix))]
mod imp {
    /// No per-process limit of this kind to raise.
    pub(super) fn raise(_wanted: u64) -> u64 {
        u64::MAX
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use rustix::process::{getrlimit, Resource};

    #[test]
    fn the_soft_limit_rises_to_what_is_wanted_within_the_hard_limit() {
        let hard = getrlimit(Resource::Nofile).maximum.unwrap_or(u64::MAX);
        let wanted = hard.min(4096);
        assert!(raise_open_files(wanted) >= wanted);
        assert!(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX) >= wanted);
    }
}
