//! Where a granted secret's value comes from, and a TTL cache in front of it.
//!
//! The operator names one source per secret as a string: `env:VAR` (an environment variable),
//! `dotenv:PATH` or `dotenv:PATH#KEY` (a `.env` file) or `cmd:PROGRAM ARGS...` (a credential
//! helper such as `pass show apiary/github`). The host reads only what the operator pointed at,
//! and only when the value is needed; [`CachedSecret`] re-reads it after a TTL so that a rotated
//! key reaches a running plugin. No value ever appears in a `Debug` or `Display` output or in an
//! error message.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncReadExt};
use zeroize::{Zeroize, Zeroizing};

use crate::clock::Clock;

/// The shortest value accepted: anything shorter is a placeholder or a mistake, not a credential.
pub const MIN_SECRET_BYTES: usize = 8;

/// The longest value accepted (64 KiB); also bounds how much of a command's output is read.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// How long a `cmd:` source may run before it is killed and the fetch fails.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a fetched value is used before it is read again: 5 minutes, so a rotated or revoked key
/// reaches running plugins within minutes without a restart, while a credential helper (a GnuPG
/// decryption, a vault or 1Password round trip) runs at most a few times an hour per secret rather
/// than on every request.
pub const DEFAULT_SECRET_TTL: Duration = Duration::from_secs(300);

/// How many characters of a failed command's last stderr line go into the error message.
const STDERR_LINE_CHARS: usize = 200;

/// How many trailing bytes of a command's stderr are kept to find its last line.
const STDERR_TAIL_BYTES: usize = 4096;

const SOURCE_HELP: &str = "use env:VAR, dotenv:PATH[#KEY] or cmd:PROGRAM ARGS...";

/// Where a secret's value comes from; parsed from `env:`, `dotenv:`, `cmd:` strings.
///
/// A spec holds no value, so its `Debug` and `Display` are safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// `env:VAR`: the environment variable `VAR`, read at fetch time.
    Env(String),
    /// `dotenv:PATH[#KEY]`: the key `KEY` (default: the secret's name) of a `.env` file.
    Dotenv {
        /// The `.env` file; relative paths are resolved with [`SourceSpec::resolve_relative`].
        path: PathBuf,
        /// The key to read; `None` means the secret's own name.
        key: Option<String>,
    },
    /// `cmd:PROGRAM ARGS...`: a command run without a shell; its stdout is the value.
    Command(Vec<String>),
}

/// Why a string is not a valid secret source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceSpecError {
    /// The string has none of the known prefixes; `prefix` is what stood before its `:`, when that
    /// looks like a prefix (the rest is never repeated: it may be a value pasted by mistake).
    #[error("{} is not a secret source: {SOURCE_HELP}", shown_prefix(.prefix))]
    UnknownPrefix {
        /// The text before the first `:`, if it is short and looks like a word.
        prefix: Option<String>,
    },
    /// The prefix is known but what follows it is not usable.
    #[error("`{spec}` is not a valid secret source: {problem}")]
    Invalid {
        /// The source as written.
        spec: String,
        /// What is wrong with it.
        problem: String,
    },
}

fn shown_prefix(prefix: &Option<String>) -> String {
    match prefix {
        Some(prefix) => format!("`{prefix}:…`"),
        None => "a string without an `env:`, `dotenv:` or `cmd:` prefix (not shown: it may be a value)".to_owned(),
    }
}

