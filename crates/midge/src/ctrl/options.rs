//! `mosquitto_ctrl`'s connection options: the command line, and the options file read before
//! it (`-o <file>`, else `$XDG_CONFIG_HOME/mosquitto_ctrl.conf` or
//! `~/.config/mosquitto_ctrl.conf`), one option per line exactly as on the command line.

use std::path::{Path, PathBuf};

use midge_proto::ProtocolVersion;

/// Everything that says how to reach and log in to the broker.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub id: Option<String>,
    pub protocol: ProtocolVersion,
    /// Host name, or the socket path when `unix` is set.
    pub host: Option<String>,
    /// `None` = the default for the transport (1883, 8883 with TLS).
    pub port: Option<u16>,
    pub unix: bool,
    pub qos: u8,
    pub bind_address: Option<String>,
    pub debug: bool,
    pub quiet: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    pub options_file: Option<PathBuf>,
    pub cafile: Option<PathBuf>,
    pub capath: Option<PathBuf>,
    pub certfile: Option<PathBuf>,
    pub keyfile: Option<PathBuf>,
    pub ciphers: Option<String>,
    pub tls_version: Option<String>,
    pub tls_alpn: Option<String>,
    pub insecure: bool,
    pub psk: Option<String>,
    pub psk_identity: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            id: None,
            protocol: ProtocolVersion::V5,
            host: None,
            port: None,
            unix: false,
            qos: 1,
            bind_address: None,
            debug: false,
            quiet: false,
            username: None,
            password: None,
            options_file: None,
            cafile: None,
            capath: None,
            certfile: None,
            keyfile: None,
            ciphers: None,
            tls_version: None,
            tls_alpn: None,
            insecure: false,
            psk: None,
            psk_identity: None,
        }
    }
}

impl Options {
    /// TLS with certificates (`--cafile`/`--capath`).
    pub fn uses_certificates(&self) -> bool {
        self.cafile.is_some() || self.capath.is_some()
    }

    /// TLS of either kind.
    pub fn uses_tls(&self) -> bool {
        self.uses_certificates() || self.psk.is_some()
    }

    pub fn host(&self) -> &str {
        self.host.as_deref().unwrap_or("localhost")
    }

    /// The port to connect to: as given, else 8883 for TLS and 1883 without.
    pub fn port(&self) -> u16 {
        self.port
            .unwrap_or(if self.uses_tls() { 8883 } else { 1883 })
    }
}

/// What the option parser stopped on.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// Options read; the rest of the command line starts at this index.
    Rest(usize),
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// An option error; the text is printed as it is.
#[derive(Debug, PartialEq)]
pub struct OptionError(pub String);

fn err<T>(s: impl Into<String>) -> Result<T, OptionError> {
    Err(OptionError(s.into()))
}

