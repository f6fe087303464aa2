//! The gateway's TOML configuration: listeners, spool, destinations and routes.
//!
//! Every field is documented in README.md ("`umbra serve`: the gateway"); `examples/gateway.toml` is a working
//! example. Parsing checks everything it can before the gateway starts: unknown fields, unknown
//! options, routes naming missing destinations, destinations of an unknown kind.

use crate::tls::{ClientTls, TlsClient, TlsServer};
use ipnet::IpNet;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use umbra_core::OptionSet;

/// A configuration problem, one line for the user.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Folder of the spool: the log of received objects, quarantine, the job queue and keys
    /// made on first start.
    pub spool: PathBuf,
    /// Threads de-identifying and forwarding (default: the number of CPUs, at least 4).
    pub workers: Option<usize>,
    /// The DIMSE listener (C-ECHO, C-STORE), if any.
    pub dimse: Option<DimseListener>,
    /// The HTTP listener (`/healthz`, `/metrics`, DICOMweb STOW-RS), if any.
    pub http: Option<HttpListener>,
    /// What the spool keeps, and when it refuses more.
    #[serde(default)]
    pub retention: Retention,
    /// How often and how long forwarding is retried.
    #[serde(default)]
    pub retry: Retry,
    /// Where de-identified copies go.
    #[serde(rename = "destination", default)]
    pub destinations: Vec<Destination>,
    /// Which received objects go to which destinations.
    #[serde(rename = "route", default)]
    pub routes: Vec<Route>,
}

/// `[dimse]`: the storage SCP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DimseListener {
    /// Address and port, e.g. `127.0.0.1:11112`.
    pub listen: SocketAddr,
    /// The gateway's AE title (peers must call it by this title).
    pub ae_title: String,
    /// Calling AE titles accepted (default: any).
    pub allowed_calling: Option<Vec<String>>,
    /// Peer addresses accepted, as addresses or networks (`10.1.0.0/16`) (default: any).
    pub allowed_addresses: Option<Vec<String>>,
    /// Largest PDU received, in bytes.
    #[serde(default = "default_max_pdu")]
    pub max_pdu: u32,
    /// Associations served at once; more are rejected.
    #[serde(default = "default_max_associations")]
    pub max_associations: usize,
    /// Seconds an association may stay silent before it is aborted.
    #[serde(default = "default_dimse_timeout")]
    pub timeout_seconds: u64,
    /// Seconds a new connection has to send its association request.
    #[serde(default = "default_association_timeout")]
    pub association_timeout_seconds: u64,
    /// TLS (every connection is TLS when given).
    pub tls: Option<TlsServer>,
}

/// `[http]`: health, metrics and STOW-RS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpListener {
    /// Address and port, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// File holding the bearer token STOW-RS clients must present. Without it STOW-RS is off
    /// (health and metrics stay on).
    pub token_file: Option<PathBuf>,
    /// Largest STOW-RS request body, in MiB.
    #[serde(default = "default_max_body_mib")]
    pub max_body_mib: u64,
    /// TLS (HTTPS) when given.
    pub tls: Option<TlsServer>,
}

/// `[retention]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Hours a received object is kept after every destination has it (0: removed at once).
    #[serde(default)]
    pub keep_forwarded_hours: f64,
    /// Below this much free space on the spool's disk (MiB), new associations and STOW-RS
    /// requests are refused; half of it is never taken by received objects (room for the queue
    /// to record what it forwards, so a full spool can drain). At least [`MIN_FREE_MIB`].
    #[serde(default = "default_min_free_mib")]
    pub min_free_mib: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_forwarded_hours: 0.0,
            min_free_mib: default_min_free_mib(),
        }
    }
}

/// `[retry]`: backoff for forwarding that failed for a reason that may pass (a peer down, out
/// of resources). Refusals that will not pass (the peer cannot understand the object) go to
/// quarantine at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// First delay, in seconds; it doubles with each attempt.
    #[serde(default = "default_first_delay")]
    pub first_delay_seconds: f64,
    /// Longest delay, in seconds.
    #[serde(default = "default_max_delay")]
    pub max_delay_seconds: f64,
    /// Attempts before the job goes to quarantine (0: retry for ever).
    #[serde(default)]
    pub max_attempts: u32,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            first_delay_seconds: default_first_delay(),
            max_delay_seconds: default_max_delay(),
            max_attempts: 0,
        }
    }
}

