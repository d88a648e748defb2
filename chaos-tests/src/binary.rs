//! Finding the `pagerd` executable the cluster runs.
//!
//! Order: the `PAGERD_BIN` environment variable (used as given, never rebuilt), else
//! `<target>/<profile>/pagerd` in this workspace, where `<target>` is `CARGO_TARGET_DIR` or
//! `<workspace>/target`, and `<profile>` is `debug` for a debug build of this crate (the tests)
//! and `release` for a release build (the bench). When that file is missing, or older than a
//! source file of the crates it is built from, `cargo build -p pagerd` runs once per process.
//!
//! `cargo test --workspace` builds `target/debug/pagerd` itself (the `pagerd` package has
//! integration tests, so cargo builds its binary before running any test), so in CI the build
//! here is a no-op check that never runs cargo.

use anyhow::{bail, Context as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

/// The workspace root (this crate lives in `<root>/chaos-tests`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The workspace's target directory: `CARGO_TARGET_DIR` (relative to the workspace root when
/// relative), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    let root = workspace_root();
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_relative() { root.join(t) } else { t })
        .unwrap_or_else(|| root.join("target"))
}

/// `release` when this crate was built with optimisations, else `debug`.
pub fn profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// The path of `pagerd`, built first if needed. Safe to call from many tests at once: the
/// first caller builds, the others wait for it and get the same answer.
pub fn pagerd() -> anyhow::Result<PathBuf> {
    static FOUND: OnceLock<Mutex<Option<PathBuf>>> = OnceLock::new();
    let slot = FOUND.get_or_init(|| Mutex::new(None));
    let mut found = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = found.as_ref() {
        return Ok(path.clone());
    }
    let path = locate()?;
    *found = Some(path.clone());
    Ok(path)
}

fn locate() -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("PAGERD_BIN") {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            bail!("PAGERD_BIN={} is not a file", bin.display());
        }
        return Ok(bin);
    }
    let root = workspace_root();
    let bin = target_dir().join(profile()).join("pagerd");
    let reason = match modified(&bin) {
        None => Some("it is missing".to_string()),
        Some(built) => newest_source(&root)
            .filter(|(changed, _)| *changed > built)
            .map(|(_, file)| format!("{} is newer", file.display())),
    };
    if let Some(reason) = reason {
        build(&root, &bin, &reason)?;
    }
    Ok(bin)
}

fn build(root: &Path, bin: &Path, reason: &str) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "-p", "pagerd", "--bin", "pagerd"]);
    if profile() == "release" {
        cmd.arg("--release");
    }
    eprintln!(
        "chaos-tests: building {} ({reason}): {cmd:?}",
        bin.display()
    );
    let status = cmd
        .status()
        .with_context(|| format!("run {cmd:?} in {}", root.display()))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    if !bin.is_file() {
        bail!("{cmd:?} succeeded but {} does not exist", bin.display());
    }
    Ok(())
}

/// The workspace crates `pagerd` is built from.
const PAGERD_CRATES: [&str; 6] = [
    "pagerd",
    "pager-core",
    "pager-proto",
    "pager-raft",
    "pager-notify",
    "pager-tls",
];

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The most recently modified source file `pagerd` is built from: `src/`, `build.rs` and
/// `Cargo.toml` of the crates it links, `proto/`, and the workspace manifest and lock file.
/// (Tests, examples and benches are not part of the binary.) Cargo itself rebuilds on mtimes.
fn newest_source(root: &Path) -> Option<(SystemTime, PathBuf)> {
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    let mut consider = |path: PathBuf| {
        if let Some(t) = modified(&path) {
            if newest.as_ref().map_or(true, |(n, _)| t > *n) {
                newest = Some((t, path));
            }
        }
    };
    consider(root.join("Cargo.toml"));
    consider(root.join("Cargo.lock"));
    let mut dirs = vec![root.join("proto")];
    for krate in PAGERD_CRATES {
        let dir = root.join("crates").join(krate);
        consider(dir.join("Cargo.toml"));
        consider(dir.join("build.rs"));
        dirs.push(dir.join("src"));
    }
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                consider(path);
            }
        }
    }
    newest
}