/// Reads options from the front of `args` (up to the first argument not starting with `-`)
/// into `opts`. Used for the command line and, line by line, for the options file.
pub fn parse_args(opts: &mut Options, args: &[String]) -> Result<Parsed, OptionError> {
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        let opt = args[i].as_str();
        // The value of an option that takes one; `what` is the word mosquitto_ctrl's error
        // message uses for it.
        let mut value = |name: &str, what: &str| -> Result<String, OptionError> {
            match args.get(i + 1) {
                Some(v) => {
                    i += 1;
                    Ok(v.clone())
                }
                None => err(format!(
                    "Error: {name} argument given but no {what} specified."
                )),
            }
        };
        match opt {
            "-A" => opts.bind_address = Some(value("-A", "address")?),
            "--cafile" => opts.cafile = Some(value("--cafile", "file")?.into()),
            "--capath" => opts.capath = Some(value("--capath", "directory")?.into()),
            // `--certfile`/`--keyfile`: the names the dynamic-security documentation's
            // options-file example uses (mosquitto_ctrl itself knows only --cert/--key).
            "--cert" | "--certfile" => opts.certfile = Some(value(opt, "file")?.into()),
            "--ciphers" => opts.ciphers = Some(value("--ciphers", "ciphers")?),
            "-d" | "--debug" => opts.debug = true,
            "--help" => return Ok(Parsed::Help),
            // After --unix, -h names the socket (mosquitto_ctrl keeps port 0 = Unix).
            "-h" | "--host" => opts.host = Some(value("-h", "host")?),
            "--insecure" => opts.insecure = true,
            "-i" | "--id" => opts.id = Some(value("-i", "id")?),
            "--key" | "--keyfile" => opts.keyfile = Some(value(opt, "file")?.into()),
            "-L" | "--url" => {
                let url = value("-L", "URL")?;
                parse_url(opts, &url)?;
            }
            "-o" => opts.options_file = Some(value("-o", "options file")?.into()),
            "-p" | "--port" => {
                let p = value("-p", "port")?;
                let n = atoi(&p);
                if !(0..=65535).contains(&n) {
                    return err(format!("Error: Invalid port given: {n}"));
                }
                opts.port = Some(n as u16);
                opts.unix = false;
            }
            "-P" | "--pw" => opts.password = Some(value("-P", "password")?),
            "--psk" => opts.psk = Some(value("--psk", "key")?),
            "--psk-identity" => opts.psk_identity = Some(value("--psk-identity", "identity")?),
            "-q" | "--qos" => {
                let q = atoi(&value("-q", "QoS")?);
                if !(0..=2).contains(&q) {
                    return err(format!("Error: Invalid QoS given: {q}"));
                }
                opts.qos = q as u8;
            }
            "--quiet" => opts.quiet = true,
            "--tls-alpn" => opts.tls_alpn = Some(value("--tls-alpn", "protocol")?),
            "--tls-version" => opts.tls_version = Some(value("--tls-version", "version")?),
            "-u" | "--username" => opts.username = Some(value("-u", "username")?),
            "--unix" => {
                opts.host = Some(value("--unix", "socket path")?);
                opts.unix = true;
                opts.port = None;
            }
            "-V" | "--protocol-version" => {
                opts.protocol = match value("--protocol-version", "version")?.as_str() {
                    "mqttv31" | "31" => ProtocolVersion::V31,
                    "mqttv311" | "311" => ProtocolVersion::V311,
                    "mqttv5" | "5" => ProtocolVersion::V5,
                    _ => return err("Error: Invalid protocol version argument given."),
                }
            }
            // Accepted by mosquitto_ctrl and without effect there too.
            "-v" | "--verbose" => {}
            "--version" => return Ok(Parsed::Version),
            "--keyform" | "--tls-engine" | "--tls-engine-kpass-sha1" | "--proxy" => {
                return err(format!("Error: {opt} is not supported by midge ctrl."))
            }
            _ => return err(format!("Error: Unknown option '{opt}'.")),
        }
        i += 1;
    }
    Ok(Parsed::Rest(i))
}

/// The checks mosquitto_ctrl makes once every option is known.
pub fn check(opts: &Options) -> Result<(), OptionError> {
    if opts.certfile.is_some() != opts.keyfile.is_some() {
        return err("Error: Both certfile and keyfile must be provided if one of them is set.");
    }
    if opts.uses_certificates() && opts.psk.is_some() {
        return err("Error: Only one of --psk or --cafile/--capath may be used at once.");
    }
    if opts.psk.is_some() && opts.psk_identity.is_none() {
        return err("Error: --psk-identity required if --psk used.");
    }
    Ok(())
}

/// `-L mqtt[s]://[username[:password]@]host[:port]/topic` (the topic is required and unused).
fn parse_url(opts: &mut Options, url: &str) -> Result<(), OptionError> {
    let lower = url.to_ascii_lowercase();
    let (rest, port) = if lower.starts_with("mqtt://") {
        (&url[7..], 1883)
    } else if lower.starts_with("mqtts://") {
        (&url[8..], 8883)
    } else {
        return err("Error: unsupported URL scheme.");
    };
    let Some((authority, _topic)) = rest.split_once('/') else {
        return err("Error: Invalid URL for -L argument specified - topic missing.");
    };
    opts.port = Some(port);
    opts.unix = false;
    let hostport = match authority.split_once('@') {
        Some((userinfo, hostport)) => {
            match userinfo.split_once(':') {
                Some((u, p)) => {
                    opts.username = Some(u.to_string());
                    opts.password = Some(p.to_string());
                }
                None => opts.username = Some(userinfo.to_string()),
            }
            hostport
        }
        None => authority,
    };
    match hostport.split_once(':') {
        Some((h, p)) => {
            opts.host = Some(h.to_string());
            let n = atoi(p);
            if !(0..=65535).contains(&n) {
                return err(format!("Error: Invalid port given: {n}"));
            }
            opts.port = Some(n as u16);
        }
        None => opts.host = Some(hostport.to_string()),
    }
    Ok(())
}

