//! [`HttpConfig`]: the token, the read-only switch, and the Host and Origin
//! allowlists of the router.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::error::{Error, Result};

/// The default limit on request bodies: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// How [`router`](super::router) guards the API.
///
/// The defaults suit a server bound to the loopback interface: no token,
/// state-changing requests allowed from the server's own origin, and a Host
/// allowlist of `localhost`, `127.0.0.1` and `[::1]` (on the bound port,
/// once [`HttpConfig::for_addr`] has told it).
///
/// ```
/// use replayflow::http::HttpConfig;
///
/// let addr = "0.0.0.0:8080".parse().unwrap();
/// // A non-loopback address needs a token.
/// assert!(HttpConfig::for_addr(addr).check_bind(addr).is_err());
/// let config = HttpConfig::for_addr(addr)
///     .token("a long random secret")
///     .allow_host("workflows.example.com");
/// assert!(config.check_bind(addr).is_ok());
/// // The token never shows in logs.
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct HttpConfig {
    pub(crate) token: Option<String>,
    pub(crate) read_only: bool,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) allowed_origins: Vec<String>,
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) max_body_bytes: usize,
    pub(crate) dashboard: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            token: None,
            read_only: false,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            addr: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            dashboard: true,
        }
    }
}

impl HttpConfig {
    /// The defaults, for a server whose port is not known to the router:
    /// the loopback host names are accepted on any port.
    pub fn new() -> Self {
        HttpConfig::default()
    }

    /// The defaults for a server bound to `addr`: the loopback host names
    /// on its port, and the address itself when it is a specific one.
    pub fn for_addr(addr: SocketAddr) -> Self {
        HttpConfig {
            addr: Some(addr),
            ..HttpConfig::default()
        }
    }

    /// Requires `Authorization: Bearer <token>` on every `/api/` request.
    /// The token is compared in constant time and never logged.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Answers every state-changing request (cancel, resume, restart, start)
    /// with 403.
    pub fn read_only(mut self, on: bool) -> Self {
        self.read_only = on;
        self
    }

    /// Accepts requests whose `Host` header names `host`: `name` (any port)
    /// or `name:port`. Adds to the loopback defaults. `*` accepts any host:
    /// only for a server behind a proxy that checks it.
    pub fn allow_host(mut self, host: impl Into<String>) -> Self {
        self.allowed_hosts
            .push(host.into().trim().to_ascii_lowercase());
        self
    }

    /// Accepts state-changing requests whose `Origin` is `origin`
    /// (`https://ops.example.com`), besides the server's own origin.
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        let origin = origin.into();
        self.allowed_origins
            .push(origin.trim().trim_end_matches('/').to_ascii_lowercase());
        self
    }

    /// The largest request body accepted (default 1 MiB); larger ones get 413.
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Whether the router serves the web dashboard at `/` (default on).
    pub fn dashboard(mut self, on: bool) -> Self {
        self.dashboard = on;
        self
    }

    /// Whether a bearer token is required.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether state-changing requests are refused.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Checks that serving on `addr` is safe: a non-loopback address needs
    /// a token, and a token must not be empty.
    pub fn check_bind(&self, addr: SocketAddr) -> Result<()> {
        match &self.token {
            Some(token) if token.trim().is_empty() => {
                Err(Error::InvalidOption("the bearer token is empty".into()))
            }
            Some(_) => Ok(()),
            None if addr.ip().is_loopback() => Ok(()),
            None => Err(Error::InvalidOption(format!(
                "binding to {addr}, a non-loopback address, needs a bearer token (--token or WORKFLOW_TOKEN)"
            ))),
        }
    }

    /// Whether the `Host` header value `host` is allowed.
    pub(crate) fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let (name, port) = split_host(&host);
        let port_ok = |entry_port: Option<u16>| match (entry_port, port) {
            (None, _) => true,
            (Some(want), Some(got)) => want == got,
            // No port in the header means the scheme's default.
            (Some(want), None) => want == 80 || want == 443,
        };
        let loopback = ["localhost", "127.0.0.1", "[::1]"];
        let bound_port = self.addr.map(|a| a.port()).filter(|p| *p != 0);
        if loopback.contains(&name) && port_ok(bound_port) {
            return true;
        }
        if let Some(addr) = self.addr {
            let ip = addr.ip();
            if !ip.is_unspecified()
                && !ip.is_loopback()
                && name == ip_host(ip)
                && port_ok(bound_port)
            {
                return true;
            }
        }
        self.allowed_hosts.iter().any(|entry| {
            if entry == "*" {
                return true;
            }
            let (entry_name, entry_port) = split_host(entry);
            entry_name == name && port_ok(entry_port)
        })
    }

    /// Whether `origin` may send state-changing requests to a server reached
    /// as `host` (its own origin is `http://host` or `https://host`).
    pub(crate) fn origin_allowed(&self, origin: &str, host: &str) -> bool {
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        let host = host.trim().to_ascii_lowercase();
        if origin == format!("http://{host}") || origin == format!("https://{host}") {
            return true;
        }
        self.allowed_origins.contains(&origin)
    }
}

