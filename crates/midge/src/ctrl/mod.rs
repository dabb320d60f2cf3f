//! `midge ctrl`: administer a broker's dynamic security over MQTT, command-line compatible
//! with `mosquitto_ctrl` 2.0 (same options, same `dynsec` commands, the same request JSON,
//! the same printed output and exit codes).
//!
//! ```text
//! midge ctrl [connection options] [-o options-file] dynsec <command> [args]
//! midge ctrl dynsec init <new-config-file> <admin-username> [admin-password]
//! ```
//!
//! Where Midge deliberately differs from `mosquitto_ctrl` 2.0.11:
//! - `-o <file>` is honoured (2.0.11 parses the command line only after loading the default
//!   options file, so `-o` has no effect there). The default file is the documented
//!   `$XDG_CONFIG_HOME/mosquitto_ctrl.conf` / `~/.config/mosquitto_ctrl.conf`; 2.0.11's own
//!   name, without `.conf`, is read when that does not exist.
//! - `setDefaultACLAccess` sends `"allow": true|false`, which the plugin reads; 2.0.11 sends
//!   `"access": "allow"`, which the plugin ignores, so the command changes nothing there.
//! - Failures that leave the request unsent or unanswered exit non-zero (1): a refused
//!   CONNECT or SUBSCRIBE, no response within 10 s (with a message), a failed password
//!   prompt, `init` onto an existing file. 2.0.11 exits 0 in all of these. An error answered
//!   by the broker (`getClient: Error: Client not found`) still exits 0, as in 2.0.11, so
//!   scripts that create things idempotently keep working.
//! - An option error stops with exit 1 (2.0.11 ignores its own parse result and goes on, to
//!   report e.g. `Error: Module '-x' not supported.`); `--help` and `--version` print the
//!   usage wherever they appear (2.0.11 only when nothing else follows).
//! - `createClient` takes the client id with `-c` (2.0) or `-i` (2.1).
//! - `--certfile`/`--keyfile` are accepted for `--cert`/`--key`: the documentation's options
//!   file example uses them, and 2.0.11 refuses them.
//! - `dynsec init` creates its file exclusively with mode 0600 (2.0.11 leaves it to the umask).
//! - `--quiet` also silences the "without encryption" warning, which is not printed for
//!   TLS-PSK or Unix sockets either (nothing crosses a network in clear there).
//! - Passwords typed at prompts are not cut at 199 bytes.
//! - A retained message on the response topic is not taken for the answer (Mosquitto never
//!   retains `$CONTROL` messages; another broker might).
//! - `dynsec help`, `--help` and the `init` message name `midge ctrl`.

mod client;
mod dynsec;
mod init;
mod json;
mod options;
mod print;

use std::ffi::OsString;
use std::process::ExitCode;

use options::{OptionError, Options, Parsed};

use crate::prompt::{self, PromptError};

/// How `midge ctrl` ends.
#[derive(Debug, PartialEq)]
pub enum Exit {
    Success,
    /// Exit 1; the message has been printed.
    Failure,
    /// Wrong arguments to a command: `Error: Invalid function arguments provided.`, exit 3.
    Invalid,
    /// Any other code; the message has been printed.
    Code(u8),
}

/// libmosquitto's codes that mosquitto_ctrl exits with.
const MOSQ_ERR_NOT_SUPPORTED: u8 = 10;
const MOSQ_ERR_UNKNOWN: u8 = 13;

/// Entry point: `args` are the arguments after `ctrl`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    match run(args) {
        Exit::Success => ExitCode::SUCCESS,
        Exit::Failure => ExitCode::from(1),
        Exit::Invalid => {
            eprintln!("Error: Invalid function arguments provided.");
            ExitCode::from(3)
        }
        Exit::Code(c) => ExitCode::from(c),
    }
}

fn print_usage() {
    print!(
        "midge ctrl is a tool for administering certain Mosquitto features.
midge ctrl version {}, command-line compatible with mosquitto_ctrl 2.0.

General usage: midge ctrl <module> <module-command> <command-options>
For module specific help use: midge ctrl <module> help

Modules available: dynsec

For more information see:
    https://mosquitto.org/man/mosquitto_ctrl-1.html

",
        env!("CARGO_PKG_VERSION")
    );
}

fn print_dynsec_usage() {
    print!(
        "
Dynamic Security module
=======================

Initialisation
--------------
Create a new configuration file with an admin user:
    midge ctrl dynsec init <new-config-file> <admin-username> [admin-password]

General
-------
Get ACL default access:          getDefaultACLAccess
Set ACL default access:          setDefaultACLAccess <acltype> allow|deny
Get group for anonymous clients: getAnonymousGroup
Set group for anonymous clients: setAnonymousGroup   <groupname>

Clients
-------
Create a new client:         createClient      <username> [-c clientid] [-p password]
Delete a client:             deleteClient      <username>
Set a client password:       setClientPassword <username> [password]
Set a client id:             setClientId       <username> [clientid]
Add a role to a client:      addClientRole     <username> <rolename> [priority]
    Higher priority (larger numerical value) roles are evaluated first.
Remove role from a client:   removeClientRole  <username> <rolename>
Get client information:      getClient         <username>
List all clients:            listClients       [count [offset]]
Enable client:               enableClient      <username>
Disable client:              disableClient     <username>

Groups
------
Create a new group:          createGroup       <groupname>
Delete a group:              deleteGroup       <groupname>
Add a role to a group:       addGroupRole      <groupname> <rolename> [priority]
    Higher priority (larger numerical value) roles are evaluated first.
Remove role from a group:    removeGroupRole   <groupname> <rolename>
Add client to a group:       addGroupClient    <groupname> <username> [priority]
    Priority sets the group priority for the given client only.
    Higher priority (larger numerical value) groups are evaluated first.
Remove client from a group:  removeGroupClient <groupname> <username>
Get group information:       getGroup          <groupname>
List all groups:             listGroups        [count [offset]]

Roles
------
Create a new role:           createRole        <rolename>
Delete a role:               deleteRole        <rolename>
Add an ACL to a role:        addRoleACL        <rolename> <aclspec> [priority]
    Higher priority (larger numerical value) ACLs are evaluated first.
Remove ACL from a role:      removeRoleACL     <rolename> <aclspec>
Get role information:        getRole           <rolename>
List all roles:              listRoles         [count [offset]]

aclspec:                     <acltype> <topicFilter> allow|deny
acltype:                     publishClientSend|publishClientReceive
                              |subscribeLiteral|subscribePattern
                              |unsubscribeLiteral|unsubscribePattern

For more information see:
    https://mosquitto.org/documentation/dynamic-security/

"
    );
}

