//! Authentication and authorisation options, `per_listener_settings`, plugins, and how they
//! resolve for one listener ([`Config::security_for`]).
//!
//! Mosquitto 2.0 decides where a security option goes *when it reads it*: with
//! `per_listener_settings false` (the default) every `allow_anonymous`, `password_file`,
//! `acl_file`, `psk_file`, `allow_zero_length_clientid`, `auto_id_prefix` and `plugin` is
//! global, even inside a listener block; with `per_listener_settings true` it belongs to the
//! listener block it is in. Midge stores them the same way (in [`Config::security`] or in
//! [`ListenerConfig::security`]) and resolves them in one place.

use super::line::Line;
use super::{Config, ListenerConfig, Parser, PluginRef, Target};

/// The security options of one scope: global ([`Config::security`]) or one listener
/// ([`ListenerConfig::security`]). `None` = not set here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityOptions {
    /// `allow_anonymous` (and, on a listener, 2.1's `listener_allow_anonymous`): whether
    /// clients without a username may connect. Unset, Mosquitto 2 allows them only in
    /// local-only mode (no listener configured).
    pub allow_anonymous: Option<bool>,
    /// `password_file`: `user:hash` lines written by `mosquitto_passwd`.
    pub password_file: Option<String>,
    /// `acl_file`: topic access rules.
    pub acl_file: Option<String>,
    /// `psk_file`: `identity:hexkey` lines for TLS-PSK (issue 5).
    pub psk_file: Option<String>,
    /// `clientid_prefixes` (deprecated; also read under the seeds' spelling
    /// `clientid_prefix`): only client ids starting with this prefix may connect. Global
    /// in Mosquitto whatever `per_listener_settings` says, so it is only ever set on
    /// [`Config::security`].
    pub clientid_prefixes: Option<String>,
    /// `auto_id_prefix` (and, on a listener, 2.1's `listener_auto_id_prefix`): prefix of
    /// the client ids the broker generates (default `auto-`, at most 50 characters).
    pub auto_id_prefix: Option<String>,
    /// `allow_zero_length_clientid` (default true): whether a client may send an empty
    /// client id and get a generated one.
    pub allow_zero_length_clientid: Option<bool>,
    /// `plugin` / `auth_plugin` (and, globally, 2.1's `global_plugin`), in file order
    /// (issue 6).
    pub plugins: Vec<PluginConfig>,
    /// 2.1's `plugin_use <name>` on a listener: plugins loaded with `plugin_load` that
    /// apply to it (issue 6).
    pub plugin_use: Vec<String>,
}

/// One `plugin` (or `plugin_load`, `global_plugin`) and the options that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginConfig {
    /// The library path as written (Midge maps Mosquitto's dynamic security plugin to its
    /// own implementation in issue 6).
    pub path: String,
    /// The name given by 2.1's `plugin_load <name> <path>`.
    pub name: Option<String>,
    /// `plugin_opt_<key> <value>` / `auth_opt_<key> <value>` lines, in order, without the
    /// prefix.
    pub options: Vec<(String, String)>,
    /// `auth_plugin_deny_special_chars` (default true): refuse ACL checks for usernames or
    /// client ids containing `+` or `#` before asking this plugin (CVE-2017-7650).
    pub deny_special_chars: bool,
    /// Line of the `plugin` option.
    pub line: usize,
    /// File holding [`PluginConfig::line`]: the main file or one read by `include_dir`.
    pub file: String,
}

/// File names of Mosquitto's dynamic security plugin, which Midge implements itself.
const DYNSEC_LIBRARIES: [&str; 3] = [
    "mosquitto_dynamic_security.so",
    "mosquitto_dynamic_security.dll",
    "mosquitto_dynamic_security.dylib",
];

impl PluginConfig {
    /// The value of `plugin_opt_<key>` (or `auth_opt_<key>`); the last one wins, as in
    /// Mosquitto.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the path names Mosquitto's dynamic security plugin, in whatever directory
    /// and with a `lib` prefix or not, so existing configurations move over unchanged.
    pub fn is_dynamic_security(&self) -> bool {
        let name = self.path.rsplit(['/', '\\']).next().unwrap_or_default();
        let name = name.strip_prefix("lib").unwrap_or(name);
        DYNSEC_LIBRARIES.contains(&name)
    }

