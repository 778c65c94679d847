//! A throwaway `pass` store for tests that run a real credential helper.
//!
//! Needs the Debian packages `pass` and `gnupg` (which bring `gpg`, `gpg-agent` and `gpgconf`).

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

/// A throwaway password store: its own GNUPGHOME and PASSWORD_STORE_DIR in a temp dir, a new passphrase-less key.
#[derive(Debug)]
pub struct PassStore {
    dir: tempfile::TempDir,
    gnupg_home: PathBuf,
    store_dir: PathBuf,
    fingerprint: String,
}

impl PassStore {
    /// A new store with its own key, or `None` (with a note on stderr) when `pass` or `gpg` is not installed.
    ///
    /// When the environment variable `CI` is set, a missing tool is a panic instead: CI must install them.
    pub fn create() -> Option<PassStore> {
        for (tool, arg) in [("pass", "version"), ("gpg", "--version"), ("gpgconf", "--version")] {
            let ran = Command::new(tool)
                .arg(arg)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if let Err(e) = ran {
                let note = format!("`{tool}` cannot be run ({e}); install it with `apt-get install -y pass gnupg`");
                if std::env::var_os("CI").is_some() {
                    panic!("CI must run the pass tests: {note}");
                }
                eprintln!("skipping a test that needs a real password store: {note}");
                return None;
            }
        }
        let started = Instant::now();
        // Under /tmp rather than $TMPDIR: gpg-agent's socket path must fit in a Unix socket address (108 bytes).
        let dir = tempfile::Builder::new()
            .prefix("apiary-pass-")
            .tempdir_in("/tmp")
            .expect("create a temp dir");
        let gnupg_home = dir.path().join("gnupg");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&gnupg_home)
            .expect("create GNUPGHOME");
        let store_dir = dir.path().join("store");
        // Built before the key exists so that a failing step below still kills the agent on drop.
        let mut store = PassStore {
            dir,
            gnupg_home,
            store_dir,
            fingerprint: String::new(),
        };
        let no_passphrase = ["--batch", "--pinentry-mode", "loopback", "--passphrase", ""];
        let uid = "apiary-test <test@apiary.invalid>";
        store.run(
            "gpg",
            &[
                &no_passphrase[..],
                &["--quick-gen-key", uid, "ed25519", "sign", "never"],
            ]
            .concat(),
            None,
        );
        let listing = store.run("gpg", &["--batch", "--with-colons", "--list-secret-keys"], None);
        let fingerprint = listing
            .lines()
            .find_map(|line| line.strip_prefix("fpr:"))
            .and_then(|rest| rest.split(':').nth(8))
            .expect("gpg lists the new key's fingerprint")
            .to_owned();
        // `pass init` needs a key that can encrypt: ed25519 only signs, so add a cv25519 subkey.
        let add_subkey = ["--quick-add-key", &fingerprint, "cv25519", "encr", "never"];
        store.run("gpg", &[&no_passphrase[..], &add_subkey].concat(), None);
        store.run("pass", &["init", &fingerprint], None);
        store.fingerprint = fingerprint;
        eprintln!(
            "throwaway pass store with a new GnuPG key ready in {:?}",
            started.elapsed()
        );
        Some(store)
    }

    /// Sets `entry` to exactly `value` (no newline added): `pass insert --multiline --force entry`, value on stdin.
    pub fn insert(&self, entry: &str, value: &str) {
        self.run("pass", &["insert", "--multiline", "--force", entry], Some(value));
    }

    /// The environment a command needs to use this store: GNUPGHOME, PASSWORD_STORE_DIR, and settings
    /// that a developer's own environment might otherwise override.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("GNUPGHOME", self.gnupg_home.display().to_string()),
            ("PASSWORD_STORE_DIR", self.store_dir.display().to_string()),
            ("PASSWORD_STORE_KEY", self.fingerprint.clone()),
            ("PASSWORD_STORE_GPG_OPTS", String::new()),
            ("PASSWORD_STORE_SIGNING_KEY", String::new()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    }

    /// Runs a tool with this store's environment, panicking with its stderr if it fails; returns its stdout.
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> String {
        let mut child = Command::new(program)
            .args(args)
            .envs(self.env())
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .expect("write to stdin");
        }
        let output = child.wait_with_output().expect("wait for the command");
        assert!(
            output.status.success(),
            "`{program} {}` failed ({}) in {}: {}",
            args.join(" "),
            output.status,
            self.dir.path().display(),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("UTF-8 output")
    }
}

impl Drop for PassStore {
    fn drop(&mut self) {
        // Stop the gpg-agent (and any other daemon) started for this GNUPGHOME before its directory goes.
        let _ = Command::new("gpgconf")
            .args(["--kill", "all"])
            .env("GNUPGHOME", &self.gnupg_home)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
