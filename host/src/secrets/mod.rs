//! Sealed secrets: values the host attaches to requests for a plugin, which the plugin can name
//! but never read.
//!
//! - [`SecretStore`] holds values, scoped by tenant, loaded from providers (environment
//!   variables and `.env` files for now) before a run starts.
//! - [`SecretLayer`] is the egress layer that attaches them, only to destinations the
//!   manifest binds each secret to, and scrubs every form of the value from the response.

mod attach;
mod host;
mod redact;

pub use attach::{SecretLayer, attach};
pub(crate) use host::{SecretsCtx, add_to_linker};
pub use redact::{REDACTED, Redactor};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use secrecy::SecretString;

use crate::manifest::SecretPermission;
use crate::tenant::TenantId;

/// Where in a request a secret's value goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// `Authorization: Bearer <value>`.
    Bearer,
    /// `Authorization: Basic base64(<username>:<value>)`.
    Basic {
        /// The username sent with the secret as password.
        username: String,
    },
    /// A header whose value is the secret.
    Header(String),
    /// A query parameter whose value is the secret.
    Query(String),
}

/// A request's instruction to attach the secret `name` at `placement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretAttachment {
    /// The secret's name, as declared in the manifest.
    pub name: String,
    /// Where its value goes.
    pub placement: Placement,
}

/// Why a secret could not be attached; mirrors the WIT `secrets.error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The manifest declares no such secret (or the run has no value for it).
    #[error("unknown secret `{0}`")]
    Unknown(String),
    /// The secret may not be sent to the destination.
    #[error("secret `{name}` may not be sent to {destination}")]
    NotBound {
        /// The secret's name.
        name: String,
        /// The refused destination.
        destination: String,
    },
    /// The placement is unusable.
    #[error("cannot place secret `{name}`: {reason}")]
    InvalidPlacement {
        /// The secret's name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// A declared secret with no value, found before the plugin starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("secret `{name}` is not set: define {var} in the environment{}", env_file_hint(.env_file.as_deref()))]
pub struct MissingSecret {
    /// The secret's name.
    pub name: String,
    /// The variable that was looked up.
    pub var: String,
    /// The `.env` file that was searched too, if any.
    pub env_file: Option<PathBuf>,
}

fn env_file_hint(file: Option<&Path>) -> String {
    match file {
        Some(path) => format!(" or in {}", path.display()),
        None => " or pass --env-file".into(),
    }
}

/// A `.env` file could not be read or parsed.
#[derive(Debug, thiserror::Error)]
#[error("failed to read env file {path}: {message}")]
pub struct EnvFileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong (line numbers included where the parser gives them).
    pub message: String,
}

/// Secret values from environment variables and, optionally, a `.env` file. A value in the
/// file named on the command line wins over the process environment, since it was asked for
/// explicitly.
#[derive(Debug, Default)]
pub struct EnvSecretSource {
    file: Option<PathBuf>,
    file_values: HashMap<String, SecretString>,
}

impl EnvSecretSource {
    /// Reads the process environment only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the process environment and the `.env` file at `path`.
    ///
    /// # Errors
    /// [`EnvFileError`] when the file is missing or malformed.
    pub fn with_env_file(path: &Path) -> Result<Self, EnvFileError> {
        let error = |message: String| EnvFileError {
            path: path.to_path_buf(),
            message,
        };
        let iter = dotenvy::from_path_iter(path).map_err(|e| error(e.to_string()))?;
        let mut file_values = HashMap::new();
        for item in iter {
            let (key, value) = item.map_err(|e| error(e.to_string()))?;
            file_values.insert(key, SecretString::from(value));
        }
        Ok(Self {
            file: Some(path.to_path_buf()),
            file_values,
        })
    }

    /// The value of `var`, from the file first, then the environment.
    pub fn lookup(&self, var: &str) -> Option<SecretString> {
        self.file_values
            .get(var)
            .cloned()
            .or_else(|| std::env::var(var).ok().map(SecretString::from))
    }
}

