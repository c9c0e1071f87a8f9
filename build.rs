//! Records the git revision for `sessiond_build_info`, when built from a git checkout.
//!
//! The revision comes from `SESSIOND_GIT_REVISION` when that is set and not empty (the
//! Dockerfile passes it as a build argument: `.git` is not in the image's build context),
//! otherwise from `git rev-parse`. The `.git` paths are watched only where they exist: a
//! `rerun-if-changed` on a missing path makes Cargo rerun this script, and rebuild the crate,
//! on every build (every `docker build` did).

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SESSIOND_GIT_REVISION");
    // A branch checkout: HEAD names a ref under refs/heads (or in packed-refs); a detached HEAD
    // holds the commit itself. A worktree or submodule has a `.git` file, not a directory:
    // nothing is watched there, the revision is still read.
    for path in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    if std::env::var("SESSIOND_GIT_REVISION").is_ok_and(|r| !r.trim().is_empty()) {
        return;
    }
    let revision = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    if let Some(revision) = revision {
        println!("cargo:rustc-env=SESSIOND_GIT_REVISION={revision}");
    }
}
