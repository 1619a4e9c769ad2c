//! The workspace's binaries that a harness starts as child processes
//! (`pulse-peer`, the tokio reference), found beside the harness's own
//! executable and, when cargo started the harness, built first.
//!
//! `cargo run --bin pulse-load` builds pulse-load alone, so on a fresh
//! clone `pulse-peer` does not exist yet; and a binary built before the
//! last edit would measure old code. Under cargo (which sets `CARGO` for
//! what it runs), each binary is built with the harness's own profile (a
//! no-op when it is fresh); run directly, a missing binary is named with
//! the command that builds it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace manifest, so the build works from any directory.
const WORKSPACE_MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");

/// The binary `name` of `package`, beside this executable, built first if
/// cargo started us. Panics, saying how to build it, if it is missing.
pub fn binary(package: &str, name: &str) -> PathBuf {
    let me = std::env::current_exe().expect("own path");
    let dir = me.parent().expect("own directory");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let profile = profile_args(dir);
    let build = ["cargo", "build"]
        .into_iter()
        .chain(profile.iter().map(String::as_str))
        .chain(["-p", package, "--bin", name])
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(cargo) = std::env::var_os("CARGO") {
        eprintln!("building {name} ({build})");
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "--manifest-path",
                WORKSPACE_MANIFEST,
                "-p",
                package,
                "--bin",
                name,
            ])
            .args(&profile)
            .status()
            .unwrap_or_else(|e| panic!("cannot run `{build}`: {e}"));
        assert!(status.success(), "`{build}` failed");
    }
    assert!(
        path.exists(),
        "{} is missing; build it with `{build}`, or start this harness with `cargo run`",
        path.display()
    );
    path
}

/// The cargo arguments that build into `dir`, a profile's output directory:
/// `target/debug` is the `dev` profile (the default), any other
/// `target/<name>` the profile of that name.
pub fn profile_args(dir: &Path) -> Vec<String> {
    match dir.file_name().and_then(|name| name.to_str()) {
        None | Some("debug") => Vec::new(),
        Some(profile) => vec!["--profile".to_string(), profile.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_is_built_with_the_profile_of_the_directory_it_runs_from() {
        assert!(profile_args(Path::new("/w/target/debug")).is_empty());
        assert_eq!(profile_args(Path::new("/w/target/release")), ["--profile", "release"]);
        assert_eq!(
            profile_args(Path::new("/w/target/profiling")),
            ["--profile", "profiling"]
        );
    }
}
