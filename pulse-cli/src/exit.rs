//! Exit codes a script or an orchestrator can use.

/// Alive, or done.
pub const OK: i32 = 0;
/// Dead or unreachable.
pub const DEAD: i32 = 1;
/// A usage or configuration error.
pub const USAGE: i32 = 2;