fn is_dotenv_key(key: &str) -> bool {
    key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

impl FromStr for SourceSpec {
    type Err = SourceSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let invalid = |problem: &str| SourceSpecError::Invalid {
            spec: spec.to_owned(),
            problem: problem.to_owned(),
        };
        if let Some(var) = spec.strip_prefix("env:") {
            if var.is_empty() {
                return Err(invalid("the variable name is empty"));
            }
            if var.contains(|c: char| c == '=' || c == '\0' || c.is_whitespace()) {
                return Err(invalid("a variable name cannot contain `=`, whitespace or NUL"));
            }
            Ok(SourceSpec::Env(var.to_owned()))
        } else if let Some(rest) = spec.strip_prefix("dotenv:") {
            let (path, key) = match rest.rsplit_once('#') {
                Some((path, key)) => (path, Some(key)),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(invalid("the path is empty"));
            }
            if let Some(key) = key
                && !is_dotenv_key(key)
            {
                return Err(invalid(
                    "the key after the last `#` must be a .env key (a letter or `_`, then letters, digits, `_`, `.`)",
                ));
            }
            Ok(SourceSpec::Dotenv {
                path: PathBuf::from(path),
                key: key.map(str::to_owned),
            })
        } else if let Some(command) = spec.strip_prefix("cmd:") {
            if command.contains('\0') {
                return Err(invalid("the command contains a NUL character"));
            }
            let Some(argv) = shlex::split(command) else {
                return Err(invalid(
                    "the command has an unterminated quote or ends with a backslash",
                ));
            };
            if argv.is_empty() {
                return Err(invalid("the command is empty"));
            }
            Ok(SourceSpec::Command(argv))
        } else {
            let prefix = spec.split_once(':').map(|(prefix, _)| prefix).filter(|p| {
                !p.is_empty() && p.len() <= 12 && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
            Err(SourceSpecError::UnknownPrefix {
                prefix: prefix.map(str::to_owned),
            })
        }
    }
}

/// Joins argv so that `shlex::split` gives it back: plain words bare (`-field=token`,
/// `op://vault/item`), others in single quotes where possible, as an operator would write them.
fn join_command(argv: &[String]) -> String {
    let quote = |word: &String| {
        let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:@%+=,#^".contains(c);
        if !word.is_empty() && !word.starts_with('#') && word.chars().all(plain) {
            word.clone()
        } else if !word.contains('\'') {
            format!("'{word}'")
        } else {
            shlex::try_quote(word).map_or_else(|_| word.clone(), |quoted| quoted.into_owned())
        }
    };
    argv.iter().map(quote).collect::<Vec<_>>().join(" ")
}

impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Env(var) => write!(f, "env:{var}"),
            SourceSpec::Dotenv { path, key: None } => write!(f, "dotenv:{}", path.display()),
            SourceSpec::Dotenv { path, key: Some(key) } => write!(f, "dotenv:{}#{key}", path.display()),
            SourceSpec::Command(argv) => write!(f, "cmd:{}", join_command(argv)),
        }
    }
}

impl SourceSpec {
    /// Resolves a relative `dotenv:` path against `base` (the directory of the operator's file); other sources are unchanged.
    pub fn resolve_relative(&self, base: &Path) -> SourceSpec {
        match self {
            SourceSpec::Dotenv { path, key } if path.is_relative() => SourceSpec::Dotenv {
                path: base.join(path),
                key: key.clone(),
            },
            other => other.clone(),
        }
    }

    /// The source that reads this spec's value for the secret `secret_name` (the default `.env` key).
    pub fn into_source(self, secret_name: &str, command_timeout: Duration) -> Arc<dyn SecretSource> {
        match self {
            SourceSpec::Env(var) => Arc::new(EnvSource::new(var)),
            SourceSpec::Dotenv { path, key: Some(key) } => Arc::new(DotenvSource::new(path, key)),
            SourceSpec::Dotenv { path, key: None } => Arc::new(DotenvSource {
                path,
                key: secret_name.to_owned(),
                key_given: false,
            }),
            SourceSpec::Command(argv) => Arc::new(CommandSource::new(argv, command_timeout)),
        }
    }
}

/// Why a secret's value could not be read; every message names the secret and the source, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret `{secret}` from {source_description}: {reason}")]
pub struct SourceError {
    /// The secret's name.
    pub secret: String,
    /// The source as the operator wrote it, see [`SecretSource::describe`].
    pub source_description: String,
    /// What went wrong.
    pub reason: String,
}

/// Reads one secret's current value.
pub trait SecretSource: Send + Sync + fmt::Debug {
    /// The source as the operator wrote it (never the value), for messages and audit events.
    fn describe(&self) -> String;
    /// Reads the value now.
    fn fetch(&self) -> BoxFuture<'_, Result<SecretString, String>>;
}

/// Moves a string into a [`SecretString`] without leaving an unzeroized copy behind.
fn into_secret(mut value: String) -> SecretString {
    // `SecretString::from(&str)` allocates exactly `len` bytes, so no reallocation leaves a copy.
    let secret = SecretString::from(value.as_str());
    value.zeroize();
    secret
}

/// Checks a value's length against [`MIN_SECRET_BYTES`] and [`MAX_SECRET_BYTES`].
fn check_length(value: &SecretString) -> Result<(), String> {
    let len = value.expose_secret().len();
    if len < MIN_SECRET_BYTES {
        Err(format!(
            "the value is {len} bytes long, shorter than the minimum of {MIN_SECRET_BYTES} bytes"
        ))
    } else if len > MAX_SECRET_BYTES {
        Err(format!(
            "the value is {len} bytes long, longer than the maximum of {MAX_SECRET_BYTES} bytes"
        ))
    } else {
        Ok(())
    }
}

/// An environment variable of the host process, read at fetch time.
#[derive(Debug, Clone)]
pub struct EnvSource {
    var: String,
}

impl EnvSource {
    /// A source reading the environment variable `var`.
    pub fn new(var: impl Into<String>) -> Self {
        Self { var: var.into() }
    }
}

impl SecretSource for EnvSource {
    fn describe(&self) -> String {
        format!("env:{}", self.var)
    }

