//! The processes of a simulated cluster: starting one `parent` or `enclave` with its
//! output in a log file, and stopping it again, either through the handle of the
//! invocation that started it or, from a later invocation (`custody sim down`), by the
//! process id recorded in `cluster.toml`.

use super::SimError;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a process is given to exit on SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(5);

/// One process the launcher started.
#[derive(Debug)]
pub(super) struct Proc {
    pid: u32,
    /// The program it was started from: a recorded pid is only signalled while it still
    /// runs this program (the id may have been reused by an unrelated process since).
    binary: PathBuf,
    /// The handle, when this invocation started it: it is then reaped here.
    child: Option<Child>,
}

impl Proc {
    /// A process known only by its recorded id.
    pub(super) fn recorded(pid: u32, binary: &Path) -> Self {
        Proc {
            pid,
            binary: binary.to_owned(),
            child: None,
        }
    }

    pub(super) fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether it still runs.
    fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => ours(self.pid, &self.binary),
        }
    }

    /// SIGKILL (no chance to clean up), and waits until it is gone.
    pub(super) fn kill(mut self) {
        match self.child.take() {
            Some(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            None => {
                if ours(self.pid, &self.binary) {
                    signal(self.pid, "-KILL");
                    settle(&mut self, Duration::from_millis(20));
                }
            }
        }
    }
}

/// Waits up to [`GRACE`] for `proc` to exit.
fn settle(proc: &mut Proc, poll: Duration) {
    let deadline = Instant::now() + GRACE;
    while proc.alive() && Instant::now() < deadline {
        std::thread::sleep(poll);
    }
}

/// Stops every process of `procs` at once: SIGTERM, then SIGKILL for any still running
/// after [`GRACE`].
pub(super) fn stop_all(procs: Vec<Proc>) {
    let mut running: Vec<Proc> = procs
        .into_iter()
        .filter_map(|mut p| p.alive().then_some(p))
        .collect();
    for proc in &running {
        signal(proc.pid, "-TERM");
    }
    let deadline = Instant::now() + GRACE;
    while running.iter_mut().any(Proc::alive) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for proc in running {
        proc.kill();
    }
}

/// Runs `command` with its standard error appended to `log` and its standard output
/// discarded. A `detached` process gets its own process group, so that a terminal's
/// Ctrl-C meant for the program that started it does not reach it.
pub(super) fn spawn(mut command: Command, log: &Path, detached: bool) -> Result<Proc, SimError> {
    use std::os::unix::process::CommandExt;
    let binary = PathBuf::from(command.get_program());
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(super::io(log))?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    if detached {
        command.process_group(0);
    }
    let child = command.spawn().map_err(|source| SimError::Start {
        binary: binary.clone(),
        source,
    })?;
    Ok(Proc {
        pid: child.id(),
        binary,
        child: Some(child),
    })
}

/// Whether `pid` is a live process started from `binary`.
fn ours(pid: u32, binary: &Path) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = std::fs::read_to_string(proc.join("stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses.
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|s| s.split_whitespace().next());
    if state == Some("Z") {
        return false;
    }
    std::fs::read(proc.join("cmdline"))
        .map(|cmdline| {
            cmdline
                .split(|b| *b == 0)
                .next()
                .is_some_and(|argv0| argv0 == binary.as_os_str().as_encoded_bytes())
        })
        .unwrap_or(false)
}

/// Sends `signal` (`-TERM`, `-KILL`) to `pid` with kill(1); the code forbids `unsafe`, so
/// it does not call kill(2) itself.
pub(super) fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Options of `enclave run`, each with its value, in order. Setting a flag again replaces
/// its value in place: the enclave refuses an option given twice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnclaveArgs(Vec<(String, String)>);

impl EnclaveArgs {
    /// Options from `flag, value` pairs.
    pub fn of(pairs: &[(&str, &str)]) -> Self {
        let mut args = EnclaveArgs::default();
        for (flag, value) in pairs {
            args.set(flag, value);
        }
        args
    }

    /// Sets `flag` to `value`, replacing any value it had.
    pub fn set(&mut self, flag: &str, value: &str) -> &mut Self {
        match self.0.iter_mut().find(|(f, _)| f == flag) {
            Some((_, slot)) => value.clone_into(slot),
            None => self.0.push((flag.to_owned(), value.to_owned())),
        }
        self
    }

    /// The value `flag` has.
    pub fn get(&self, flag: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == flag)
            .map(|(_, v)| v.as_str())
    }

    /// These options, then `later`'s, which win where both set a flag.
    pub fn then(&self, later: &EnclaveArgs) -> EnclaveArgs {
        let mut merged = self.clone();
        for (flag, value) in &later.0 {
            merged.set(flag, value);
        }
        merged
    }

    /// The command-line words.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flat_map(|(f, v)| [f.as_str(), v.as_str()])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_flag_set_again_is_replaced_in_place_never_repeated() {
        let mut args = EnclaveArgs::of(&[("--presign-depth", "2"), ("--retry-secs", "1")]);
        args.set("--presign-depth", "0");
        assert_eq!(
            args.words().collect::<Vec<_>>(),
            ["--presign-depth", "0", "--retry-secs", "1"]
        );
        let merged = args.then(&EnclaveArgs::of(&[
            ("--retry-secs", "5"),
            ("--round-timeout-secs", "40"),
        ]));
        assert_eq!(
            merged.words().collect::<Vec<_>>(),
            [
                "--presign-depth",
                "0",
                "--retry-secs",
                "5",
                "--round-timeout-secs",
                "40"
            ]
        );
        assert_eq!(merged.get("--retry-secs"), Some("5"));
        assert_eq!(args.get("--retry-secs"), Some("1"));
        assert_eq!(args.get("--sim-primes"), None);
    }

    #[test]
    fn a_recorded_pid_of_another_program_is_never_signalled() {
        // This test's own process runs the test binary, not `/bin/enclave`.
        assert!(!ours(std::process::id(), Path::new("/bin/enclave")));
        let argv0 = std::env::args_os().next().unwrap();
        assert!(ours(std::process::id(), Path::new(&argv0)));
        // A process that has exited is not ours either: `kill` on a recorded pid of it
        // is then a no-op.
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!ours(pid, Path::new("true")));
        Proc::recorded(pid, Path::new("true")).kill();
    }
}