/// C's `atoi`: leading blanks, optional sign, digits; anything else ends the number.
pub fn atoi(s: &str) -> i64 {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        n = (n * 10 + i64::from(b - b'0')).min(i64::from(u32::MAX) + 1);
    }
    let n = if neg { -n } else { n };
    // atoi returns an int: what glibc's strtol-then-truncate gives for the common cases.
    n.clamp(i64::from(i32::MIN), i64::from(i32::MAX))
}

/// The options file to read when `-o` is not given: `$XDG_CONFIG_HOME/mosquitto_ctrl.conf`,
/// else `$HOME/.config/mosquitto_ctrl.conf` (as documented). Mosquitto 2.0.11 itself looks for
/// the name without `.conf`; that name is read when the documented one does not exist.
pub fn default_options_files() -> Vec<PathBuf> {
    let dir = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(d) => PathBuf::from(d),
        None => match std::env::var_os("HOME") {
            Some(h) => Path::new(&h).join(".config"),
            None => return Vec::new(),
        },
    };
    vec![dir.join("mosquitto_ctrl.conf"), dir.join("mosquitto_ctrl")]
}

/// The options of one options file, in order: `#` lines are comments, each other line is split
/// at spaces into an option and (at most) one value, as mosquitto_ctrl reads it.
pub fn parse_options_file(opts: &mut Options, text: &str) -> Result<(), OptionError> {
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let words: Vec<String> = line
            .split(' ')
            .filter(|w| !w.is_empty())
            .take(2)
            .map(str::to_string)
            .collect();
        if words.is_empty() {
            continue;
        }
        match parse_args(opts, &words)? {
            Parsed::Rest(_) => {}
            // mosquitto_ctrl ignores these in a file too (their return is dropped).
            Parsed::Help | Parsed::Version => {}
        }
    }
    Ok(())
}

/// `-o <file>` as given on the command line, found before anything else is parsed so that
/// the file's options can come first and the command line override them.
pub fn find_options_file_arg(args: &[String]) -> Option<PathBuf> {
    let mut found = None;
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        if takes_value(&args[i]) {
            if args[i] == "-o" {
                found = args.get(i + 1).map(PathBuf::from);
            }
            i += 1;
        }
        i += 1;
    }
    found
}

