//! The stack's processes: started in a session of their own so they outlive
//! the command that started them (and a test harness killing its process
//! group), remembered in pid files, recognised by their working directory or
//! command line (a pid from before a reboot may name another program), and
//! stopped with SIGTERM, then SIGKILL.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

/// Alive and not a zombie: the servers are re-parented to whatever pid 1
/// is, and not every pid 1 (containers, sandboxes) reaps promptly.
pub fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.split(' ').next())
        .is_some_and(|state| !state.is_empty() && state != "Z")
}

/// `pid` is alive and runs in `dir` (its working directory is inside it)
/// or names `dir` on its command line.
pub fn is_ours(pid: u32, dir: &Path) -> bool {
    if !is_alive(pid) {
        return false;
    }
    if std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(dir)) {
        return true;
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    cmdline.contains(&format!("{}/", dir.display()))
}

/// A component's pid file.
#[derive(Debug, Clone)]
pub struct PidFile(pub PathBuf);

impl PidFile {
    fn read(&self) -> Option<u32> {
        std::fs::read_to_string(&self.0).ok()?.trim().parse().ok()
    }

    /// The pid it names, when that is one of `dir`'s live processes.
    pub fn running(&self, dir: &Path) -> Option<u32> {
        self.read().filter(|pid| is_ours(*pid, dir))
    }

    /// Removes the file when it names no live process of `dir`; says why.
    pub fn clean_if_stale(&self, dir: &Path) -> Option<String> {
        if !self.0.exists() || self.running(dir).is_some() {
            return None;
        }
        let pid = self.read();
        let why = match pid {
            Some(pid) if is_alive(pid) => "is now another program (pid reused)",
            _ => "is not running",
        };
        let _ = std::fs::remove_file(&self.0);
        Some(format!(
            "removing stale pid file {} (pid {} {why})",
            self.0.display(),
            pid.map_or_else(|| "?".to_owned(), |pid| pid.to_string())
        ))
    }

    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// What to run for a component.
#[derive(Debug, Clone)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Environment variables to clear, so a caller's cannot change the server.
    pub env_remove: Vec<&'static str>,
    pub env: Vec<(&'static str, String)>,
    pub workdir: PathBuf,
}

/// Starts `launch` in a session of its own (`setsid`, which execs in place,
/// so the pid is the server's), output appended to `log`, and writes its pid.
pub fn launch(launch: &Launch, log: &Path, pid_file: &PidFile) -> anyhow::Result<u32> {
    pid_file.remove();
    let mut log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open {}", log.display()))?;
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    writeln!(
        log_file,
        "\n=== starting at unix time {started}: {} {}",
        launch.program.display(),
        launch.args.join(" ")
    )?;
    let mut command = Command::new("setsid");
    command.arg(&launch.program);
    configure(&mut command, launch, log_file)?;
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {}", launch.program.display()))?;
    let pid = child.id();
    File::create(&pid_file.0)
        .and_then(|mut file| writeln!(file, "{pid}"))
        .with_context(|| format!("cannot write {}", pid_file.0.display()))?;
    Ok(pid)
}

/// `launch` as a child of this process, in its process group (so Ctrl-C
/// reaches it too), output to `log` (truncated): for the benchmarks and the
/// conformance run, which stop what they start before they exit. The caller
/// may adjust the command before spawning it.
pub fn attached_command(launch: &Launch, log: &Path) -> anyhow::Result<Command> {
    let log_file = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut command = Command::new(&launch.program);
    configure(&mut command, launch, log_file)?;
    Ok(command)
}

fn configure(command: &mut Command, launch: &Launch, log_file: File) -> anyhow::Result<()> {
    command
        .args(&launch.args)
        .current_dir(&launch.workdir)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file);
    for name in &launch.env_remove {
        command.env_remove(name);
    }
    command.envs(launch.env.iter().map(|(name, value)| (name, value)));
    Ok(())
}

/// SIGTERM, and SIGKILL after `patience`; Ok once the process is gone.
/// Says whether SIGKILL was needed.
pub fn stop(pid: u32, patience: Duration) -> anyhow::Result<bool> {
    signal(pid, "TERM");
    if gone_within(pid, patience) {
        return Ok(false);
    }
    signal(pid, "KILL");
    if gone_within(pid, Duration::from_secs(5)) {
        return Ok(true);
    }
    bail!("pid {pid} survived SIGKILL")
}

/// Sends `signal` (a name such as `TERM`, `STOP`, `CONT`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

fn gone_within(pid: u32, patience: Duration) -> bool {
    let deadline = Instant::now() + patience;
    while is_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_ours_where_it_runs() {
        let pid = std::process::id();
        assert!(is_alive(pid));
        let cwd = std::env::current_dir().unwrap();
        assert!(is_ours(pid, &cwd));
        assert!(!is_ours(pid, Path::new("/nonexistent-sluice-dir")));
        assert!(!is_alive(u32::MAX));
    }

    #[test]
    fn a_pid_file_of_nothing_is_stale_and_removed() {
        let dir = std::env::temp_dir().join(format!("sluice-devstack-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = PidFile(dir.join("x.pid"));
        std::fs::write(&file.0, "999999999\n").unwrap();
        assert_eq!(file.running(&dir), None);
        let said = file.clean_if_stale(&dir).unwrap();
        assert!(said.contains("is not running"), "{said}");
        assert!(!file.0.exists());
        assert_eq!(file.clean_if_stale(&dir), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
