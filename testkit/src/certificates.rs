//! A throwaway CA and a server certificate it signed for `localhost` and
//! `127.0.0.1`, for one test's servers: devstack's
//! [`sluice_devstack::certificates`], which the TLS benchmark uses too.

use std::path::{Path, PathBuf};

use sluice_devstack::certificates::Certificates;

pub struct TestCertificates {
    /// The CA that signed the server's certificate (PEM): what clients trust.
    pub ca_file: PathBuf,
    pub certificate_file: PathBuf,
    pub key_file: PathBuf,
}

impl TestCertificates {
    /// Makes them in `dir`.
    ///
    /// # Panics
    /// When `openssl` is missing or fails (`deploy/install.sh` installs it).
    pub fn make(dir: &Path) -> Self {
        let made = Certificates::make(dir, "Sluice test CA")
            .unwrap_or_else(|error| panic!("test certificates: {error:#}"));
        Self {
            ca_file: made.ca_file,
            certificate_file: made.certificate_file,
            key_file: made.key_file,
        }
    }
}