    fn fetch(&self) -> BoxFuture<'_, Result<SecretString, String>> {
        Box::pin(async move {
            let var = &self.var;
            let Some(value) = std::env::var_os(var) else {
                return Err(format!("environment variable `{var}` is not set"));
            };
            match value.into_string() {
                Ok(value) if value.is_empty() => Err(format!("environment variable `{var}` is set but empty")),
                Ok(value) => Ok(into_secret(value)),
                Err(value) => {
                    value.into_encoded_bytes().zeroize();
                    Err(format!("environment variable `{var}` is not valid UTF-8"))
                }
            }
        })
    }
}

/// One key of a `.env` file, parsed with `dotenvy` at every fetch.
///
/// The whole file must parse, and the key must appear exactly once. Note that `dotenvy` expands
/// `$VAR`/`${VAR}` in unquoted and double-quoted values from the host's environment.
#[derive(Debug, Clone)]
pub struct DotenvSource {
    path: PathBuf,
    key: String,
    /// Whether the operator wrote `#KEY` (else the key is the secret's name), for [`SecretSource::describe`].
    key_given: bool,
}

impl DotenvSource {
    /// A source reading `key` from the `.env` file at `path`.
    pub fn new(path: impl Into<PathBuf>, key: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            key: key.into(),
            key_given: true,
        }
    }
}

impl SecretSource for DotenvSource {
    fn describe(&self) -> String {
        let key = self.key_given.then(|| self.key.clone());
        SourceSpec::Dotenv {
            path: self.path.clone(),
            key,
        }
        .to_string()
    }

    fn fetch(&self) -> BoxFuture<'_, Result<SecretString, String>> {
        let (path, key) = (self.path.clone(), self.key.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || read_dotenv(&path, &key))
                .await
                .map_err(|e| format!("reading the .env file failed: {e}"))?
        })
    }
}

fn read_dotenv(path: &Path, key: &str) -> Result<SecretString, String> {
    let shown = path.display();
    let entries = dotenvy::from_path_iter(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut found = None;
    for (index, entry) in entries.enumerate() {
        match entry {
            Ok((name, mut value)) => {
                // `from_path_iter` (unlike dotenvy's loaders) leaves a UTF-8 byte order mark on the first key.
                if name.trim_start_matches('\u{feff}') == key {
                    if found.is_some() {
                        value.zeroize();
                        return Err(format!("key `{key}` appears more than once in {shown}"));
                    }
                    found = Some(into_secret(value));
                } else {
                    value.zeroize();
                }
            }
            Err(dotenvy::Error::LineParse(mut line, position)) => {
                // The line may hold a value: say where, never what.
                line.zeroize();
                return Err(format!(
                    "cannot parse {shown}: syntax error at character {position} of the line after entry {index}"
                ));
            }
            Err(dotenvy::Error::Io(e)) => return Err(format!("cannot read {shown}: {e}")),
            Err(e) => return Err(format!("cannot parse {shown}: {e}")),
        }
    }
    found.ok_or_else(|| format!("no key `{key}` in {shown}"))
}

/// A credential helper run without a shell: stdin null, stdout the value (trailing line breaks
/// removed), stderr kept for error messages, killed after a timeout.
///
/// The child inherits the host's environment, as credential helpers expect, plus any variables
/// added with [`CommandSource::env`].
#[derive(Clone)]
pub struct CommandSource {
    argv: Vec<String>,
    timeout: Duration,
    env: Vec<(String, String)>,
}

impl fmt::Debug for CommandSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Extra environment values may be sensitive (a token for the helper itself): names only.
        let env: Vec<&str> = self.env.iter().map(|(key, _)| key.as_str()).collect();
        f.debug_struct("CommandSource")
            .field("argv", &self.argv)
            .field("timeout", &self.timeout)
            .field("env", &env)
            .finish()
    }
}

impl CommandSource {
    /// A source running `argv` (program first) with the given timeout.
    pub fn new(argv: Vec<String>, timeout: Duration) -> Self {
        Self {
            argv,
            timeout,
            env: Vec::new(),
        }
    }

    /// Extra environment for the command, e.g. for tests or a dedicated store (`GNUPGHOME`, `PASSWORD_STORE_DIR`).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

impl SecretSource for CommandSource {
    fn describe(&self) -> String {
        format!("cmd:{}", join_command(&self.argv))
    }

    fn fetch(&self) -> BoxFuture<'_, Result<SecretString, String>> {
        Box::pin(async move {
            // On timeout the `run_command` future is dropped, and with it the child: `kill_on_drop`.
            match tokio::time::timeout(self.timeout, run_command(&self.argv, &self.env)).await {
                Ok(result) => result,
                Err(_) => Err(format!(
                    "command did not finish within {:?} and was killed",
                    self.timeout
                )),
            }
        })
    }
}

