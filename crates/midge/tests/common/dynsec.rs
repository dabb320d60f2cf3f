//! Brokers with dynamic security for the side-by-side tests: Debian's `mosquitto` with its
//! plugin and the `midge` binary, both started from the same configuration text on a free
//! loopback port and killed on drop; and bounded runs of `mosquitto_ctrl` / `midge ctrl`.

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{free_port, Midge, TempDir};

pub const INSTALL_MOSQUITTO: &str =
    "install Debian packages mosquitto mosquitto-clients (apt-get install mosquitto mosquitto-clients)";
pub const PLUGIN: &str = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so";
pub const ADMIN: &str = "admin";
pub const ADMIN_PW: &str = "adminpw";

/// What a run printed and how it ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

/// Runs `program args` with `stdin` as input and `XDG_CONFIG_HOME` and `HOME` pointing at
/// `config_home` (so that the user's own options file never leaks in); killed after 20 s.
pub fn run(program: &str, args: &[String], stdin: &str, config_home: &Path) -> Run {
    let mut child = Command::new(program)
        .args(args)
        .env("XDG_CONFIG_HOME", config_home)
        .env("HOME", config_home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): {INSTALL_MOSQUITTO}"));
    {
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin.as_bytes());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// `midge ctrl args…`.
pub fn midge_ctrl(args: &[String], stdin: &str, config_home: &Path) -> Run {
    let mut all = vec!["ctrl".to_string()];
    all.extend_from_slice(args);
    run(env!("CARGO_BIN_EXE_midge"), &all, stdin, config_home)
}

/// The administration tools.
#[derive(Clone, Copy, Debug)]
pub enum Ctrl {
    Mosquitto,
    Midge,
}

impl Ctrl {
    pub fn run(self, args: &[String], stdin: &str, config_home: &Path) -> Run {
        match self {
            Ctrl::Mosquitto => run("mosquitto_ctrl", args, stdin, config_home),
            Ctrl::Midge => midge_ctrl(args, stdin, config_home),
        }
    }

    /// A dynsec file for admin / adminpw, written by this tool's `dynsec init`.
    pub fn init(self, dir: &TempDir, name: &str) -> PathBuf {
        let path = dir.0.join(name);
        let args = words(&format!(
            "dynsec init {} {ADMIN} {ADMIN_PW}",
            path.display()
        ));
        let r = self.run(&args, "", &dir.0);
        assert_eq!(r.code, Some(0), "{self:?}: {r:?}");
        path
    }

    /// `<tool> <admin options on port> dynsec <command>`.
    pub fn dynsec(self, port: u16, command: &str, config_home: &Path) -> Run {
        let mut args = admin_options(port);
        args.push("dynsec".into());
        args.extend(words(command));
        self.run(&args, "", config_home)
    }
}

pub fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

/// Fails (never skips) when Mosquitto, its tools or its plugin are missing.
pub fn require_mosquitto() {
    for bin in [
        "mosquitto",
        "mosquitto_ctrl",
        "mosquitto_pub",
        "mosquitto_sub",
    ] {
        if let Err(e) = Command::new(bin)
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            panic!("{bin} not found on PATH ({e}): {INSTALL_MOSQUITTO}");
        }
    }
    assert!(
        Path::new(PLUGIN).exists(),
        "{PLUGIN} is missing: {INSTALL_MOSQUITTO}"
    );
}

/// The configuration both brokers run: the dynamic-security plugin on `dynsec_file`, then
/// `listeners`. `user root`: as root, Mosquitto otherwise drops to the `mosquitto` user,
/// which cannot read the 0600 file in a private temp dir (ignored when not root, and by
/// Midge).
pub fn dynsec_conf(dynsec_file: &Path, allow_anonymous: bool, listeners: &str) -> String {
    format!(
        "user root\nper_listener_settings false\nallow_anonymous {allow_anonymous}\n\
         plugin {PLUGIN}\nplugin_opt_config_file {}\n{listeners}",
        dynsec_file.display()
    )
}

/// `-h 127.0.0.1 -p <port> -u admin -P adminpw`.
pub fn admin_options(port: u16) -> Vec<String> {
    words(&format!("-h 127.0.0.1 -p {port} -u {ADMIN} -P {ADMIN_PW}"))
}

/// Exit code of `mosquitto_pub -u user -P password [-i id] -t a/b -m hi` (0 = connected
/// and published).
pub fn publish_as(port: u16, user: &str, password: &str, id: Option<&str>) -> Option<i32> {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-u", user, "-P", password, "-t", "a/b", "-m", "hi"]);
    if let Some(id) = id {
        cmd.args(["-i", id]);
    }
    let out = super::tool_output(cmd);
    out.status.code()
}

/// A `mosquitto` with the dynamic-security plugin on a free loopback port, killed on drop.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mosquitto {
    /// On a free port, anonymous clients refused.
    pub fn start(dir: &TempDir, name: &str, dynsec_file: &Path) -> Mosquitto {
        let port = free_port();
        Mosquitto::start_with(
            dir,
            name,
            dynsec_file,
            port,
            &format!("listener {port} 127.0.0.1\n"),
        )
    }

    /// `listeners` is the configuration's listener part; `port` is where to wait for it.
    pub fn start_with(
        dir: &TempDir,
        name: &str,
        dynsec_file: &Path,
        port: u16,
        listeners: &str,
    ) -> Mosquitto {
        Mosquitto::start_conf(dir, name, port, &dynsec_conf(dynsec_file, false, listeners))
    }

    /// Runs the configuration `conf`, waiting until `port` accepts connections.
    pub fn start_conf(dir: &TempDir, name: &str, port: u16, conf: &str) -> Mosquitto {
        let conf = dir.write(&format!("{name}.conf"), conf);
        let log = dir.0.join(format!("{name}.log"));
        let log_file = fs::File::create(&log).unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run mosquitto ({e}): {INSTALL_MOSQUITTO}"));
        let mut broker = Mosquitto { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = broker.child.try_wait() {
                panic!("mosquitto exited with {status}:\n{}", broker.log());
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start:\n{}",
                broker.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
        broker
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The connection options for the admin.
    pub fn admin(&self) -> Vec<String> {
        admin_options(self.port)
    }

    /// See [`publish_as`].
    pub fn publish(&self, user: &str, password: &str, id: Option<&str>) -> Option<i32> {
        publish_as(self.port, user, password, id)
    }
}

/// The `midge` binary on the same configuration as [`Mosquitto`], killed on drop.
pub struct MidgeBroker {
    midge: Midge,
    pub port: u16,
}

impl MidgeBroker {
    /// On a free port, anonymous clients refused.
    pub fn start(dir: &TempDir, name: &str, dynsec_file: &Path) -> MidgeBroker {
        let port = free_port();
        let conf = dynsec_conf(dynsec_file, false, &format!("listener {port} 127.0.0.1\n"));
        MidgeBroker::start_conf(dir, name, port, &conf)
    }

    /// Runs the configuration `conf`, waiting until it listens on `port`.
    pub fn start_conf(dir: &TempDir, name: &str, port: u16, conf: &str) -> MidgeBroker {
        let conf = dir.write(&format!("{name}.conf"), conf);
        MidgeBroker {
            midge: Midge::start(&conf, port),
            port,
        }
    }

    pub fn log(&self) -> String {
        self.midge.log_text()
    }

    /// The connection options for the admin.
    pub fn admin(&self) -> Vec<String> {
        admin_options(self.port)
    }

    /// See [`publish_as`].
    pub fn publish(&self, user: &str, password: &str, id: Option<&str>) -> Option<i32> {
        publish_as(self.port, user, password, id)
    }
}