fn takes_value(opt: &str) -> bool {
    matches!(
        opt,
        "-A" | "--cafile"
            | "--capath"
            | "--cert"
            | "--certfile"
            | "--keyfile"
            | "--ciphers"
            | "-h"
            | "--host"
            | "-i"
            | "--id"
            | "--key"
            | "-L"
            | "--url"
            | "-o"
            | "-p"
            | "--port"
            | "-P"
            | "--pw"
            | "--psk"
            | "--psk-identity"
            | "-q"
            | "--qos"
            | "--tls-alpn"
            | "--tls-version"
            | "-u"
            | "--username"
            | "--unix"
            | "-V"
            | "--protocol-version"
            | "--keyform"
            | "--tls-engine"
            | "--tls-engine-kpass-sha1"
            | "--proxy"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_connection_options_up_to_the_module() {
        let mut o = Options::default();
        let a = args(
            "-h broker -p 1884 -u admin -P pw -i me -q 2 -V mqttv311 -d --quiet dynsec listClients",
        );
        assert_eq!(parse_args(&mut o, &a), Ok(Parsed::Rest(16)));
        assert_eq!(o.host(), "broker");
        assert_eq!(o.port(), 1884);
        assert_eq!(o.username.as_deref(), Some("admin"));
        assert_eq!(o.password.as_deref(), Some("pw"));
        assert_eq!(o.id.as_deref(), Some("me"));
        assert_eq!(o.qos, 2);
        assert_eq!(o.protocol, ProtocolVersion::V311);
        assert!(o.debug && o.quiet);
    }

    #[test]
    fn defaults_match_mosquitto_ctrl() {
        let o = Options::default();
        assert_eq!(o.qos, 1);
        assert_eq!(o.protocol, ProtocolVersion::V5);
        assert_eq!(o.host(), "localhost");
        assert_eq!(o.port(), 1883);
        let o = Options {
            cafile: Some("ca.pem".into()),
            ..Options::default()
        };
        assert_eq!(o.port(), 8883);
    }

    #[test]
    fn option_errors_read_like_mosquitto_ctrl() {
        let mut o = Options::default();
        assert_eq!(
            parse_args(&mut o, &args("-x dynsec")),
            Err(OptionError("Error: Unknown option '-x'.".into()))
        );
        assert_eq!(
            parse_args(&mut o, &args("-p")),
            Err(OptionError(
                "Error: -p argument given but no port specified.".into()
            ))
        );
        assert_eq!(
            parse_args(&mut o, &args("-p 70000")),
            Err(OptionError("Error: Invalid port given: 70000".into()))
        );
        assert_eq!(
            parse_args(&mut o, &args("-q 3")),
            Err(OptionError("Error: Invalid QoS given: 3".into()))
        );
        assert_eq!(
            parse_args(&mut o, &args("-V 6")),
            Err(OptionError(
                "Error: Invalid protocol version argument given.".into()
            ))
        );
        assert_eq!(parse_args(&mut o, &args("--help x")), Ok(Parsed::Help));
    }

    #[test]
    fn unix_socket_and_url() {
        let mut o = Options::default();
        parse_args(&mut o, &args("--unix /run/m.sock")).unwrap();
        assert!(o.unix);
        assert_eq!(o.host(), "/run/m.sock");
        let mut o = Options::default();
        parse_args(&mut o, &args("-L mqtts://u:p@example.com:8884/t")).unwrap();
        assert_eq!(
            (
                o.username.as_deref(),
                o.password.as_deref(),
                o.host(),
                o.port()
            ),
            (Some("u"), Some("p"), "example.com", 8884)
        );
        let mut o = Options::default();
        assert!(parse_args(&mut o, &args("-L http://x/t")).is_err());
        assert!(parse_args(&mut o, &args("-L mqtt://x")).is_err());
    }

    #[test]
    fn options_file_lines() {
        let mut o = Options::default();
        parse_options_file(
            &mut o,
            "# comment\n-u admin\r\n\n-h  broker.example  ignored\n--cafile /ca.pem\n-p 8884\n",
        )
        .unwrap();
        assert_eq!(o.username.as_deref(), Some("admin"));
        assert_eq!(o.host(), "broker.example");
        assert_eq!(o.cafile.as_deref(), Some(Path::new("/ca.pem")));
        assert_eq!(o.port(), 8884);
        let mut o = Options::default();
        parse_options_file(&mut o, "--certfile /c.crt\n--keyfile /c.key\n").unwrap();
        assert_eq!(o.certfile.as_deref(), Some(Path::new("/c.crt")));
        assert_eq!(o.keyfile.as_deref(), Some(Path::new("/c.key")));
        let mut o = Options::default();
        assert_eq!(
            parse_options_file(&mut o, "-u\n"),
            Err(OptionError(
                "Error: -u argument given but no username specified.".into()
            ))
        );
    }

    #[test]
    fn finds_the_options_file_argument() {
        assert_eq!(
            find_options_file_arg(&args("-u -o -o f.conf dynsec -o x")),
            Some(PathBuf::from("f.conf"))
        );
        assert_eq!(find_options_file_arg(&args("dynsec -o x")), None);
    }

    #[test]
    fn checks_combinations() {
        let o = Options {
            certfile: Some("c".into()),
            ..Options::default()
        };
        assert!(check(&o).is_err());
        let o = Options {
            psk: Some("00".into()),
            ..Options::default()
        };
        assert!(check(&o).is_err());
    }

    #[test]
    fn atoi_is_c_atoi() {
        assert_eq!(atoi("42"), 42);
        assert_eq!(atoi(" -7x"), -7);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi("+5"), 5);
    }
}
