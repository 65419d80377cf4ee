//! Which ClickHouse errors a retry cannot fix. A wrong password, a
//! certificate that does not verify or a port that speaks another protocol
//! stays wrong until someone changes a setting, so at startup they stop the
//! service naming it; a refused connection or a timeout is waited out.

use std::error::Error as StdError;

use super::connection::{Connection, PASSWORD_SETTINGS};

/// What a failed request to ClickHouse means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A setting is wrong; the message names it.
    Misconfigured(String),
    /// The server is down, slow or restarting: try again.
    Unavailable(String),
}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Self::Misconfigured(message) | Self::Unavailable(message) => message,
        }
    }
}

/// ClickHouse's codes for a user it does not let in: UNKNOWN_USER,
/// WRONG_PASSWORD, REQUIRED_PASSWORD (18.16), AUTHENTICATION_FAILED (later).
const AUTHENTICATION_CODES: [u32; 4] = [192, 193, 194, 516];
/// Server codes that a cluster's coordination or topology explains, with
/// what an operator should look at (a retry fixes them once it is back).
const CLUSTER_CAUSES: [(u32, &str); 6] = [
    (
        242,
        "a Replicated table is read-only while its replica has no ZooKeeper (or Keeper) session",
    ),
    (
        225,
        "the server has no ZooKeeper (or Keeper) configured or reachable",
    ),
    (999, "ZooKeeper (or Keeper) failed the request"),
    (279, "no replica of a shard answers"),
    (
        286,
        "too few replicas of a shard are alive for the insert quorum",
    ),
    (
        319,
        "the insert's fate on a replica is unknown; the retry collapses any copy",
    ),
];

/// `error` (a failed query's text), followed by what it means in a cluster
/// when ClickHouse's code says (a read-only replica, a shard that does not
/// answer), so readiness names the cause rather than only a code.
pub fn with_cluster_cause(error: String) -> String {
    let code = error
        .find("Code: ")
        .and_then(|start| server_code(&error[start..]));
    match CLUSTER_CAUSES
        .iter()
        .find(|(known, _)| Some(*known) == code)
    {
        Some((_, cause)) => format!("{cause}: {error}"),
        None => error,
    }
}

/// The server's answer, trimmed to what says why.
const SHOWN_ANSWER_CHARS: usize = 300;

/// Judges `error`, from a request made through `connection`.
pub fn judge(error: &clickhouse::error::Error, connection: &Connection) -> Failure {
    let url = connection.shown_url();
    if let clickhouse::error::Error::BadResponse(answer) = error
        && server_code(answer).is_some_and(|code| AUTHENTICATION_CODES.contains(&code))
    {
        return Failure::Misconfigured(format!(
            "ClickHouse at {url} does not let user '{user}' in ({answer}); check --clickhouse-user \
             and {PASSWORD_SETTINGS}",
            user = connection.user(),
            answer = trimmed(answer),
        ));
    }
    if let Some(tls) = tls_error(error) {
        return Failure::Misconfigured(match tls {
            rustls::Error::InvalidCertificate(_) => format!(
                "the certificate of ClickHouse at {url} does not verify ({tls}); give the CA that \
                 signed it in --clickhouse-ca-file, or the name it was issued for in --clickhouse-url"
            ),
            _ => format!(
                "TLS with ClickHouse at {url} failed ({tls}); is that port https? check \
                 --clickhouse-url's scheme and port"
            ),
        });
    }
    if let Some(parse) = hyper_parse_error(error) {
        return Failure::Misconfigured(format!(
            "ClickHouse at {url} does not answer HTTP ({parse}); is that port https (then use \
             https:// in --clickhouse-url) or not ClickHouse's HTTP port?"
        ));
    }
    // A TLS port resets a plain request: say so, though a restarting server
    // may do the same.
    let hint = if !connection.is_https() && connection_dropped(error) {
        "; if that port is https, use https:// in --clickhouse-url"
    } else {
        ""
    };
    Failure::Unavailable(format!(
        "ClickHouse at {url} (--clickhouse-url) does not answer: {error}{hint}"
    ))
}

/// The server closed or reset the connection after the request went out.
fn connection_dropped(error: &clickhouse::error::Error) -> bool {
    causes(error).any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionReset)
            || cause
                .downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_incomplete_message)
    })
}

/// `Code: 193, e.displayText() = ...` (18.16) or `Code: 516. DB::Exception: ...`.
fn server_code(answer: &str) -> Option<u32> {
    let rest = answer.trim_start().strip_prefix("Code: ")?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..digits].parse().ok()
}

fn trimmed(answer: &str) -> String {
    let line = answer.lines().next().unwrap_or_default().trim();
    let line = line
        .strip_suffix(", e.what() = DB::Exception")
        .unwrap_or(line);
    match line.char_indices().nth(SHOWN_ANSWER_CHARS) {
        Some((end, _)) => format!("{}...", &line[..end]),
        None => line.to_owned(),
    }
}