/// Asks for a password as mosquitto_ctrl's `get_password` does (see [`prompt`]). Unless
/// `quiet`, a failure is reported on stderr: `Error: Empty password.` (a read error counts as
/// an empty answer) or `Error: Passwords do not match.`
fn get_password(prompt: &str, verify: Option<&str>, quiet: bool) -> Result<String, PromptError> {
    match prompt::get_password(prompt, verify) {
        Ok(p) => Ok(String::from_utf8_lossy(&p).into_owned()),
        Err(e) => {
            let e = match e {
                PromptError::Read(_) => PromptError::Empty,
                e => e,
            };
            if !quiet {
                match e {
                    PromptError::Mismatch => eprintln!("Error: Passwords do not match."),
                    _ => eprintln!("Error: Empty password."),
                }
            }
            Err(e)
        }
    }
}

fn option_failure(e: OptionError) -> Exit {
    eprintln!("{}", e.0);
    Exit::Failure
}

/// The options file's options, then the command line's. `Err` = stop with this exit.
fn load_options(args: &[String]) -> Result<(Options, usize), Exit> {
    let mut opts = Options::default();
    let file = match options::find_options_file_arg(args) {
        Some(path) => match std::fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                eprintln!(
                    "Error: Unable to open options file '{}': {}.",
                    path.display(),
                    client::describe(&e)
                );
                return Err(Exit::Failure);
            }
        },
        None => options::default_options_files()
            .into_iter()
            .find_map(|p| std::fs::read(p).ok()),
    };
    if let Some(bytes) = file {
        options::parse_options_file(&mut opts, &String::from_utf8_lossy(&bytes))
            .map_err(option_failure)?;
    }
    let rest = match options::parse_args(&mut opts, args).map_err(option_failure)? {
        Parsed::Rest(n) => n,
        Parsed::Help | Parsed::Version => {
            print_usage();
            return Err(Exit::Failure);
        }
    };
    options::check(&opts).map_err(option_failure)?;
    Ok((opts, rest))
}

fn run(args: Vec<OsString>) -> Exit {
    let args: Vec<String> = match args.into_iter().map(OsString::into_string).collect() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("Error: Arguments must be valid UTF-8.");
            return Exit::Failure;
        }
    };
    if args.is_empty() {
        print_usage();
        return Exit::Failure;
    }
    let (mut opts, first) = match load_options(&args) {
        Ok(x) => x,
        Err(exit) => return exit,
    };
    let rest = &args[first..];
    if rest.len() < 2 {
        print_usage();
        return Exit::Failure;
    }
    if !rest[0].eq_ignore_ascii_case("dynsec") {
        eprintln!("Error: Module '{}' not supported.", rest[0]);
        return Exit::Code(MOSQ_ERR_NOT_SUPPORTED);
    }
    let (command, command_args) = (&rest[1], &rest[2..]);
    if command.eq_ignore_ascii_case("help") {
        print_dynsec_usage();
        return Exit::Success;
    }
    if command.eq_ignore_ascii_case("init") {
        return init::run(command_args);
    }
    let request = match dynsec::build_request(command, command_args, &mut get_password) {
        Ok(r) => r,
        Err(dynsec::BuildError::Invalid) => return Exit::Invalid,
        Err(dynsec::BuildError::Unknown(c)) => {
            eprintln!("Command '{c}' not recognised.");
            return Exit::Code(MOSQ_ERR_UNKNOWN);
        }
        Err(dynsec::BuildError::Password) => return Exit::Failure,
    };

    if !opts.uses_tls() && !opts.unix && !opts.quiet {
        eprint!("Warning: You are running midge ctrl without encryption.\nThis means all of the configuration changes you are making are visible on the network, including passwords.\n\n");
    }
    if let (Some(user), None) = (&opts.username, &opts.password) {
        match get_password(&format!("Password for {user}: "), None, false) {
            Ok(p) => opts.password = Some(p),
            Err(_) => {
                eprintln!("Error getting password.");
                return Exit::Failure;
            }
        }
    }
    if opts.username.is_none() && opts.password.is_some() && !opts.protocol.is_v5() {
        eprintln!("Error: Problem setting username and/or password.");
        return Exit::Failure;
    }
    let payload = json::to_compact(&request);
    if opts.debug {
        eprintln!("Request: {payload}");
    }
    match client::request_response(
        &opts,
        dynsec::REQUEST_TOPIC,
        dynsec::RESPONSE_TOPIC,
        payload.as_bytes(),
    ) {
        Ok(response) => {
            if opts.debug {
                eprintln!("Response: {}", String::from_utf8_lossy(&response));
            }
            print::print_response(
                &response,
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            );
            Exit::Success
        }
        Err(e) => {
            eprintln!("{}", e.message);
            Exit::Code(e.code)
        }
    }
}
