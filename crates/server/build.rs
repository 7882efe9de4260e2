//! The commit `tessera --version` prints: `TESSERA_COMMIT` when the builder sets it (a
//! packager building from a tarball), else `git rev-parse` of the source tree, else
//! `unknown` (a tarball without git). Never fails the build.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=TESSERA_COMMIT");
    let commit = std::env::var("TESSERA_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=TESSERA_COMMIT={}", commit.trim());
}

/// The short commit of HEAD, and the files whose change means another commit.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git").args(args).output().ok()?;
        if !out.status.success() {
            return None;
        }
        let s = String::from_utf8(out.stdout).ok()?;
        Some(s.trim().to_owned())
    };
    // Only the repository of this source tree: a tarball unpacked inside another repository
    // must not print that one's commit.
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?).join("../..");
    if top.canonicalize().ok()? != root.canonicalize().ok()? {
        return None;
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // Follow HEAD and the branch it names (a worktree has its own HEAD), only files that exist:
    // a missing one would rerun this script on every build.
    let mut watch = Vec::new();
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        watch.push(PathBuf::from(head));
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(p) = git(&["rev-parse", "--git-path", &branch])
    {
        watch.push(PathBuf::from(p));
    }
    if let Some(p) = git(&["rev-parse", "--git-path", "packed-refs"]) {
        watch.push(PathBuf::from(p));
    }
    for p in watch {
        // `--git-path` may answer relative to the current directory, the crate's.
        if let Ok(abs) = p.canonicalize() {
            println!("cargo:rerun-if-changed={}", abs.display());
        }
    }
    Some(commit)
}