impl Retry {
    /// The delay before attempt `attempt + 1`, after `attempt` failures (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let d = self.first_delay_seconds * 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
        Duration::from_secs_f64(d.clamp(0.0, self.max_delay_seconds.max(0.0)))
    }
}

/// `[[destination]]`: where one partner receives its de-identified copies, with its own
/// options and key (two destinations get two unlinkable sets of pseudonyms).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Destination {
    /// Name used by routes, logs and metrics.
    pub name: String,
    /// `dimse`, `stow` or `folder`.
    pub kind: String,
    /// PS3.15 options by the standard's names (as `umbra deid --option`).
    #[serde(default)]
    pub options: Vec<String>,
    /// Key file (from `umbra keygen`). Default: `<spool>/keys/<name>.key`, made on first start.
    pub key_file: Option<PathBuf>,
    /// Modalities held back when Burned In Annotation is absent (default: the built-in list).
    pub at_risk_modalities: Option<Vec<String>>,
    /// `dimse`: the called AE title.
    pub ae_title: Option<String>,
    /// `dimse`: host name or address.
    pub host: Option<String>,
    /// `dimse`: port.
    pub port: Option<u16>,
    /// `dimse`: the gateway's calling AE title (default: the listener's, else `UMBRA`).
    pub calling_ae: Option<String>,
    /// `stow`: the STOW-RS URL (the `/studies` resource).
    pub url: Option<String>,
    /// `stow`: file holding the bearer token.
    pub token_file: Option<PathBuf>,
    /// `folder`: the folder.
    pub path: Option<PathBuf>,
    /// `dimse` and `stow`: TLS to the destination.
    pub tls: Option<TlsClient>,
}

/// `[[route]]`: received objects matching every condition given go to `destinations`. A route
/// without conditions matches everything. Values compare without regard to case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination names.
    pub destinations: Vec<String>,
    /// Calling AE titles (DIMSE) the object came from.
    pub calling_ae: Option<Vec<String>>,
    /// Modality (0008,0060) values.
    pub modality: Option<Vec<String>>,
    /// SOP Class UIDs.
    pub sop_class: Option<Vec<String>>,
    /// A regular expression searched in Study Description (0008,1030).
    pub study_description: Option<String>,
}

fn default_max_pdu() -> u32 {
    116_794
}
fn default_max_associations() -> usize {
    32
}
fn default_dimse_timeout() -> u64 {
    60
}
fn default_association_timeout() -> u64 {
    30
}
fn default_max_body_mib() -> u64 {
    4096
}
/// The least `[retention] min_free_mib` may be.
pub const MIN_FREE_MIB: u64 = 64;

fn default_min_free_mib() -> u64 {
    1024
}
fn default_first_delay() -> f64 {
    1.0
}
fn default_max_delay() -> f64 {
    300.0
}

/// A destination after checking: its kind with the fields that kind needs.
#[derive(Debug, Clone)]
pub enum Target {
    /// A C-STORE SCP.
    Dimse {
        /// Called AE title.
        ae_title: String,
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// Calling AE title.
        calling_ae: String,
        /// TLS, when configured.
        tls: Option<ClientTls>,
    },
    /// A STOW-RS endpoint.
    Stow {
        /// The `/studies` URL.
        url: String,
        /// Bearer token, if any.
        token: Option<String>,
        /// TLS trust, when configured (else the public web's roots, for https URLs).
        tls: Option<ClientTls>,
    },
    /// A folder (PATIENT/STUDY/SERIES/INSTANCE.dcm under it).
    Folder {
        /// The folder.
        path: PathBuf,
    },
}

/// A compiled route.
#[derive(Debug)]
pub struct CompiledRoute {
    /// Indices into the destination list.
    pub destinations: Vec<usize>,
    calling_ae: Option<Vec<String>>,
    modality: Option<Vec<String>>,
    sop_class: Option<Vec<String>>,
    study_description: Option<regex::Regex>,
}

/// What routes look at in a received object.
#[derive(Debug, Default, Clone)]
pub struct RouteFacts {
    /// Calling AE title (empty for STOW-RS).
    pub calling_ae: String,
    /// Modality.
    pub modality: String,
    /// SOP Class UID.
    pub sop_class: String,
    /// Study Description.
    pub study_description: String,
}

