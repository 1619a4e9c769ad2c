//! Descriptor limits for tests that hold many sockets.

/// Raises this process's soft limit on open files to its hard limit (the
/// common default soft limit, 1,024, is too few for a test that holds a
/// thousand sockets); children started afterwards inherit it. Returns the
/// new limit.
pub fn raise_fd_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    setrlimit(Resource::Nofile, raised).expect("raise the soft limit on open files");
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}
