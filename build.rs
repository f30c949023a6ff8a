//! Records the git revision the binary is built from, for `tessera
//! --version` and the `tessera_build_info` metric: `GIT_REVISION` when set
//! (container builds without `.git`), else `git rev-parse --short HEAD`,
//! else "unknown" (a source tarball).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok().filter(|output| output.status.success())?;
    Some(String::from_utf8_lossy(&output.stdout).trim().to_string()).filter(|text| !text.is_empty())
}

fn main() {
    // Not TESSERA_*: cargo also sets this variable for `cargo run` and
    // `cargo test`, and tessera warns about unknown TESSERA_* variables.
    println!("cargo:rerun-if-env-changed=GIT_REVISION");
    let revision = std::env::var("GIT_REVISION").ok().filter(|r| !r.is_empty()).or_else(|| git(&["rev-parse", "--short", "HEAD"]));
    println!("cargo:rustc-env=BUILD_GIT_REVISION={}", revision.as_deref().unwrap_or("unknown"));
    // Build again when HEAD moves: HEAD itself (a checkout) and the branch it names (a commit).
    for path in [
        git(&["rev-parse", "--git-path", "HEAD"]),
        git(&["symbolic-ref", "-q", "HEAD"]).and_then(|r| git(&["rev-parse", "--git-path", &r])),
    ]
    .into_iter()
    .flatten()
    {
        println!("cargo:rerun-if-changed={path}");
    }
}