impl CompiledRoute {
    /// Whether the object described by `facts` matches every condition of this route.
    pub fn matches(&self, facts: &RouteFacts) -> bool {
        let any = |list: &Option<Vec<String>>, v: &str| {
            list.as_ref()
                .is_none_or(|l| l.iter().any(|x| x.trim().eq_ignore_ascii_case(v.trim())))
        };
        any(&self.calling_ae, &facts.calling_ae)
            && any(&self.modality, &facts.modality)
            && any(&self.sop_class, &facts.sop_class)
            && self
                .study_description
                .as_ref()
                .is_none_or(|r| r.is_match(&facts.study_description))
    }
}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Config::parse(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses and checks configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let c: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            ConfigError(match line {
                Some(l) => format!("line {l}: {}", one_line(e.message())),
                None => one_line(e.message()),
            })
        })?;
        c.check().map_err(|e| ConfigError(one_line(&e.0)))?;
        Ok(c)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.retention.min_free_mib < MIN_FREE_MIB {
            return Err(ConfigError(format!(
                "[retention] min_free_mib must be at least {MIN_FREE_MIB}: the queue needs room \
                 on the spool's disk to record what is forwarded"
            )));
        }
        if self.dimse.is_none() && self.http.is_none() {
            return Err(ConfigError(
                "nothing to listen on: give [dimse] or [http] (or both)".into(),
            ));
        }
        if let Some(d) = &self.dimse {
            check_ae("[dimse] ae_title", &d.ae_title)?;
            if d.max_pdu < 4096 {
                return Err(ConfigError("[dimse] max_pdu must be at least 4096".into()));
            }
            for n in d.allowed_addresses.iter().flatten() {
                parse_net(n)?;
            }
            if d.max_associations == 0 {
                return Err(ConfigError(
                    "[dimse] max_associations must be at least 1".into(),
                ));
            }
        }
        let wants_tls = self.dimse.as_ref().is_some_and(|d| d.tls.is_some())
            || self.http.as_ref().is_some_and(|h| h.tls.is_some())
            || self.destinations.iter().any(|d| d.tls.is_some());
        if wants_tls && !cfg!(feature = "tls") {
            return Err(ConfigError(
                "TLS is configured but this build of umbra has none: build it with \
                 `--features tls`"
                    .into(),
            ));
        }
        if self.destinations.is_empty() {
            return Err(ConfigError("no [[destination]]".into()));
        }
        if self.routes.is_empty() {
            return Err(ConfigError(
                "no [[route]]: nothing would be forwarded (a route without conditions sends \
                 everything)"
                    .into(),
            ));
        }
        for (i, d) in self.destinations.iter().enumerate() {
            if d.name.is_empty()
                || !d
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ConfigError(format!(
                    "destination name {:?}: use letters, digits, - and _",
                    d.name
                )));
            }
            if self.destinations[..i].iter().any(|o| o.name == d.name) {
                return Err(ConfigError(format!("two destinations named {:?}", d.name)));
            }
            self.options_of(d)?;
            // kind-specific fields (token files are read at start)
            self.target_fields(d)?;
        }
        for r in &self.routes {
            if r.destinations.is_empty() {
                return Err(ConfigError("a [[route]] has no destinations".into()));
            }
            for n in &r.destinations {
                if !self.destinations.iter().any(|d| &d.name == n) {
                    return Err(ConfigError(format!(
                        "a [[route]] names destination {n:?}, which is not defined"
                    )));
                }
            }
            if let Some(re) = &r.study_description {
                regex::RegexBuilder::new(re)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| ConfigError(format!("route study_description: {e}")))?;
            }
        }
        Ok(())
    }

    /// Reads every file the configuration names (tokens, certificates, keys, key files), as
    /// starting would, without binding or writing anything: `umbra serve --check`.
    pub fn preflight(&self) -> Result<(), ConfigError> {
        for d in &self.destinations {
            self.target(d)?;
            if let Some(k) = &d.key_file {
                umbra_files::read_key_file(k).map_err(ConfigError)?;
            }
        }
        if let Some(t) = self.dimse.as_ref().and_then(|d| d.tls.as_ref()) {
            crate::tls::server_config(t)?;
        }
        if let Some(h) = &self.http {
            if let Some(t) = &h.tls {
                crate::tls::server_config(t)?;
            }
            if let Some(f) = &h.token_file {
                read_token(f)?;
            }
        }
        Ok(())
    }

    /// The destination's PS3.15 options.
    pub fn options_of(&self, d: &Destination) -> Result<OptionSet, ConfigError> {
        let set = OptionSet::from_names(&d.options)
            .map_err(|e| ConfigError(format!("destination {:?}: {e}", d.name)))?;
        if set.contains(umbra_core::ProfileOption::CleanRecognizableVisualFeatures) {
            return Err(ConfigError(format!(
                "destination {:?}: clean-recognizable-visual-features works on whole series and \
                 the gateway sees one object at a time; head series a face can be rendered from \
                 are quarantined by the face policy (deface them with umbra deid)",
                d.name
            )));
        }
        Ok(set)
    }

    fn target_fields(&self, d: &Destination) -> Result<Target, ConfigError> {
        let need = |what: &str| {
            ConfigError(format!(
                "destination {:?} (kind {}) needs {what}",
                d.name, d.kind
            ))
        };
        let unexpected = |fields: &[(&str, bool)]| -> Result<(), ConfigError> {
            for (name, present) in fields {
                if *present {
                    return Err(ConfigError(format!(
                        "destination {:?} (kind {}) does not take {name}",
                        d.name, d.kind
                    )));
                }
            }
            Ok(())
        };
        match d.kind.as_str() {
            "dimse" => {
                unexpected(&[
                    ("url", d.url.is_some()),
                    ("token_file", d.token_file.is_some()),
                    ("path", d.path.is_some()),
                ])?;
                let ae_title = d.ae_title.clone().ok_or_else(|| need("ae_title"))?;
                check_ae("destination ae_title", &ae_title)?;
                let calling_ae = d
                    .calling_ae
                    .clone()
                    .or_else(|| self.dimse.as_ref().map(|l| l.ae_title.clone()))
                    .unwrap_or_else(|| "UMBRA".into());
                check_ae("destination calling_ae", &calling_ae)?;
                Ok(Target::Dimse {
                    ae_title,
                    host: d.host.clone().ok_or_else(|| need("host"))?,
                    port: d.port.ok_or_else(|| need("port"))?,
                    calling_ae,
                    tls: None,
                })
            }
            "stow" => {
                unexpected(&[
                    ("ae_title", d.ae_title.is_some()),
                    ("host", d.host.is_some()),
                    ("port", d.port.is_some()),
                    ("path", d.path.is_some()),
                ])?;
                let url = d.url.clone().ok_or_else(|| need("url"))?;
                if !has_scheme(&url, "http://") && !has_scheme(&url, "https://") {
                    return Err(ConfigError(format!(
                        "destination {:?}: url must start with http:// or https://",
                        d.name
                    )));
                }
                if has_scheme(&url, "https://") && !cfg!(feature = "tls") {
                    return Err(ConfigError(format!(
                        "destination {:?}: https needs a build with TLS (`--features tls`)",
                        d.name
                    )));
                }
                if let Some(t) = &d.tls {
                    if !has_scheme(&url, "https://") {
                        return Err(ConfigError(format!(
                            "destination {:?}: tls is given but the url is not https://",
                            d.name
                        )));
                    }
                    // the STOW-RS client verifies the URL's host name, and no other
                    let host = url_host(&url);
                    if t.server_name
                        .as_deref()
                        .is_some_and(|n| !n.eq_ignore_ascii_case(host))
                    {
                        return Err(ConfigError(format!(
                            "destination {:?}: tls server_name cannot differ from the url's host \
                             ({host}) on a stow destination: put the name in the url",
                            d.name
                        )));
                    }
                }
                Ok(Target::Stow {
                    url,
                    token: None,
                    tls: None,
                })
            }
            "folder" => {
                unexpected(&[
                    ("ae_title", d.ae_title.is_some()),
                    ("host", d.host.is_some()),
                    ("port", d.port.is_some()),
                    ("url", d.url.is_some()),
                    ("token_file", d.token_file.is_some()),
                    ("tls", d.tls.is_some()),
                ])?;
                Ok(Target::Folder {
                    path: d.path.clone().ok_or_else(|| need("path"))?,
                })
            }
            other => Err(ConfigError(format!(
                "destination {:?}: unknown kind {other:?} (dimse, stow or folder)",
                d.name
            ))),
        }
    }

    /// The destination's target, with token files read and TLS loaded.
    pub fn target(&self, d: &Destination) -> Result<Target, ConfigError> {
        let mut t = self.target_fields(d)?;
        let named = |e: ConfigError| ConfigError(format!("destination {:?}: {}", d.name, e.0));
        match &mut t {
            Target::Stow { url, token, tls } => {
                if let Some(f) = &d.token_file {
                    *token = Some(read_token(f).map_err(named)?);
                }
                if let Some(c) = &d.tls {
                    *tls = Some(ClientTls::load(c, url_host(url)).map_err(named)?);
                }
            }
            Target::Dimse { host, tls, .. } => {
                if let Some(c) = &d.tls {
                    *tls = Some(ClientTls::load(c, host).map_err(named)?);
                }
            }
            Target::Folder { .. } => {}
        }
        Ok(t)
    }

    /// The routes, compiled, with destination names resolved to indices.
    pub fn compiled_routes(&self) -> Result<Vec<CompiledRoute>, ConfigError> {
        self.routes
            .iter()
            .map(|r| {
                let destinations = r
                    .destinations
                    .iter()
                    .filter_map(|n| self.destinations.iter().position(|d| &d.name == n))
                    .collect();
                let study_description = match &r.study_description {
                    Some(re) => Some(
                        regex::RegexBuilder::new(re)
                            .case_insensitive(true)
                            .build()
                            .map_err(|e| ConfigError(format!("route study_description: {e}")))?,
                    ),
                    None => None,
                };
                Ok(CompiledRoute {
                    destinations,
                    calling_ae: r.calling_ae.clone(),
                    modality: r.modality.clone(),
                    sop_class: r.sop_class.clone(),
                    study_description,
                })
            })
            .collect()
    }
}