/// Secret values, scoped by tenant: one tenant's runs never see another's values.
#[derive(Debug, Default)]
pub struct SecretStore {
    values: RwLock<HashMap<(TenantId, String), SecretString>>,
}

impl SecretStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `tenant`'s secret `name` to `value`, replacing any earlier value (rotation).
    pub fn insert(&self, tenant: &TenantId, name: &str, value: SecretString) {
        let mut values = self.values.write().unwrap_or_else(|e| e.into_inner());
        values.insert((tenant.clone(), name.to_string()), value);
    }

    /// `tenant`'s value for `name`, if any.
    pub fn get(&self, tenant: &TenantId, name: &str) -> Option<SecretString> {
        let values = self.values.read().unwrap_or_else(|e| e.into_inner());
        values.get(&(tenant.clone(), name.to_string())).cloned()
    }

    /// Loads every secret a manifest declares for `tenant` from `source`, keeping values that
    /// are already set. Fails on the first declared secret with no value anywhere.
    ///
    /// # Errors
    /// [`MissingSecret`] naming the secret and the variable that was looked up.
    pub fn load_declared(
        &self,
        tenant: &TenantId,
        declared: &BTreeMap<String, SecretPermission>,
        source: &EnvSecretSource,
    ) -> Result<(), MissingSecret> {
        for (name, permission) in declared {
            if self.get(tenant, name).is_none()
                && let Some(value) = source.lookup(&permission.env_var(name))
            {
                self.insert(tenant, name, value);
            }
        }
        self.check_declared(tenant, declared, source.file.as_deref())
    }

    /// Checks that `tenant` has a value for every declared secret; `env_file` is named in the
    /// error as a place the value could have come from.
    ///
    /// # Errors
    /// [`MissingSecret`] for the first declared secret without a value.
    pub fn check_declared(
        &self,
        tenant: &TenantId,
        declared: &BTreeMap<String, SecretPermission>,
        env_file: Option<&Path>,
    ) -> Result<(), MissingSecret> {
        match declared.iter().find(|(name, _)| self.get(tenant, name).is_none()) {
            Some((name, permission)) => Err(MissingSecret {
                name: name.clone(),
                var: permission.env_var(name),
                env_file: env_file.map(Path::to_path_buf),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn declared(name: &str, env: Option<&str>) -> BTreeMap<String, SecretPermission> {
        let permission = SecretPermission {
            hosts: vec!["https://api.example.com".parse().unwrap()],
            env: env.map(String::from),
        };
        BTreeMap::from([(name.to_string(), permission)])
    }

    #[test]
    fn env_file_values_load_and_are_tenant_scoped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".env");
        std::fs::write(&file, "# comment\nAPIARY_TEST_TOKEN_A=\"s3cret\"\n").unwrap();
        let source = EnvSecretSource::with_env_file(&file).unwrap();
        let store = SecretStore::new();
        let tenant = TenantId::default();
        store
            .load_declared(&tenant, &declared("tok", Some("APIARY_TEST_TOKEN_A")), &source)
            .unwrap();
        assert_eq!(store.get(&tenant, "tok").unwrap().expose_secret(), "s3cret");
        assert!(store.get(&TenantId::new("other"), "tok").is_none());
    }

    #[test]
    fn a_missing_secret_names_the_variable_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("my.env");
        std::fs::write(&file, "OTHER=1\n").unwrap();
        let source = EnvSecretSource::with_env_file(&file).unwrap();
        let err = SecretStore::new()
            .load_declared(&TenantId::default(), &declared("apiary_test_absent_tok", None), &source)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "secret `apiary_test_absent_tok` is not set: define APIARY_TEST_ABSENT_TOK in the environment or in {}",
                file.display()
            )
        );
    }

    #[test]
    fn a_malformed_env_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.env");
        std::fs::write(&file, "GOOD=1\nthis is not a pair\n").unwrap();
        let err = EnvSecretSource::with_env_file(&file).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("failed to read env file {}", file.display())),
            "{err}"
        );
        let err = EnvSecretSource::with_env_file(&dir.path().join("nope.env"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.env"), "{err}");
    }
}
