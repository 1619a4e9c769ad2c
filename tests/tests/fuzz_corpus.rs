//! Replays every fuzz input kept in the repository — each target's corpus
//! and every regression — through the same target functions the fuzzers
//! run (`fuzz/src/lib.rs`), on stable Rust with no sanitizer: a regression
//! fails here, in CI.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod targets;

use std::path::Path;

/// Runs `target` on every file under `fuzz/<dir>`; returns how many.
fn replay(dir: &str, target: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz").join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && path.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.')))
        .collect();
    files.sort();
    for path in &files {
        let data = std::fs::read(path).expect("readable input");
        let outcome = std::panic::catch_unwind(|| target(&data));
        assert!(outcome.is_ok(), "{} fails", path.display());
    }
    files.len()
}

#[test]
fn the_decode_corpus_replays_clean() {
    assert!(
        replay("corpus/decode", targets::decode) > 0,
        "the decode corpus is empty"
    );
}

#[test]
fn the_session_corpus_replays_clean() {
    assert!(
        replay("corpus/session", targets::session) > 0,
        "the session corpus is empty"
    );
}

#[test]
fn the_pair_corpus_replays_clean() {
    assert!(replay("corpus/pair", targets::pair) > 0, "the pair corpus is empty");
    // Both links are exercised: the setup byte's second bit picks the
    // benign one, whose oracle is the promises themselves.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/pair");
    let benign = std::fs::read_dir(&root)
        .expect("fuzz/corpus/pair")
        .filter_map(Result::ok)
        .filter(|entry| std::fs::read(entry.path()).is_ok_and(|data| data.first().is_some_and(|setup| setup & 2 != 0)))
        .count();
    assert!(benign >= 10, "only {benign} pair inputs run the benign link");
}

#[test]
fn the_wheel_corpus_replays_clean() {
    assert!(replay("corpus/wheel", targets::wheel) > 0, "the wheel corpus is empty");
}

/// Inputs that once crashed a target or broke its oracle, named
/// `<target>-<what>`, kept forever. A file whose name starts with no
/// target is a mistake, not something to skip.
#[test]
fn every_regression_replays_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
    let (mut replayed, mut failing) = (0, Vec::new());
    for entry in std::fs::read_dir(&root)
        .expect("fuzz/regressions")
        .filter_map(Result::ok)
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let target: fn(&[u8]) = match name.split('-').next() {
            Some("decode") => targets::decode,
            Some("session") => targets::session,
            Some("pair") => targets::pair,
            Some("wheel") => targets::wheel,
            _ => panic!("regression {name} names no target (decode-, session-, pair-, wheel-)"),
        };
        let data = std::fs::read(entry.path()).expect("readable input");
        if std::panic::catch_unwind(|| target(&data)).is_err() {
            failing.push(name);
        }
        replayed += 1;
    }
    assert!(replayed > 0, "no regression replayed");
    failing.sort();
    assert!(failing.is_empty(), "regressions that fail: {failing:?}");
}
