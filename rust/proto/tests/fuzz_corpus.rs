// SPDX-License-Identifier: GPL-2.0

//! Replays the fuzzers' committed corpus (fuzz/corpus/<target>/) through the very checks the
//! fuzz targets run (fuzz/checks.rs), on stable Rust: `make check` needs no nightly, and an
//! input that once found a bug stays a test.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::fs;
use std::path::Path;

#[test]
fn every_corpus_input_passes_its_targets_checks() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, check) in checks::TARGETS {
        let dir = corpus.join(target);
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut inputs = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            let data = fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target}: {} fails", path.display());
            inputs += 1;
        }
        assert!(inputs > 0, "{target}: no corpus in {}", dir.display());
    }
}

#[test]
fn every_corpus_directory_has_a_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for entry in fs::read_dir(&corpus).unwrap() {
        let name = entry.unwrap().file_name();
        let name = name.to_str().unwrap();
        assert!(
            checks::TARGETS.iter().any(|(target, _)| *target == name),
            "fuzz/corpus/{name} has no target in fuzz/checks.rs"
        );
    }
}
