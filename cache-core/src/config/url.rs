//! The Redis URL: the schemes fred accepts, the topology and TLS they name, replica reads, and the
//! redacted form that logs and errors show.

use std::fmt;

use crate::error::ConfigError;

/// A Redis URL whose password never shows: `Debug` and `Display` print `***` in its place.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(pub(super) String);

/// The URL schemes fred understands, with whether they need TLS.
pub(super) const SCHEMES: [(&str, bool); 12] = [
    ("redis", false),
    ("rediss", true),
    ("redis-cluster", false),
    ("rediss-cluster", true),
    ("redis-sentinel", false),
    ("rediss-sentinel", true),
    ("valkey", false),
    ("valkeys", true),
    ("valkey-cluster", false),
    ("valkeys-cluster", true),
    ("valkey-sentinel", false),
    ("valkeys-sentinel", true),
];

impl RedisUrl {
    /// Checks `url` against the forms fred accepts and wraps it.
    ///
    /// `variable` names the setting in the error.
    pub(super) fn parse(variable: &'static str, url: &str) -> Result<Self, ConfigError> {
        const FORM: &str =
            "a URL such as redis://[[user]:password@]host[:port][/db], rediss://.., \
                            redis-cluster://host:port?node=host:port or \
                            redis-sentinel://host:26379/0?sentinelServiceName=name";
        // Every message below is ours, or the url crate's (which never quotes its input): the
        // URL, or any part of it that may hold a password, is never in it.
        let parsed = url::Url::parse(url).map_err(|e| {
            ConfigError::new(variable, format!("{FORM} (it does not parse: {e})"), None)
        })?;
        let Some(&(_, tls)) = SCHEMES.iter().find(|(s, _)| *s == parsed.scheme()) else {
            // The scheme is named only when written as one (`http://`): a password alone
            // parses as a URL whose "scheme" is the password up to its first colon.
            let written = url
                .get(..parsed.scheme().len() + 3)
                .is_some_and(|p| p.eq_ignore_ascii_case(&format!("{}://", parsed.scheme())));
            let why = if written {
                format!("unknown scheme {:?}", parsed.scheme())
            } else {
                "it does not start with a scheme such as redis://".to_owned()
            };
            return Err(ConfigError::new(variable, format!("{FORM} ({why})"), None));
        };
        if tls && !cfg!(feature = "tls") {
            return Err(ConfigError::new(
                variable,
                format!(
                    "a plain-text URL, or a build of cache-core with the `tls` feature: {:?} needs TLS \
                     and connecting without it would send data in the clear",
                    parsed.scheme()
                ),
                None,
            ));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(ConfigError::new(
                variable,
                format!("{FORM} (no host)"),
                None,
            ));
        }
        // fred quotes a `node` it cannot read in its error, and a node written with credentials
        // holds a password: nodes are checked here, without quoting them.
        let bad_node = parsed.query_pairs().any(|(k, v)| {
            k == "node"
                && !matches!(v.split(':').collect::<Vec<_>>()[..],
                    [host, port] if !host.is_empty() && !host.contains(['@', '/'])
                        && port.parse::<u16>().is_ok())
        });
        if bad_node {
            return Err(ConfigError::new(
                variable,
                format!(
                    "{FORM} (each node=host:port, without credentials: those of the URL apply to \
                     every node)"
                ),
                None,
            ));
        }
        fred::types::config::Config::from_url(url).map_err(|e| {
            // fred's own words, unless they quote something that may be a credential.
            let secrets = url_secrets(&parsed);
            let details = e.details();
            let why = if details.contains('@') || secrets.iter().any(|s| details.contains(s)) {
                "the Redis client does not accept it"
            } else {
                details
            };
            ConfigError::new(variable, format!("{FORM} ({why})"), None)
        })?;
        // Cluster / sentinel settings (deployment guide): `?readFromReplicas=true`.
        read_from_replicas(&parsed).map_err(|e| ConfigError::new(variable, e, None))?;
        Ok(RedisUrl(url.to_owned()))
    }