async fn run_command(argv: &[String], env: &[(String, String)]) -> Result<SecretString, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("the command is empty".to_owned());
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("cannot run `{program}`: program not found"),
            std::io::ErrorKind::PermissionDenied => format!("cannot run `{program}`: permission denied"),
            _ => format!("cannot run `{program}`: {e}"),
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    // An over-long stdout fails at once (dropping the child kills it) instead of waiting for stderr.
    let (output, stderr_tail) = tokio::try_join!(read_output(stdout), async { Ok(read_tail(stderr).await) })?;
    let status = child
        .wait()
        .await
        .map_err(|e| format!("waiting for the command failed: {e}"))?;
    if !status.success() {
        return Err(exit_failure(status, &stderr_tail));
    }
    let mut end = output.len();
    while end > 0 && output[end - 1] == b'\n' {
        end -= 1;
        if end > 0 && output[end - 1] == b'\r' {
            end -= 1;
        }
    }
    if end == 0 {
        return Err("the command printed nothing".to_owned());
    }
    let value =
        std::str::from_utf8(&output[..end]).map_err(|_| "the command's output is not valid UTF-8".to_owned())?;
    Ok(SecretString::from(value))
}

/// Reads a command's stdout into one fixed buffer (never reallocated, zeroized on drop).
async fn read_output(mut stdout: impl AsyncRead + Unpin) -> Result<Zeroizing<Vec<u8>>, String> {
    // Room for a maximal value and a `\r\n`, plus one byte to tell that there was more.
    let mut buffer = Zeroizing::new(vec![0u8; MAX_SECRET_BYTES + 3]);
    let mut len = 0;
    loop {
        if len == buffer.len() {
            return Err(format!("the command printed more than {} bytes", MAX_SECRET_BYTES + 2));
        }
        let read = stdout
            .read(&mut buffer[len..])
            .await
            .map_err(|e| format!("reading the command's output failed: {e}"))?;
        if read == 0 {
            break;
        }
        len += read;
    }
    buffer.truncate(len);
    Ok(buffer)
}

/// Reads a command's stderr to its end, keeping only the last [`STDERR_TAIL_BYTES`] or so.
async fn read_tail(mut stderr: impl AsyncRead + Unpin) -> Zeroizing<Vec<u8>> {
    let mut tail = Zeroizing::new(Vec::with_capacity(3 * STDERR_TAIL_BYTES));
    let mut chunk = Zeroizing::new([0u8; 1024]);
    while let Ok(read @ 1..) = stderr.read(&mut chunk[..]).await {
        tail.extend_from_slice(&chunk[..read]);
        if tail.len() > 2 * STDERR_TAIL_BYTES {
            let excess = tail.len() - STDERR_TAIL_BYTES;
            tail.drain(..excess);
        }
    }
    tail
}

/// The last non-blank line of `stderr`, control characters replaced, at most [`STDERR_LINE_CHARS`] characters.
fn last_stderr_line(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().map(str::trim).rfind(|line| !line.is_empty())?;
    let mut shown: String = line.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if shown.chars().count() > STDERR_LINE_CHARS {
        shown = shown.chars().take(STDERR_LINE_CHARS - 1).chain(['…']).collect();
    }
    Some(shown)
}

fn exit_failure(status: ExitStatus, stderr: &[u8]) -> String {
    let what = match status.code() {
        Some(code) => format!("command exited with status {code}"),
        None => {
            #[cfg(unix)]
            if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
                return with_stderr(format!("command was killed by signal {signal}"), stderr);
            }
            "command was terminated without an exit status".to_owned()
        }
    };
    with_stderr(what, stderr)
}

fn with_stderr(what: String, stderr: &[u8]) -> String {
    match last_stderr_line(stderr) {
        Some(line) => format!("{what}: {line}"),
        None => what,
    }
}

/// A value given by an embedder or a test rather than read from the outside.
#[derive(Clone)]
pub struct StaticSource {
    value: SecretString,
}

impl StaticSource {
    /// A source that always yields `value`.
    pub fn new(value: SecretString) -> Self {
        Self { value }
    }
}

impl fmt::Debug for StaticSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticSource([REDACTED])")
    }
}

impl SecretSource for StaticSource {
    fn describe(&self) -> String {
        "static value".to_owned()
    }

    fn fetch(&self) -> BoxFuture<'_, Result<SecretString, String>> {
        Box::pin(futures::future::ready(Ok(self.value.clone())))
    }
}

/// A secret's source with a TTL cache: the value is re-read after `ttl`, so a rotated key is picked up by the next request of a running plugin.
///
/// A failed fetch is not cached, and the previous value is dropped with it (a removed key is
/// treated as revoked); callers that were waiting for that fetch get its error rather than
/// running the source once each.
pub struct CachedSecret {
    name: String,
    source: Arc<dyn SecretSource>,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    state: tokio::sync::Mutex<CacheState>,
    /// Completed fetches, counted under the lock; tells a waiter whether a fetch ended while it waited.
    fetches: AtomicU64,
}

