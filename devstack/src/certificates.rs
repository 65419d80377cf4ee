//! A throwaway CA and a server certificate it signed for `localhost` and
//! `127.0.0.1`, made by the `openssl` command: for testkit's secured
//! servers and the TLS benchmark.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

#[derive(Debug, Clone)]
pub struct Certificates {
    /// The CA that signed the server's certificate (PEM): what clients trust.
    pub ca_file: PathBuf,
    pub certificate_file: PathBuf,
    pub key_file: PathBuf,
}

impl Certificates {
    /// Makes them in `dir` (`openssl`'s output goes to `dir/openssl.log`).
    pub fn make(dir: &Path, ca_name: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = |name: &str| dir.join(name).display().to_string();
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName = DNS:localhost, IP:127.0.0.1\n",
        )?;
        let subject = format!("/CN={ca_name}");
        let steps: [(&str, Vec<String>); 3] = [
            (
                "the CA",
                [
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    &subject,
                    "-keyout",
                    &path("ca.key"),
                    "-out",
                    &path("ca.pem"),
                ]
                .map(str::to_owned)
                .to_vec(),
            ),
            (
                "the server key",
                [
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
                ]
                .map(str::to_owned)
                .to_vec(),
            ),
            (
                "the server certificate",
                [
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
                ]
                .map(str::to_owned)
                .to_vec(),
            ),
        ];
        let log = dir.join("openssl.log");
        let log_file = std::fs::File::create(&log)?;
        for (what, args) in steps {
            let status = Command::new("openssl")
                .args(&args)
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone()?)
                .stderr(log_file.try_clone()?)
                .status()
                .context("cannot run openssl (deploy/install.sh installs it)")?;
            if !status.success() {
                bail!("openssl failed making {what}; see {}", log.display());
            }
        }
        Ok(Self {
            ca_file: dir.join("ca.pem"),
            certificate_file: dir.join("server.pem"),
            key_file: dir.join("server.key"),
        })
    }
}