    /// The URL with its secrets replaced by `***`, for logs and messages: the password, a user
    /// name with no password beside it (`redis://s3cret@host`, a password written without its
    /// colon), and query parameters whose name holds `password` (`sentinelPassword`).
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(url) => redact(&url),
            Err(_) => UNSHOWN_URL.to_owned(),
        }
    }

    /// The URL as given, password included: for handing to the Redis client only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The URL query parameter that sends reads to cluster replicas (feature `replicas`).
pub(crate) const READ_FROM_REPLICAS: &str = "readFromReplicas";

/// Whether `url` asks for reads from replicas (`?readFromReplicas=true`); an error that says
/// what is expected when the value is not a boolean, or when this build or this kind of
/// deployment cannot do it.
pub(crate) fn read_from_replicas(url: &url::Url) -> Result<bool, String> {
    let Some((_, value)) = url.query_pairs().find(|(k, _)| k == READ_FROM_REPLICAS) else {
        return Ok(false);
    };
    let wanted = match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => true,
        "false" | "0" | "no" => false,
        _ => return Err(format!("{READ_FROM_REPLICAS}=true or false")),
    };
    if wanted && !cfg!(feature = "replicas") {
        return Err(format!(
            "{READ_FROM_REPLICAS}=true only in a build of cache-core with the `replicas` feature"
        ));
    }
    if wanted && !url.scheme().ends_with("-cluster") {
        return Err(format!(
            "{READ_FROM_REPLICAS}=true only with a cluster URL (redis-cluster://, rediss-cluster://): \
             the Redis client reads from replicas of a cluster only"
        ));
    }
    Ok(wanted)
}

/// What is shown in place of a URL that cannot be redacted.
pub(super) const UNSHOWN_URL: &str = "<a URL that is not shown>";

/// True for a query parameter that carries a password (`password`, `sentinelPassword`).
fn is_secret_key(key: &str) -> bool {
    key.to_ascii_lowercase().contains("password")
}

/// The secrets `url` carries (see [`RedisUrl::redacted`]), each as written and decoded.
pub(super) fn url_secrets(url: &url::Url) -> Vec<String> {
    let mut secrets: Vec<String> = Vec::new();
    let mut add = |s: String| {
        if !s.is_empty() && !secrets.contains(&s) {
            secrets.push(s);
        }
    };
    let userinfo = url.password().unwrap_or(url.username());
    add(userinfo.to_owned());
    add(percent_decode(userinfo));
    for (key, value) in url.query_pairs() {
        if is_secret_key(&key) {
            add(value.into_owned());
        }
    }
    for pair in url.query().unwrap_or_default().split('&') {
        if let Some((key, value)) = pair.split_once('=') {
            if is_secret_key(&percent_decode(key)) {
                add(value.to_owned());
            }
        }
    }
    secrets
}

/// `text` with its `%XX` escapes decoded, as fred decodes the user name and password of a URL.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&b, tail)) = rest.split_first() {
        let escaped = match tail {
            [hi, lo, ..] if b == b'%' && hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                std::str::from_utf8(&[*hi, *lo])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            }
            _ => None,
        };
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                rest = tail.get(2..).unwrap_or_default();
            }
            None => {
                out.push(b);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` with its secrets (see [`RedisUrl::redacted`]) replaced by `***`; a placeholder when
/// that cannot be done.
fn redact(url: &url::Url) -> String {
    let mut url = url.clone();
    let hidden = if url.password().is_some() {
        url.set_password(Some("***"))
    } else if !url.username().is_empty() {
        url.set_username("***")
    } else {
        Ok(())
    };
    if hidden.is_err() {
        return UNSHOWN_URL.to_owned();
    }
    // Rewritten pair by pair, so that the others stay as they were written.
    if let Some(query) = url.query() {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_key(&percent_decode(key)) => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        let query = pairs.join("&");
        url.set_query(Some(&query));
    }
    url.to_string()
}

/// `text` with every byte but the unreserved ones of RFC 3986 percent-encoded, for the user name
/// or password of a URL. The url crate leaves `%` as it is in them, so `a%41` would reach Redis
/// as `aA`; fred percent-decodes what this writes back to `text`.
pub(super) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