/// Splits `name:port` (`[::1]:8080` included); the port is `None` when
/// absent or not a number.
fn split_host(host: &str) -> (&str, Option<u16>) {
    let split_at = if host.starts_with('[') {
        host.find("]:").map(|i| i + 1)
    } else {
        host.rfind(':')
    };
    match split_at {
        Some(i) => match host[i + 1..].parse() {
            Ok(port) => (&host[..i], Some(port)),
            Err(_) => (host, None),
        },
        None => (host, None),
    }
}

fn ip_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("read_only", &self.read_only)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("allowed_origins", &self.allowed_origins)
            .field("addr", &self.addr)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("dashboard", &self.dashboard)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_hosts_on_the_bound_port() {
        let c = HttpConfig::for_addr(addr("127.0.0.1:8080"));
        for ok in [
            "localhost:8080",
            "127.0.0.1:8080",
            "[::1]:8080",
            "LOCALHOST:8080",
        ] {
            assert!(c.host_allowed(ok), "{ok}");
        }
        for bad in [
            "localhost:9090",
            "localhost",
            "evil.com:8080",
            "127.0.0.1.evil.com:8080",
            "",
            "[::1]",
            "localhost:80",
        ] {
            assert!(!c.host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn any_port_when_unknown_and_explicit_hosts() {
        let c = HttpConfig::new()
            .allow_host("ops.example.com")
            .allow_host("box:9000");
        assert!(c.host_allowed("localhost:1234"));
        assert!(c.host_allowed("localhost"));
        assert!(c.host_allowed("ops.example.com"));
        assert!(c.host_allowed("ops.example.com:8443"));
        assert!(c.host_allowed("box:9000"));
        assert!(!c.host_allowed("box:9001"));
        assert!(!c.host_allowed("evil.com"));
        assert!(HttpConfig::new().allow_host("*").host_allowed("anything:1"));
    }

    #[test]
    fn a_specific_bind_address_is_its_own_host() {
        let c = HttpConfig::for_addr(addr("192.168.1.5:8080")).token("t");
        assert!(c.host_allowed("192.168.1.5:8080"));
        assert!(!c.host_allowed("192.168.1.6:8080"));
        let c = HttpConfig::for_addr(addr("[fe80::1]:8080")).token("t");
        assert!(c.host_allowed("[fe80::1]:8080"));
    }

    #[test]
    fn own_origin_and_listed_ones() {
        let c = HttpConfig::new().allow_origin("https://ops.example.com/");
        assert!(c.origin_allowed("http://localhost:8080", "localhost:8080"));
        assert!(c.origin_allowed("https://ops.example.com", "localhost:8080"));
        assert!(!c.origin_allowed("http://localhost:9999", "localhost:8080"));
        assert!(!c.origin_allowed("null", "localhost:8080"));
        assert!(!c.origin_allowed("http://evil.com", "localhost:8080"));
    }

    #[test]
    fn non_loopback_binds_need_a_token() {
        assert!(HttpConfig::new().check_bind(addr("127.0.0.1:0")).is_ok());
        assert!(HttpConfig::new().check_bind(addr("[::1]:0")).is_ok());
        assert!(HttpConfig::new().check_bind(addr("0.0.0.0:80")).is_err());
        assert!(HttpConfig::new().check_bind(addr("[::]:80")).is_err());
        assert!(
            HttpConfig::new()
                .token(" ")
                .check_bind(addr("127.0.0.1:0"))
                .is_err()
        );
        assert!(
            HttpConfig::new()
                .token("s3cret")
                .check_bind(addr("0.0.0.0:80"))
                .is_ok()
        );
    }
}