#[derive(Default)]
struct CacheState {
    /// The value and when its fetch started (`clock.monotonic()`).
    value: Option<(SecretString, Duration)>,
    /// The reason the last fetch failed, if it did.
    last_failure: Option<String>,
}

impl fmt::Debug for CachedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedSecret")
            .field("name", &self.name)
            .field("source", &self.source.describe())
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl CachedSecret {
    /// A cache for the secret `name` read from `source`, kept for `ttl` as measured by `clock`.
    pub fn new(name: impl Into<String>, source: Arc<dyn SecretSource>, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            name: name.into(),
            source,
            ttl,
            clock,
            state: tokio::sync::Mutex::new(CacheState::default()),
            fetches: AtomicU64::new(0),
        }
    }

    /// The secret's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The source as the operator wrote it, never the value.
    pub fn describe(&self) -> String {
        self.source.describe()
    }

    /// The current value: cached while younger than the TTL, else fetched again (one fetch at a time: concurrent callers wait for the same fetch). Length is checked here.
    pub async fn get(&self) -> Result<SecretString, SourceError> {
        let fetches_before = self.fetches.load(Ordering::Acquire);
        let mut state = self.state.lock().await;
        if let Some((value, fetched_at)) = &state.value
            && self.clock.monotonic().saturating_sub(*fetched_at) < self.ttl
        {
            return Ok(value.clone());
        }
        if self.fetches.load(Ordering::Acquire) != fetches_before
            && let Some(reason) = &state.last_failure
        {
            return Err(self.error(reason.clone()));
        }
        state.value = None;
        let started = self.clock.monotonic();
        let result = self
            .source
            .fetch()
            .await
            .and_then(|value| check_length(&value).map(|()| value));
        self.fetches.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(value) => {
                state.value = Some((value.clone(), started));
                state.last_failure = None;
                Ok(value)
            }
            Err(reason) => {
                state.last_failure = Some(reason.clone());
                Err(self.error(reason))
            }
        }
    }

    fn error(&self, reason: String) -> SourceError {
        SourceError {
            secret: self.name.clone(),
            source_description: self.source.describe(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    /// Yields `value-N` on its N-th fetch (or fails), after an optional real delay.
    #[derive(Debug, Default)]
    struct CountingSource {
        fetches: AtomicUsize,
        delay: Duration,
        fail: bool,
    }

    impl SecretSource for CountingSource {
        fn describe(&self) -> String {
            "counting test source".to_owned()
        }

        fn fetch(&self) -> BoxFuture<'_, Result<SecretString, String>> {
            Box::pin(async move {
                let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(self.delay).await;
                if self.fail {
                    Err(format!("failure {n}"))
                } else {
                    Ok(SecretString::from(format!("value-{n:04}")))
                }
            })
        }
    }

    fn spec(s: &str) -> SourceSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn spec_error(s: &str) -> String {
        s.parse::<SourceSpec>().expect_err(s).to_string()
    }

    fn command(s: &str) -> CommandSource {
        let SourceSpec::Command(argv) = spec(s) else {
            panic!("{s} is not a command")
        };
        CommandSource::new(argv, DEFAULT_COMMAND_TIMEOUT)
    }

    async fn fetch(source: &dyn SecretSource) -> Result<String, String> {
        source.fetch().await.map(|value| value.expose_secret().to_owned())
    }

    async fn get(cached: &CachedSecret) -> String {
        cached.get().await.unwrap().expose_secret().to_owned()
    }

    #[test]
    fn specs_parse_and_display_round_trip() {
        let cases = [
            ("env:GITHUB_TOKEN", SourceSpec::Env("GITHUB_TOKEN".into())),
            (
                "dotenv:/etc/apiary/.env",
                SourceSpec::Dotenv {
                    path: "/etc/apiary/.env".into(),
                    key: None,
                },
            ),
            (
                "dotenv:secrets.env#GH_TOKEN",
                SourceSpec::Dotenv {
                    path: "secrets.env".into(),
                    key: Some("GH_TOKEN".into()),
                },
            ),
            (
                "dotenv:/srv/a#b/.env#KEY",
                SourceSpec::Dotenv {
                    path: "/srv/a#b/.env".into(),
                    key: Some("KEY".into()),
                },
            ),
            (
                "cmd:pass show apiary/github",
                SourceSpec::Command(vec!["pass".into(), "show".into(), "apiary/github".into()]),
            ),
            (
                "cmd:op read op://vault/item/field",
                SourceSpec::Command(vec!["op".into(), "read".into(), "op://vault/item/field".into()]),
            ),
            (
                "cmd:vault kv get -field=token secret/x",
                SourceSpec::Command(
                    ["vault", "kv", "get", "-field=token", "secret/x"]
                        .map(String::from)
                        .to_vec(),
                ),
            ),
        ];
        for (text, expected) in cases {
            let parsed = spec(text);
            assert_eq!(parsed, expected, "{text}");
            assert_eq!(parsed.to_string(), text);
        }

        let quoted = spec(r#"cmd:op read "op://vault/my item/field""#);
        assert_eq!(
            quoted,
            SourceSpec::Command(vec!["op".into(), "read".into(), "op://vault/my item/field".into()])
        );
        assert_eq!(quoted.to_string(), "cmd:op read 'op://vault/my item/field'");
        assert_eq!(spec(&quoted.to_string()), quoted);
        assert_eq!(spec("cmd:  pass   show x  "), spec("cmd:pass show x"));
        let tricky = ["a b", "it's", "", "#x", "$HOME", r"back\slash", "tab\there", "ok#1"]
            .map(String::from)
            .to_vec();
        let tricky = SourceSpec::Command(tricky);
        assert_eq!(spec(&tricky.to_string()), tricky, "{tricky}");
    }

    #[test]
    fn bad_specs_say_what_is_valid() {
        assert_eq!(
            spec_error("foo:bar"),
            "`foo:…` is not a secret source: use env:VAR, dotenv:PATH[#KEY] or cmd:PROGRAM ARGS..."
        );
        // A value pasted where a source belongs is not repeated in the message.
        let pasted = spec_error("ghp_abcdefghijklmnopqrstuvwxyz012345");
        assert_eq!(
            pasted,
            "a string without an `env:`, `dotenv:` or `cmd:` prefix (not shown: it may be a value) is not a secret \
             source: use env:VAR, dotenv:PATH[#KEY] or cmd:PROGRAM ARGS..."
        );
        assert!(!spec_error("postgres://user:hunter2-password@db").contains("hunter2"));
        assert_eq!(
            spec_error("env:"),
            "`env:` is not a valid secret source: the variable name is empty"
        );
        assert_eq!(
            spec_error("env:A=B"),
            "`env:A=B` is not a valid secret source: a variable name cannot contain `=`, whitespace or NUL"
        );
        assert_eq!(
            spec_error("dotenv:"),
            "`dotenv:` is not a valid secret source: the path is empty"
        );
        assert_eq!(
            spec_error("dotenv:#KEY"),
            "`dotenv:#KEY` is not a valid secret source: the path is empty"
        );
        assert!(spec_error("dotenv:x.env#").contains("the key after the last `#` must be a .env key"));
        assert!(spec_error("dotenv:/a#b/.env").contains("the key after the last `#` must be a .env key"));
        assert_eq!(
            spec_error("cmd:"),
            "`cmd:` is not a valid secret source: the command is empty"
        );
        assert_eq!(
            spec_error("cmd:   "),
            "`cmd:   ` is not a valid secret source: the command is empty"
        );
        assert_eq!(
            spec_error("cmd:pass show 'apiary/github"),
            "`cmd:pass show 'apiary/github` is not a valid secret source: the command has an unterminated quote or \
             ends with a backslash"
        );
        assert!(spec_error("ENV:X").contains("`ENV:…` is not a secret source"));
    }

    #[test]
    fn relative_dotenv_paths_resolve_against_the_operator_file() {
        let base = Path::new("/etc/apiary");
        assert_eq!(
            spec("dotenv:secrets.env#K").resolve_relative(base),
            spec("dotenv:/etc/apiary/secrets.env#K")
        );
        assert_eq!(
            spec("dotenv:../keys/.env").resolve_relative(base),
            spec("dotenv:/etc/apiary/../keys/.env")
        );
        assert_eq!(
            spec("dotenv:/abs/.env").resolve_relative(base),
            spec("dotenv:/abs/.env")
        );
        assert_eq!(spec("env:X").resolve_relative(base), spec("env:X"));
        assert_eq!(
            spec("cmd:./helper get").resolve_relative(base),
            spec("cmd:./helper get")
        );
    }

    #[tokio::test]
    async fn env_source_reads_the_named_variable_only() {
        // Cargo sets this for every test binary; no test has to set (and race on) a variable.
        let var = "CARGO_MANIFEST_DIR";
        let source = spec(&format!("env:{var}")).into_source("github_token", DEFAULT_COMMAND_TIMEOUT);
        assert_eq!(source.describe(), format!("env:{var}"));
        assert_eq!(fetch(&*source).await.unwrap(), env!("CARGO_MANIFEST_DIR"));

        let missing = EnvSource::new("APIARY_SOURCE_TEST_UNSET_9C21");
        assert_eq!(
            fetch(&missing).await.unwrap_err(),
            "environment variable `APIARY_SOURCE_TEST_UNSET_9C21` is not set"
        );
    }

    #[tokio::test]
    async fn dotenv_source_reads_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.env");
        std::fs::write(
            &path,
            "# comment\nOTHER=other-value-1\ngithub_token=gh-default-key-1\nGH=\"quoted value 2\"\n",
        )
        .unwrap();

        let by_name = SourceSpec::Dotenv {
            path: path.clone(),
            key: None,
        }
        .into_source("github_token", Duration::ZERO);
        assert_eq!(by_name.describe(), format!("dotenv:{}", path.display()));
        assert_eq!(fetch(&*by_name).await.unwrap(), "gh-default-key-1");

        let by_key = spec(&format!("dotenv:{}#GH", path.display())).into_source("github_token", Duration::ZERO);
        assert_eq!(by_key.describe(), format!("dotenv:{}#GH", path.display()));
        assert_eq!(fetch(&*by_key).await.unwrap(), "quoted value 2");

        let missing = DotenvSource::new(&path, "NOPE");
        assert_eq!(
            fetch(&missing).await.unwrap_err(),
            format!("no key `NOPE` in {}", path.display())
        );

        let absent = DotenvSource::new(dir.path().join("absent.env"), "K");
        let message = fetch(&absent).await.unwrap_err();
        assert!(
            message.starts_with(&format!("cannot read {}: ", dir.path().join("absent.env").display())),
            "{message}"
        );
    }

    #[tokio::test]
    async fn dotenv_errors_do_not_show_lines_and_reject_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let broken = dir.path().join("broken.env");
        std::fs::write(&broken, "A=fine-value-1\nthis is the-secret-line\n").unwrap();
        let message = fetch(&DotenvSource::new(&broken, "A")).await.unwrap_err();
        assert!(
            message.starts_with(&format!("cannot parse {}: syntax error", broken.display())),
            "{message}"
        );
        assert!(
            !message.contains("the-secret-line") && !message.contains("fine-value-1"),
            "{message}"
        );

        let twice = dir.path().join("twice.env");
        std::fs::write(&twice, "K=first-value-1\nK=second-value-2\n").unwrap();
        let message = fetch(&DotenvSource::new(&twice, "K")).await.unwrap_err();
        assert_eq!(
            message,
            format!("key `K` appears more than once in {}", twice.display())
        );
    }

    #[tokio::test]
    async fn command_source_value_is_stdout_without_trailing_line_breaks() {
        let source = command(r"cmd:printf 's3cret-value\n'");
        assert_eq!(source.describe(), r"cmd:printf 's3cret-value\n'");
        assert_eq!(fetch(&source).await.unwrap(), "s3cret-value");
        assert_eq!(
            fetch(&command(r"cmd:printf '  a b\t \r\n\n'")).await.unwrap(),
            "  a b\t "
        );
        assert_eq!(fetch(&command(r"cmd:printf 'value\r'")).await.unwrap(), "value\r");
        assert_eq!(fetch(&command("cmd:echo two words")).await.unwrap(), "two words");
    }

    #[tokio::test]
    async fn command_source_passes_extra_environment() {
        let source =
            command("cmd:printenv APIARY_SOURCE_TEST_CHILD_ONLY").env("APIARY_SOURCE_TEST_CHILD_ONLY", "from-env-1");
        assert_eq!(fetch(&source).await.unwrap(), "from-env-1");
        assert!(std::env::var_os("APIARY_SOURCE_TEST_CHILD_ONLY").is_none());
        assert!(!format!("{source:?}").contains("from-env-1"));
    }

    #[tokio::test]
    async fn command_failures_are_explained() {
        let message = fetch(&command("cmd:cat /nonexistent/apiary-secret")).await.unwrap_err();
        assert_eq!(
            message,
            "command exited with status 1: cat: /nonexistent/apiary-secret: No such file or directory"
        );
        assert_eq!(
            fetch(&command("cmd:apiary-no-such-program-4711 get"))
                .await
                .unwrap_err(),
            "cannot run `apiary-no-such-program-4711`: program not found"
        );
        assert_eq!(
            fetch(&command("cmd:true")).await.unwrap_err(),
            "the command printed nothing"
        );
        assert_eq!(
            fetch(&command(r"cmd:printf '\n'")).await.unwrap_err(),
            "the command printed nothing"
        );
        assert_eq!(
            fetch(&command(r"cmd:printf 'abc\377\376def'")).await.unwrap_err(),
            "the command's output is not valid UTF-8"
        );
        assert_eq!(
            fetch(&command("cmd:head -c 100000 /dev/zero")).await.unwrap_err(),
            "the command printed more than 65538 bytes"
        );
        // Endless output fails at once rather than at the timeout.
        let started = Instant::now();
        assert_eq!(
            fetch(&command("cmd:yes")).await.unwrap_err(),
            "the command printed more than 65538 bytes"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn command_times_out_and_is_killed() {
        let source = CommandSource::new(vec!["sleep".into(), "5".into()], Duration::from_millis(100));
        let started = Instant::now();
        assert_eq!(
            fetch(&source).await.unwrap_err(),
            "command did not finish within 100ms and was killed"
        );
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    fn last_stderr_line_is_short_and_clean() {
        assert_eq!(
            last_stderr_line(b"first\nError: the last one\n\n  \n").as_deref(),
            Some("Error: the last one")
        );
        assert_eq!(last_stderr_line(b"a\x1b[31mred\r\n").as_deref(), Some("a [31mred"));
        assert_eq!(last_stderr_line(b" \n"), None);
        let long = last_stderr_line("é".repeat(500).as_bytes()).unwrap();
        assert_eq!(long.chars().count(), 200);
        assert!(long.ends_with('…'));
    }

    #[tokio::test]
    async fn length_is_checked_without_showing_the_value() {
        let clock = Arc::new(ManualClock::default());
        let short = CachedSecret::new(
            "github_token",
            Arc::new(command("cmd:printf abc12")),
            DEFAULT_SECRET_TTL,
            clock.clone(),
        );
        let error = short.get().await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "secret `github_token` from cmd:printf abc12: the value is 5 bytes long, shorter than the minimum of 8 bytes"
        );
        // The spec is the operator's text; only the reason must not carry the value.
        assert!(!error.reason.contains("abc12"));

        let long = SecretString::from("x".repeat(MAX_SECRET_BYTES + 1));
        let long = CachedSecret::new(
            "big",
            Arc::new(StaticSource::new(long)),
            DEFAULT_SECRET_TTL,
            clock.clone(),
        );
        let error = long.get().await.unwrap_err();
        assert_eq!(
            error.reason,
            "the value is 65537 bytes long, longer than the maximum of 65536 bytes"
        );
        assert!(!error.to_string().contains("xxxxxxxx"));

        let exact = StaticSource::new(SecretString::from("12345678"));
        let exact = CachedSecret::new("exact", Arc::new(exact), DEFAULT_SECRET_TTL, clock);
        assert_eq!(get(&exact).await, "12345678");
    }

    #[tokio::test]
    async fn source_error_names_secret_and_source() {
        let clock = Arc::new(ManualClock::default());
        let cached = CachedSecret::new(
            "github_token",
            Arc::new(command("cmd:cat /nonexistent/x")),
            DEFAULT_SECRET_TTL,
            clock,
        );
        assert_eq!(
            cached.get().await.unwrap_err().to_string(),
            "secret `github_token` from cmd:cat /nonexistent/x: command exited with status 1: cat: /nonexistent/x: No \
             such file or directory"
        );
        assert_eq!(cached.name(), "github_token");
        assert_eq!(cached.describe(), "cmd:cat /nonexistent/x");
    }

    #[tokio::test]
    async fn cached_value_is_refetched_after_the_ttl() {
        let clock = Arc::new(ManualClock::default());
        let source = Arc::new(CountingSource::default());
        let cached = CachedSecret::new("token", source.clone(), Duration::from_secs(300), clock.clone());
        assert_eq!(get(&cached).await, "value-0001");
        clock.advance(Duration::from_secs(299));
        assert_eq!(get(&cached).await, "value-0001");
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(get(&cached).await, "value-0002");
        assert_eq!(get(&cached).await, "value-0002");
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
        assert!(!format!("{cached:?}").contains("value-"));
        assert!(!format!("{:?}", StaticSource::new(SecretString::from("static-1234"))).contains("static-1234"));
    }

    #[tokio::test]
    async fn concurrent_gets_share_one_fetch() {
        let clock = Arc::new(ManualClock::default());
        let source = Arc::new(CountingSource {
            delay: Duration::from_millis(20),
            ..Default::default()
        });
        let cached = CachedSecret::new("token", source.clone(), DEFAULT_SECRET_TTL, clock);
        let values = futures::future::join_all((0..8).map(|_| get(&cached))).await;
        assert!(values.iter().all(|value| value == "value-0001"), "{values:?}");
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn concurrent_gets_share_one_failure_and_the_next_get_retries() {
        let clock = Arc::new(ManualClock::default());
        let source = Arc::new(CountingSource {
            delay: Duration::from_millis(20),
            fail: true,
            ..Default::default()
        });
        let cached = CachedSecret::new("token", source.clone(), DEFAULT_SECRET_TTL, clock);
        let results = futures::future::join_all((0..8).map(|_| cached.get())).await;
        for result in results {
            assert_eq!(
                result.unwrap_err().to_string(),
                "secret `token` from counting test source: failure 1"
            );
        }
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
        assert_eq!(cached.get().await.unwrap_err().reason, "failure 2");
    }
}