/// Messages from parsers (TOML, regular expressions) span lines; users get one.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads a bearer token file: one line, surrounding white space dropped.
pub fn read_token(path: &Path) -> Result<String, ConfigError> {
    let t = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read token file {}: {e}", path.display())))?;
    let t = t.trim().to_string();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConfigError(format!(
            "token file {}: expected one line of printable characters",
            path.display()
        )));
    }
    Ok(t)
}

/// An allowed address: one address, or a network in CIDR notation.
pub fn parse_net(s: &str) -> Result<IpNet, ConfigError> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            ConfigError(format!(
                "[dimse] allowed_addresses: {s:?} is not an address or network"
            ))
        })
}

/// The host of an `http://` or `https://` URL: what follows the scheme, up to the path, without
/// user information or port; an IPv6 address without its brackets.
fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host_port.split(':').next().unwrap_or(""),
    }
}

/// Whether `url` starts with `scheme` (`http://`, `https://`), in any case.
fn has_scheme(url: &str, scheme: &str) -> bool {
    url.get(..scheme.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
}

fn check_ae(what: &str, ae: &str) -> Result<(), ConfigError> {
    let ok = !ae.trim().is_empty()
        && ae.len() <= 16
        && ae.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\');
    if ok {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "{what} {ae:?}: an AE title is 1-16 printable characters without backslash"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
spool = "s"
[dimse]
listen = "127.0.0.1:11112"
ae_title = "UMBRA"
[[destination]]
name = "vendor"
kind = "dimse"
ae_title = "VENDOR"
host = "127.0.0.1"
port = 11113
options = ["retain-safe-private"]
[[destination]]
name = "lab"
kind = "folder"
path = "out"
[[route]]
destinations = ["vendor"]
modality = ["CT", "mr"]
[[route]]
destinations = ["lab"]
study_description = "^research"
"#;

    #[test]
    fn a_good_file_parses_and_routes_match_on_every_condition() {
        let c = Config::parse(GOOD).unwrap();
        let routes = c.compiled_routes().unwrap();
        let mut f = RouteFacts {
            modality: "MR".into(),
            ..Default::default()
        };
        assert!(routes[0].matches(&f));
        assert!(!routes[1].matches(&f));
        f.modality = "US".into();
        f.study_description = "Research brain".into();
        assert!(!routes[0].matches(&f));
        assert!(routes[1].matches(&f));
        match c.target(&c.destinations[0]).unwrap() {
            Target::Dimse { calling_ae, .. } => assert_eq!(calling_ae, "UMBRA"),
            t => panic!("{t:?}"),
        }
    }

    #[test]
    fn routes_match_on_calling_ae_and_sop_class_all_conditions_together() {
        let c = Config::parse(&GOOD.replace(
            "modality = [\"CT\", \"mr\"]",
            "calling_ae = [\"ct_scanner \"]\nsop_class = [\"1.2.840.10008.5.1.4.1.1.2\"]",
        ))
        .unwrap();
        let routes = c.compiled_routes().unwrap();
        let mut f = RouteFacts {
            calling_ae: "CT_SCANNER".into(),
            sop_class: "1.2.840.10008.5.1.4.1.1.2".into(),
            modality: "CT".into(),
            ..Default::default()
        };
        assert!(
            routes[0].matches(&f),
            "AE titles compared without case or padding"
        );
        f.sop_class = "1.2.840.10008.5.1.4.1.1.4".into();
        assert!(!routes[0].matches(&f), "another SOP class");
        f.sop_class = "1.2.840.10008.5.1.4.1.1.2".into();
        f.calling_ae = "MR_SCANNER".into();
        assert!(!routes[0].matches(&f), "another caller");
        f.calling_ae = String::new();
        assert!(!routes[0].matches(&f), "STOW-RS has no calling AE");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn a_stow_destination_takes_tls_only_over_https_and_for_the_urls_host() {
        let stow = |url: &str, tls: &str| {
            format!(
                "spool = \"s\"\n[http]\nlisten = \"127.0.0.1:0\"\n[[destination]]\nname = \"p\"\nkind = \"stow\"\nurl = \"{url}\"\n\
                 tls = {{ ca_file = \"/nonexistent/ca.pem\"{tls} }}\n[[route]]\ndestinations = [\"p\"]\n"
            )
        };
        let e = Config::parse(&stow("http://pacs.example/studies", ""))
            .unwrap_err()
            .0;
        assert!(e.contains("not https://"), "{e}");
        let e = Config::parse(&stow(
            "https://10.0.0.5/studies",
            ", server_name = \"pacs.example\"",
        ))
        .unwrap_err()
        .0;
        assert!(e.contains("server_name"), "{e}");
        // the name of the URL's host itself is fine (the CA file is read at start)
        let c = Config::parse(&stow(
            "https://pacs.example/studies",
            ", server_name = \"pacs.example\"",
        ))
        .unwrap();
        let e = c.preflight().unwrap_err().0;
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn the_host_of_a_url() {
        for (url, host) in [
            ("https://pacs.example/studies", "pacs.example"),
            ("HTTPS://pacs.example:8443/dicomweb/studies", "pacs.example"),
            ("https://user:pw@pacs.example/studies", "pacs.example"),
            ("https://[::1]:8443/studies", "::1"),
            ("http://10.0.0.5", "10.0.0.5"),
            ("https://pacs.example?x=1", "pacs.example"),
        ] {
            assert_eq!(url_host(url), host, "{url}");
        }
        assert!(has_scheme("HTTPS://x", "https://"));
        assert!(!has_scheme("http", "https://"));
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (
                GOOD.replace("retain-safe-private", "keep-everything"),
                "unknown option",
            ),
            (
                GOOD.replace("destinations = [\"lab\"]", "destinations = [\"lap\"]"),
                "\"lap\"",
            ),
            (
                GOOD.replace("kind = \"folder\"", "kind = \"ftp\""),
                "unknown kind",
            ),
            (GOOD.replace("port = 11113", ""), "needs port"),
            (
                GOOD.replace("path = \"out\"", "path = \"out\"\nport = 1"),
                "does not take port",
            ),
            (
                GOOD.replace("spool = \"s\"", "spool = \"s\"\nspoool = 1"),
                "spoool",
            ),
            (
                GOOD.replace("\"UMBRA\"", "\"A_TITLE_LONGER_THAN_16\""),
                "AE title",
            ),
            (GOOD.replace("^research", "(unclosed"), "study_description"),
        ];
        for (text, want) in cases {
            let e = Config::parse(&text).unwrap_err().0;
            assert!(e.contains(want), "{want:?} not in {e:?}");
            assert!(!e.contains('\n'), "one line: {e:?}");
        }
    }

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        let r = Retry::default();
        assert_eq!(r.delay(1), Duration::from_secs(1));
        assert_eq!(r.delay(3), Duration::from_secs(4));
        assert_eq!(r.delay(40), Duration::from_secs(300));
    }
}
