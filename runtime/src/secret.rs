//! Passwords and other secrets in settings: given through the environment or
//! a file (a flag value shows in `ps`), never printed (`Debug` says
//! `[redacted]`, `--help` hides the environment's value), read once at
//! startup so that a missing file stops the service with the setting named.

use std::fmt;
use std::path::Path;

use anyhow::{Context, bail};

/// A value that must not reach a log, an error or `--help`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that hands it to a client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "[redacted]"
        })
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(value))
    }
}

/// The secret given directly, else the first line of its file; `setting`
/// names both ways in errors. Neither given is an error.
pub(crate) fn secret_from(
    value: Option<&Secret>,
    file: Option<&Path>,
    setting: &str,
) -> anyhow::Result<Secret> {
    optional_secret_from(value, file, setting)?.with_context(|| format!("{setting} is needed"))
}

/// Like [`secret_from`], where giving neither is allowed.
pub(crate) fn optional_secret_from(
    value: Option<&Secret>,
    file: Option<&Path>,
    setting: &str,
) -> anyhow::Result<Option<Secret>> {
    // An empty value counts as not given: a template's `PASSWORD=` line.
    let value = value.filter(|value| !value.is_empty());
    match (value, file) {
        (Some(_), Some(_)) => bail!("{setting}: give the value or the file, not both"),
        (Some(value), None) => Ok(Some(value.clone())),
        (None, Some(file)) => {
            let text = read_text(file, setting)?;
            let first = text.lines().next().unwrap_or_default().trim_end();
            if first.is_empty() {
                bail!("{setting}: the file {} is empty", file.display());
            }
            Ok(Some(Secret::new(first)))
        }
        (None, None) => Ok(None),
    }
}

pub(crate) fn read_text(path: &Path, setting: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("{setting}: cannot read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_taken_from_the_value_or_the_first_line_of_its_file() {
        let file = std::env::temp_dir().join(format!("sluice-secret-{}", uuid::Uuid::new_v4()));
        std::fs::write(&file, "from-file  \nsecond line\n").unwrap();
        let value = Secret::new("given");
        assert_eq!(
            secret_from(Some(&value), None, "--x").unwrap(),
            Secret::new("given")
        );
        assert_eq!(
            secret_from(None, Some(&file), "--x").unwrap(),
            Secret::new("from-file")
        );
        let both = format!(
            "{:#}",
            secret_from(Some(&value), Some(&file), "--x").unwrap_err()
        );
        assert!(both.contains("not both"), "{both}");
        assert_eq!(optional_secret_from(None, None, "--x").unwrap(), None);
        assert!(format!("{:#}", secret_from(None, None, "--x").unwrap_err()).contains("--x"));
        std::fs::write(&file, "\n").unwrap();
        assert!(
            format!("{:#}", secret_from(None, Some(&file), "--x").unwrap_err()).contains("empty")
        );
        std::fs::remove_file(file).unwrap();
        assert_eq!(format!("{value:?}"), "[redacted]");
    }
}