    /// The dynamic security JSON file this plugin line configures, or why the line cannot
    /// be honoured (another plugin, or no `plugin_opt_config_file`).
    pub fn dynamic_security_file(&self) -> Result<&str, String> {
        if !self.is_dynamic_security() {
            return Err(format!(
                "plugin '{}': only Mosquitto's dynamic security plugin (mosquitto_dynamic_security.so) is supported, and it is built in; Midge loads no other plugins",
                self.path.escape_debug()
            ));
        }
        match self.option("config_file") {
            Some(file) if !file.is_empty() => Ok(file),
            _ => Err(format!(
                "plugin '{}': plugin_opt_config_file is required by the dynamic security plugin",
                self.path.escape_debug()
            )),
        }
    }
}

/// The security settings that apply to clients of one listener, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedSecurity {
    /// Whether clients without a username may connect.
    pub allow_anonymous: bool,
    pub password_file: Option<String>,
    pub acl_file: Option<String>,
    pub psk_file: Option<String>,
    /// Required client id prefix, if any.
    pub clientid_prefixes: Option<String>,
    /// Prefix of generated client ids.
    pub auto_id_prefix: String,
    pub allow_zero_length_clientid: bool,
    /// Plugins consulted for this listener: `global_plugin`s, then the `plugin`s of the
    /// scope in force, then the listener's `plugin_use`s.
    pub plugins: Vec<PluginConfig>,
}

/// Mosquitto's prefix for generated client ids.
pub const DEFAULT_AUTO_ID_PREFIX: &str = "auto-";

impl Config {
    /// The security settings for clients connecting through `listener`, as Mosquitto
    /// resolves them:
    ///
    /// * `per_listener_settings false`: the global options, except that 2.1's
    ///   `listener_allow_anonymous` / `listener_auto_id_prefix` on the listener win.
    /// * `per_listener_settings true`: only the listener's own options; the global ones
    ///   (which then can only come from 2.1's `global_plugin`) add plugins.
    /// * Unset `allow_anonymous`: true only in local-only mode (no listener in the
    ///   configuration; the broker's own loopback listeners), as Mosquitto 2 does. An
    ///   explicit `allow_anonymous false` stays false even in local-only mode, where
    ///   Mosquitto 2.0 overrides it to true.
    /// * `clientid_prefixes` is always global.
    ///
    /// `listener` may be one of [`Config::listeners`] or one the broker made from
    /// [`Config::listener_defaults`].
    pub fn security_for(&self, listener: &ListenerConfig) -> ResolvedSecurity {
        let global = &self.security;
        let own = &listener.security;
        let local_only = self.listeners.is_empty();
        let scoped = if self.per_listener_settings {
            own
        } else {
            global
        };
        let allow_anonymous = if self.per_listener_settings {
            own.allow_anonymous
        } else {
            own.allow_anonymous.or(global.allow_anonymous)
        }
        .unwrap_or(local_only);
        let auto_id_prefix = if self.per_listener_settings {
            own.auto_id_prefix.clone()
        } else {
            own.auto_id_prefix
                .clone()
                .or_else(|| global.auto_id_prefix.clone())
        }
        .unwrap_or_else(|| DEFAULT_AUTO_ID_PREFIX.to_owned());
        let mut plugins = Vec::new();
        if self.per_listener_settings {
            plugins.extend(global.plugins.iter().cloned());
        }
        plugins.extend(scoped.plugins.iter().cloned());
        for name in &own.plugin_use {
            let used = self
                .loaded_plugins
                .iter()
                .filter(|p| p.name.as_deref() == Some(name));
            plugins.extend(used.cloned());
        }
        ResolvedSecurity {
            allow_anonymous,
            password_file: scoped.password_file.clone(),
            acl_file: scoped.acl_file.clone(),
            psk_file: scoped.psk_file.clone(),
            clientid_prefixes: global.clientid_prefixes.clone(),
            auto_id_prefix,
            allow_zero_length_clientid: scoped.allow_zero_length_clientid.unwrap_or(true),
            plugins,
        }
    }
}

/// `per_listener_settings true|false`. As in Mosquitto 2.1, once true it stays true (a later
/// `false` is ignored, with a warning here; 2.0.11 lets it win and strands the options
/// already stored per listener), and turning it on after another security option
/// is an error: that option has already been stored globally.
pub(crate) fn per_listener_settings(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    let value = line.bool()?;
    if parser.config.per_listener_settings {
        if !value {
            parser.warn(
                line,
                "per_listener_settings: already true; a later false is ignored (as in Mosquitto 2.1)",
            );
        }
        return Ok(());
    }
    if value {
        if let Some((option, location)) = parser.first_security_option() {
            return Err(line.invalid(format!(
                "must be set before any other security option ('{option}' is on {location})"
            )));
        }
    }
    parser.config.per_listener_settings = value;
    Ok(())
}

