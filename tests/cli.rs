//! The CLI as a user runs it: the real binary, `init`, `key encrypt`, group/post/posts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const TOKEN: &str = "cli-test-token-0123456789";

fn rumgate(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rumgate"));
    cmd.args(args).env("RUST_LOG", "error");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run rumgate")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_creates_private_key_and_token_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = rumgate(&["init", "--data-dir", data.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("API token created in"),
        "{}",
        stdout(&out)
    );
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("node.key")), 0o600);
    assert_eq!(mode(&data.join("api.token")), 0o600);
    assert_eq!(mode(&data.join("rumgate.db")), 0o600);
    let token = std::fs::read_to_string(data.join("api.token")).unwrap();
    assert!(token.trim().len() >= 32);
    // The token is never printed, only its location.
    assert!(!stdout(&out).contains(token.trim()));
    // A second init keeps the same identity and token.
    let again = rumgate(&["init", "--data-dir", data.to_str().unwrap()], &[]);
    assert!(stdout(&again).contains("API token in"));
    let id = |o: &Output| stdout(o).lines().next().unwrap().to_string();
    assert_eq!(id(&out), id(&again));
}

#[test]
fn encrypted_key_needs_the_right_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let first = rumgate(&["init", "--data-dir", data], &[]);
    assert!(first.status.success());
    let node_line = stdout(&first).lines().next().unwrap().to_string();

    let out = rumgate(&["key", "encrypt", "--data-dir", data], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("RUMGATE_PASSPHRASE"),
        "{}",
        stderr(&out)
    );
    let out = rumgate(
        &["key", "encrypt", "--data-dir", data],
        &[("RUMGATE_PASSPHRASE", "open sesame")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let key_file = std::fs::read_to_string(dir.path().join("node.key")).unwrap();
    assert!(key_file.contains("\"encrypted\""));

    let out = rumgate(&["init", "--data-dir", data], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is encrypted"), "{}", stderr(&out));
    let out = rumgate(
        &["init", "--data-dir", data],
        &[("RUMGATE_PASSPHRASE", "wrong")],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("wrong passphrase"),
        "{}",
        stderr(&out)
    );
    let out = rumgate(
        &["init", "--data-dir", data],
        &[("RUMGATE_PASSPHRASE", "open sesame")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().next().unwrap(),
        node_line,
        "same identity"
    );
}

#[test]
fn group_post_and_posts_commands_talk_to_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = common::spawn_run(dir.path(), &[], &[("RUMGATE_API_TOKEN", TOKEN)]);
    let env = [("RUMGATE_API", base.as_str()), ("RUMGATE_TOKEN", TOKEN)];

    let out = rumgate(&["group", "create", "diary"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("seed: rum://seed?v=1"));
    for text in ["one", "two", "three"] {
        let out = rumgate(&["post", "diary", text], &env);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).ends_with(" pending\n"));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let lines = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "posts never showed up"
        );
        let out = rumgate(&["posts", "diary"], &env);
        assert!(out.status.success(), "{}", stderr(&out));
        let s = stdout(&out);
        if s.lines().count() == 3 {
            break s;
        }
        std::thread::sleep(std::time::Duration::from_millis(20)); // poll interval, not sync
    };
    let texts: Vec<_> = lines
        .lines()
        .map(|l| l.rsplit(": ").next().unwrap())
        .collect();
    assert_eq!(texts, ["one", "two", "three"]);

    let out = rumgate(&["group", "list"], &env);
    assert!(stdout(&out).contains("diary"));
    assert!(stdout(&out).contains("owner"));
    let out = rumgate(&["post", "nonexistent", "x"], &env);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no joined group is named"),
        "{}",
        stderr(&out)
    );
    let out = rumgate(&["group", "leave", "diary"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = rumgate(&["group", "list"], &env);
    assert!(!stdout(&out).contains("diary"));

    let wrong = [
        ("RUMGATE_API", base.as_str()),
        ("RUMGATE_TOKEN", "not-the-token-at-all"),
    ];
    let out = rumgate(&["group", "list"], &wrong);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn cli_reports_an_unreachable_node_clearly() {
    let out = rumgate(
        &["group", "list"],
        &[
            ("RUMGATE_API", "http://127.0.0.1:9"),
            ("RUMGATE_TOKEN", TOKEN),
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot reach the node"),
        "{}",
        stderr(&out)
    );
}

fn spawn_on(dir: &Path, addr: &str) -> Child {
    common::spawn_run(
        dir,
        &["--api-listen", addr],
        &[("RUMGATE_API_TOKEN", TOKEN)],
    )
    .0
}

#[test]
fn tail_follows_and_resumes_after_the_node_restarts() {
    let dir = tempfile::tempdir().unwrap();
    // A fixed port so the restarted node is where `tail` reconnects.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let base = format!("http://{addr}");
    let env = [("RUMGATE_API", base.as_str()), ("RUMGATE_TOKEN", TOKEN)];
    let mut node = spawn_on(dir.path(), &addr);
    assert!(rumgate(&["group", "create", "feed"], &env).status.success());
    assert!(rumgate(&["post", "feed", "before"], &env).status.success());

    let mut tail = Command::new(env!("CARGO_BIN_EXE_rumgate"))
        .args(["tail", "feed", "--after", "0"])
        .env("RUMGATE_API", &base)
        .env("RUMGATE_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let out = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("tail printed nothing for {what}"))
    };
    assert!(next("first").ends_with(": before"));
    assert!(rumgate(&["post", "feed", "live"], &env).status.success());
    assert!(next("live").ends_with(": live"));

    node.kill().unwrap();
    node.wait().unwrap();
    let mut node = spawn_on(dir.path(), &addr);
    assert!(rumgate(&["post", "feed", "after restart"], &env)
        .status
        .success());
    assert!(rumgate(&["post", "feed", "and more"], &env)
        .status
        .success());
    // Exactly the new items, no repeats of "before"/"live".
    assert!(next("after restart").ends_with(": after restart"));
    assert!(next("and more").ends_with(": and more"));
    tail.kill().unwrap();
    tail.wait().unwrap();
    node.kill().unwrap();
    node.wait().unwrap();
}