/// The rustls error somewhere in `error`'s causes. An `io::Error` hides its
/// inner error from `source()`, so those are opened by hand.
fn tls_error(error: &clickhouse::error::Error) -> Option<&rustls::Error> {
    causes(error).find_map(|cause| cause.downcast_ref::<rustls::Error>())
}

fn hyper_parse_error(
    error: &clickhouse::error::Error,
) -> Option<&hyper_util::client::legacy::Error> {
    // hyper_util's error keeps hyper's as its source; `is_parse` lives there.
    causes(error)
        .filter_map(|cause| cause.downcast_ref::<hyper_util::client::legacy::Error>())
        .find(|legacy| {
            legacy
                .source()
                .and_then(|source| source.downcast_ref::<hyper::Error>())
                .is_some_and(|hyper| hyper.is_parse() || hyper.is_parse_status())
        })
}

/// `error` and everything under it, opening `io::Error`s.
fn causes<'a>(
    error: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    let mut pending = vec![error];
    std::iter::from_fn(move || {
        let cause = pending.pop()?;
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            pending.push(inner);
        }
        if let Some(source) = cause.source() {
            pending.push(source);
        }
        Some(cause)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ClickhouseSettings;

    fn connection() -> Connection {
        Connection::open(&ClickhouseSettings {
            url: "https://writer:pw-in-url@ch.example.com:8443".into(),
            database: "sluice".into(),
            user: "writer".into(),
            password: None,
            password_file: None,
            ca_file: None,
            cluster: String::new(),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn a_refused_user_is_a_setting_to_fix_on_old_and_new_servers() {
        let connection = connection();
        for answer in [
            "Code: 193, e.displayText() = DB::Exception: Wrong password for user writer, e.what() = DB::Exception\n",
            "Code: 516. DB::Exception: writer: Authentication failed: password is incorrect, or there is no user with such name. (AUTHENTICATION_FAILED) (version 25.3.1.1)",
        ] {
            let failure = judge(
                &clickhouse::error::Error::BadResponse(answer.into()),
                &connection,
            );
            let Failure::Misconfigured(message) = failure else {
                panic!("{failure:?}")
            };
            assert!(message.contains("user 'writer'"), "{message}");
            assert!(message.contains("--clickhouse-password"), "{message}");
            assert!(!message.contains("pw-in-url"), "{message}");
            assert!(!message.contains("e.what()"), "{message}");
        }
    }

    #[test]
    fn a_cluster_error_is_explained_and_others_are_left_as_they_are() {
        let read_only = with_cluster_cause(
            "bad response: Code: 242, e.displayText() = DB::Exception: Table is in readonly mode"
                .into(),
        );
        assert!(
            read_only.starts_with("a Replicated table is read-only"),
            "{read_only}"
        );
        assert!(
            read_only.ends_with("Table is in readonly mode"),
            "{read_only}"
        );
        let shard = with_cluster_cause(
            "bad response: Code: 279. DB::NetException: All connection tries failed. (ALL_CONNECTION_TRIES_FAILED)".into(),
        );
        assert!(
            shard.starts_with("no replica of a shard answers: "),
            "{shard}"
        );
        let other = "bad response: Code: 241, e.displayText() = Memory limit";
        assert_eq!(with_cluster_cause(other.into()), other);
        assert_eq!(with_cluster_cause("timed out".into()), "timed out");
    }

    #[tokio::test]
    async fn other_server_errors_and_timeouts_are_waited_out() {
        let connection = connection();
        for error in [
            clickhouse::error::Error::BadResponse(
                "Code: 241, e.displayText() = Memory limit".into(),
            ),
            clickhouse::error::Error::TimedOut,
            clickhouse::error::Error::Network(Box::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            ))),
        ] {
            assert!(matches!(
                judge(&error, &connection),
                Failure::Unavailable(_)
            ));
        }
    }

    #[tokio::test]
    async fn a_certificate_that_does_not_verify_names_the_ca_file() {
        let rustls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls);
        let error = clickhouse::error::Error::Network(Box::new(io));
        let Failure::Misconfigured(message) = judge(&error, &connection()) else {
            panic!()
        };
        assert!(message.contains("--clickhouse-ca-file"), "{message}");
    }

    #[test]
    fn answers_are_trimmed_to_their_first_line() {
        assert_eq!(server_code("Code: 194, e.displayText()"), Some(194));
        assert_eq!(server_code("Code: 516. DB::Exception"), Some(516));
        assert_eq!(server_code("nonsense"), None);
        assert_eq!(trimmed(&"x".repeat(400)).len(), SHOWN_ANSWER_CHARS + 3);
    }
}
