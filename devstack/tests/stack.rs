//! The stack's promises, on a broker of the test's own (a real tansu, in a
//! temporary state directory, on free ports): `up` is idempotent, a stale
//! pid file is cleaned up, a taken port is refused naming it and the
//! variable that moves it, `down --wipe` deletes the data, a second `up`
//! waits for the lock rather than starting a second broker.

use std::net::TcpListener;
use std::path::PathBuf;

use sluice_devstack::probe::kafka_answers;
use sluice_devstack::{Component, Stack, StackSettings};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

struct Private {
    stack: Stack,
    dir: PathBuf,
}

impl Private {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "sluice-devstack-test-{}-{}",
            std::process::id(),
            free_port()
        ));
        Self {
            stack: Stack::new(StackSettings::private(&dir, free_port())),
            dir,
        }
    }
}

impl Drop for Private {
    fn drop(&mut self) {
        let _ = self.stack.down(&[Component::Kafka], true);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const KAFKA: &[Component] = &[Component::Kafka];

#[test]
fn up_is_idempotent_down_wipe_deletes_and_stale_pids_are_cleaned() {
    let private = Private::new();
    let (stack, port) = (&private.stack, private.stack.settings.kafka_port);
    stack
        .up(KAFKA)
        .expect("tansu starts (deploy/install.sh tansu)");
    assert!(kafka_answers(port));
    let pid_file = Component::Kafka.pid_file(&stack.settings);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    stack.up(KAFKA).expect("a second up finds it up");
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        pid,
        "not restarted"
    );
    assert!(stack.status(KAFKA));

    // Concurrent ups: one broker, both succeed.
    let settings = stack.settings.clone();
    let others: Vec<_> = (0..2)
        .map(|_| {
            let settings = settings.clone();
            std::thread::spawn(move || Stack::new(settings).up(KAFKA))
        })
        .collect();
    for other in others {
        other.join().unwrap().expect("a concurrent up");
    }
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid);

    stack.down(KAFKA, false).expect("down");
    assert!(!kafka_answers(port));
    assert!(!stack.status(KAFKA));
    let data = Component::Kafka.data_dir(&stack.settings);
    assert!(data.join("tansu.db").exists(), "down keeps the data");

    // A pid file naming no process of this stack.
    std::fs::write(&pid_file, "999999999\n").unwrap();
    assert!(!stack.status(KAFKA));
    stack
        .up(KAFKA)
        .expect("up cleans the stale pid file and starts");
    assert_ne!(std::fs::read_to_string(&pid_file).unwrap(), "999999999\n");
    assert!(kafka_answers(port));

    stack.down(KAFKA, true).expect("down --wipe");
    assert!(!data.exists(), "--wipe deletes {}", data.display());
}

#[test]
fn a_taken_port_is_refused_naming_it_and_the_variable() {
    let private = Private::new();
    let holder = TcpListener::bind(("127.0.0.1", private.stack.settings.kafka_port)).unwrap();
    let error = private.stack.up(KAFKA).unwrap_err().to_string();
    let port = holder.local_addr().unwrap().port();
    assert!(
        error.contains(&format!("port {port} on 127.0.0.1 is already in use"))
            && error.contains("SLUICE_KAFKA_PORT="),
        "{error}"
    );
    assert!(!Component::Kafka.pid_file(&private.stack.settings).exists());
}