/// Where a per-listener-settings option goes: the current listener when
/// `per_listener_settings` is true (a listener is then required, as in Mosquitto 2.1:
/// 2.0 silently ignores some of these and opens a default listener on port 1883 for
/// others), the global options otherwise.
fn security_target(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<Target, String> {
    parser.note_security_option(line);
    if !parser.config.per_listener_settings && parser.scope_listener().is_some() {
        parser.note_global_in_listener_block(line);
    }
    if parser.config.per_listener_settings {
        match parser.scope_listener() {
            Some(index) => Ok(Target::Listener(index)),
            // After `port` / `bind_address`, the default listener's (as in Mosquitto).
            None if parser.default.requested() => Ok(Target::Pre),
            None => Err(line.invalid(
                "per_listener_settings is true, so this option must follow the 'listener' it applies to",
            )),
        }
    } else {
        Ok(Target::Global)
    }
}

fn options_mut<'p>(parser: &'p mut Parser<'_>, target: Target) -> &'p mut SecurityOptions {
    match target {
        Target::Listener(index) => match parser.config.listeners.get_mut(index) {
            Some(listener) => &mut listener.security,
            None => &mut parser.config.security,
        },
        Target::Pre => &mut parser.pre.security,
        Target::Global | Target::Bridge(_) => &mut parser.config.security,
    }
}

pub(crate) fn allow_anonymous(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let target = security_target(parser, line)?;
    let value = line.bool()?;
    options_mut(parser, target).allow_anonymous = Some(value);
    Ok(())
}

pub(crate) fn allow_zero_length_clientid(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    let target = security_target(parser, line)?;
    let value = line.bool()?;
    options_mut(parser, target).allow_zero_length_clientid = Some(value);
    Ok(())
}

/// A file option of the security scope; a second one in the same scope is an error, as in
/// Mosquitto (with `per_listener_settings false` that includes one per listener block).
fn security_file(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
    name: &'static str,
    field: fn(&mut SecurityOptions) -> &mut Option<String>,
) -> Result<(), String> {
    let target = security_target(parser, line)?;
    let path = parser.string(line)?;
    parser.once(target, line, name)?;
    *field(options_mut(parser, target)) = Some(path);
    Ok(())
}

pub(crate) fn password_file(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    security_file(parser, line, "password_file", |s| &mut s.password_file)
}

pub(crate) fn acl_file(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    security_file(parser, line, "acl_file", |s| &mut s.acl_file)
}

pub(crate) fn psk_file(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    security_file(parser, line, "psk_file", |s| &mut s.psk_file)
}

/// Longest `auto_id_prefix` Mosquitto accepts (since 2.0.23), keeping generated ids short.
const MAX_AUTO_ID_PREFIX: usize = 50;

fn check_auto_id_prefix(line: &Line<'_>, prefix: &str) -> Result<(), String> {
    if prefix.chars().count() > MAX_AUTO_ID_PREFIX {
        return Err(line.invalid(format!("longer than {MAX_AUTO_ID_PREFIX} characters")));
    }
    Ok(())
}

pub(crate) fn auto_id_prefix(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let target = security_target(parser, line)?;
    let prefix = parser.string(line)?;
    check_auto_id_prefix(line, &prefix)?;
    parser.once(target, line, "auto_id_prefix")?;
    options_mut(parser, target).auto_id_prefix = Some(prefix);
    Ok(())
}

/// 2.1's `listener_allow_anonymous`: this listener only, whatever `per_listener_settings`
/// says.
pub(crate) fn listener_allow_anonymous(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    let index = parser.require_listener(line)?;
    let value = line.bool()?;
    options_mut(parser, Target::Listener(index)).allow_anonymous = Some(value);
    Ok(())
}

/// 2.1's `listener_auto_id_prefix`: this listener only.
pub(crate) fn listener_auto_id_prefix(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    let index = parser.require_listener(line)?;
    let prefix = parser.string(line)?;
    check_auto_id_prefix(line, &prefix)?;
    parser.once(Target::Listener(index), line, "auto_id_prefix")?;
    options_mut(parser, Target::Listener(index)).auto_id_prefix = Some(prefix);
    Ok(())
}

/// `clientid_prefixes` (deprecated in Mosquitto), global. The seeds write it
/// `clientid_prefix`, a spelling Mosquitto refuses; Midge reads both.
pub(crate) fn clientid_prefixes(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let prefix = parser.string(line)?;
    parser.once(Target::Global, line, "clientid_prefixes")?;
    if line.name == "clientid_prefix" {
        parser.warn(
            line,
            "'clientid_prefix' is read as 'clientid_prefixes' (Mosquitto knows only that spelling), which is deprecated",
        );
    } else {
        parser.warn(
            line,
            "the 'clientid_prefixes' option is deprecated and will be removed in a future version",
        );
    }
    parser.config.security.clientid_prefixes = Some(prefix);
    Ok(())
}

/// `check_retain_source`: global whatever `per_listener_settings` says, but Mosquitto counts
/// it as a security option when checking that `per_listener_settings` comes first.
pub(crate) fn check_retain_source(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.note_security_option(line);
    parser.config.check_retain_source = line.bool()?;
    Ok(())
}

fn new_plugin(file: &str, line: &Line<'_>, path: &str, name: Option<&str>) -> PluginConfig {
    PluginConfig {
        file: file.to_owned(),
        path: path.to_owned(),
        name: name.map(str::to_owned),
        options: Vec::new(),
        deny_special_chars: true,
        line: line.number,
    }
}

/// `plugin <path>` / `auth_plugin <path>` (issue 6): in the security scope in force.
pub(crate) fn plugin(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let target = security_target(parser, line)?;
    let path = parser.string(line)?;
    let file = parser.file().to_owned();
    let plugins = &mut options_mut(parser, target).plugins;
    plugins.push(new_plugin(&file, line, &path, None));
    let index = plugins.len() - 1;
    let plugin = match target {
        Target::Listener(listener) => PluginRef::Security {
            listener: Some(listener),
            index,
        },
        Target::Pre => PluginRef::Pre(index),
        Target::Global | Target::Bridge(_) => PluginRef::Security {
            listener: None,
            index,
        },
    };
    parser.set_plugin(plugin);
    Ok(())
}

/// 2.1's `global_plugin <path>` (issue 6): for every listener.
pub(crate) fn global_plugin(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    parser.note_security_option(line);
    let path = parser.string(line)?;
    let file = parser.file().to_owned();
    let plugins = &mut parser.config.security.plugins;
    plugins.push(new_plugin(&file, line, &path, None));
    let index = plugins.len() - 1;
    parser.set_plugin(PluginRef::Security {
        listener: None,
        index,
    });
    Ok(())
}

/// 2.1's `plugin_load <name> <path>` (issue 6): a named plugin for `plugin_use`.
pub(crate) fn plugin_load(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let (name, path) = line.first_and_rest()?;
    if path.is_empty() {
        return Err(line.invalid(format!("missing plugin path for plugin '{name}'")));
    }
    if parser
        .config
        .loaded_plugins
        .iter()
        .any(|p| p.name.as_deref() == Some(name))
    {
        return Err(line.invalid(format!("duplicate plugin name '{name}'")));
    }
    let file = parser.file().to_owned();
    parser
        .config
        .loaded_plugins
        .push(new_plugin(&file, line, path, Some(name)));
    let index = parser.config.loaded_plugins.len() - 1;
    parser.set_plugin(PluginRef::Loaded(index));
    Ok(())
}

/// 2.1's `plugin_use <name>` (issue 6): attaches a `plugin_load`ed plugin to the listener.
pub(crate) fn plugin_use(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let listener = parser.require_listener(line)?;
    let name = line.single()?;
    let Some(index) = parser
        .config
        .loaded_plugins
        .iter()
        .position(|p| p.name.as_deref() == Some(name))
    else {
        return Err(line.invalid(format!(
            "plugin '{}' not previously loaded with plugin_load",
            name.escape_debug()
        )));
    };
    options_mut(parser, Target::Listener(listener))
        .plugin_use
        .push(name.to_owned());
    parser.set_plugin(PluginRef::Loaded(index));
    Ok(())
}

/// `plugin_opt_<key> <value>` / `auth_opt_<key> <value>`: an option of the latest plugin
/// of this file; the value is the rest of the line.
pub(crate) fn plugin_opt(parser: &mut Parser<'_>, line: &Line<'_>) -> Result<(), String> {
    let key = line
        .name
        .strip_prefix("plugin_opt_")
        .or_else(|| line.name.strip_prefix("auth_opt_"))
        .unwrap_or(line.name)
        .to_owned();
    let value = parser.string(line)?;
    let plugin = parser.current_plugin(line)?;
    plugin.options.push((key, value));
    Ok(())
}

/// `auth_plugin_deny_special_chars`: a setting of the latest plugin, which must exist (as in
/// Mosquitto). Midge's own password and ACL checks always refuse `+` and `#` in usernames
/// and client ids used in `%u` / `%c` patterns.
pub(crate) fn auth_plugin_deny_special_chars(
    parser: &mut Parser<'_>,
    line: &Line<'_>,
) -> Result<(), String> {
    let value = line.bool()?;
    parser.current_plugin(line)?.deny_special_chars = value;
    Ok(())
}
