//! A throwaway CA and a server certificate it signed for `localhost` and
//! `127.0.0.1`, made by the `openssl` command for one test's servers.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::processes::run;

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
        let path = |name: &str| dir.join(name).display().to_string();
        let openssl = |args: &[&str], what: &str| {
            run(Command::new("openssl").args(args).current_dir(dir), what);
        };
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=Sluice test CA",
                "-keyout",
                &path("ca.key"),
                "-out",
                &path("ca.pem"),
            ],
            "openssl: the CA",
        );
        openssl(
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                &path("server.key"),
                "-out",
                &path("server.csr"),
            ],
            "openssl: the server key",
        );
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName = DNS:localhost, IP:127.0.0.1\n",
        )
        .expect("san.ext");
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &path("server.csr"),
                "-CA",
                &path("ca.pem"),
                "-CAkey",
                &path("ca.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &path("san.ext"),
                "-out",
                &path("server.pem"),
            ],
            "openssl: the server certificate",
        );
        Self {
            ca_file: dir.join("ca.pem"),
            certificate_file: dir.join("server.pem"),
            key_file: dir.join("server.key"),
        }
    }
}
