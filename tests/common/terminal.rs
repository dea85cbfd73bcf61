//! The interactive shell on a pseudo-terminal, read the way a person's terminal reads it:
//! everything it prints, in order, with its cursor-position queries answered.
//!
//! expectrl's own `expect` is not used to wait: with a regex it consumes the buffer up to the
//! *last* match in what it has read, so a prompt's cursor query that arrives in the same read
//! as the awaited text is swallowed unanswered (the shell then stalls two seconds on it), and
//! text after an earlier match is lost to the next wait. Waiting here takes the first match
//! and keeps everything after it.

use std::io::ErrorKind;
use std::process::Command;
use std::time::{Duration, Instant};

use expectrl::process::unix::{PtyStream, Signal, UnixProcess, WaitStatus};
use expectrl::{Expect, Session};

type Pty = Session<UnixProcess, PtyStream>;

/// What a terminal emulator sends back for "where is the cursor?": row 1, column 1.
const CURSOR_QUERY: &[u8] = b"\x1b[6n";
const CURSOR_ANSWER: &str = "\x1b[1;1R";

/// How often a wait looks for more output while none has come.
const POLL: Duration = Duration::from_millis(5);

pub struct Terminal {
    pty: Pty,
    /// Printed by the shell and not yet consumed by a wait.
    unread: Vec<u8>,
    /// How long one wait may take.
    timeout: Duration,
}

impl Terminal {
    /// Starts `command` on a pseudo-terminal; each [`Terminal::until`] waits up to `timeout`.
    pub fn spawn(command: Command, timeout: Duration) -> Terminal {
        Terminal {
            pty: Session::spawn(command).expect("spawn the shell on a pty"),
            unread: Vec::new(),
            timeout,
        }
    }

    /// Types `keys` (a line ends with "\r", as the Enter key sends).
    pub fn send(&mut self, keys: &str) {
        self.pty.send(keys).expect("type into the terminal");
    }

    /// Waits for the first match of `pattern` (a regex) in what the shell prints next,
    /// answering the cursor-position queries before it as a real terminal would (reedline asks
    /// at every prompt and waits two seconds for the answer). Returns what matched and what was
    /// printed before it since the last wait; what follows the match stays for the next wait.
    pub fn until(&mut self, pattern: &str, what: &str) -> (String, String) {
        let either = regex::bytes::Regex::new(&format!(r"\x1b\[6n|{pattern}"))
            .unwrap_or_else(|e| panic!("{what}: the pattern {pattern:?}: {e}"));
        let deadline = Instant::now() + self.timeout;
        let mut before = String::new();
        loop {
            if let Some(found) = either.find(&self.unread) {
                let (start, end) = (found.start(), found.end());
                before.push_str(&String::from_utf8_lossy(&self.unread[..start]));
                let matched = String::from_utf8_lossy(&self.unread[start..end]).to_string();
                self.unread.drain(..end);
                if matched.as_bytes() == CURSOR_QUERY {
                    self.send(CURSOR_ANSWER);
                    continue;
                }
                return (matched, before);
            }
            // Checked whether or not the shell is printing: one that prints on and on without
            // the pattern fails here too.
            assert!(
                Instant::now() < deadline,
                "{what}: no {pattern:?} within {:?}; printed before it: {before:?}, then: {:?}",
                self.timeout,
                String::from_utf8_lossy(&self.unread)
            );
            if !self.read_more() {
                std::thread::sleep(POLL);
            }
        }
    }

    /// Appends what the shell has printed since the last read; false when there was nothing.
    fn read_more(&mut self) -> bool {
        let mut buffer = [0u8; 4096];
        match self.pty.try_read(&mut buffer) {
            Ok(0) => panic!(
                "the shell closed the terminal; it printed last: {:?}",
                String::from_utf8_lossy(&self.unread)
            ),
            Ok(n) => {
                self.unread.extend_from_slice(&buffer[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            // A pty whose last writer has gone reads as an I/O error, not as an end.
            Err(e) => panic!(
                "the terminal failed ({e}); the shell printed last: {:?}",
                String::from_utf8_lossy(&self.unread)
            ),
        }
    }

    /// Types `quit` and waits for the shell to end; its exit status.
    pub fn quit(mut self) -> WaitStatus {
        self.send("quit\r");
        self.wait()
    }

    /// Waits for the shell to end (after Ctrl-D or a command that ends it), up to the same
    /// timeout as a wait for output; a shell still running then is killed and the test fails.
    pub fn wait(mut self) -> WaitStatus {
        let deadline = Instant::now() + self.timeout;
        let process = self.pty.get_process_mut();
        loop {
            match process.status().expect("the shell's status") {
                WaitStatus::StillAlive if Instant::now() < deadline => std::thread::sleep(POLL),
                WaitStatus::StillAlive => {
                    let _ = process.kill(Signal::SIGKILL);
                    panic!("the shell did not end within {:?}", self.timeout);
                }
                ended => return ended,
            }
        }
    }
}
