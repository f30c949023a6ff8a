//! README's walkthrough, run as written: the block is taken from README.md
//! and run with `bash -e -o pipefail` against the real binary, so any step
//! that fails fails the test.

use crate::helpers::*;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The first ```sh block after the "## Walkthrough" heading.
fn walkthrough_block() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("\n## Walkthrough\n").nth(1).expect("a Walkthrough section");
    let block = section.split("```sh\n").nth(1).expect("a sh block in it");
    block.split("\n```").next().unwrap().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    for tool in ["curl", "jq"] {
        let found = Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().unwrap().status.success();
        assert!(found, "the walkthrough needs {tool} (bash .ci/setup installs it)");
    }
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), walkthrough_block()).unwrap();
    let bin_dir = binary().parent().unwrap().to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut command = Command::new("bash");
    command.args(["-e", "-o", "pipefail"]).arg(script.path()).env("PATH", path).env("PORT", free_port().to_string());
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("TESSERA_")) {
        command.env_remove(name);
    }
    // Its own process group, so a server it left running can be stopped.
    let mut child = command.process_group(0).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let group = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill only signals the walkthrough's own process group.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the walkthrough failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}", output.status);
    // What the steps printed: the introspection after logout says inactive,
    // the old and the new secret both work after the rotation.
    assert!(stdout.contains("\"active\": true"), "{stdout}");
    assert!(stdout.lines().any(|line| line == "false"), "the logged-out token is inactive: {stdout}");
    assert_eq!(stdout.lines().filter(|line| *line == "\"Bearer\"").count(), 2, "{stdout}");
    assert!(stdout.contains("\"valid\": true") && stdout.contains("\"tenant\": \"acme\""), "{stdout}");
}
