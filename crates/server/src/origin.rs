//! DNS-rebinding and cross-site defence: which `Host` and `Origin` headers
//! may reach the API ([`HostPolicy`], checked by [`crate::auth`] before the
//! token, on every path, `/api/health` included).
//!
//! Threat: a web page in the user's browser. Through DNS rebinding its own
//! name resolves to 127.0.0.1, so the browser sends `Host: evil.example`;
//! a cross-site `fetch` sends `Origin: https://evil.example`. Both get 403.
//!
//! - `Host` (without port) must be `localhost`, a loopback address, the bound
//!   address, any IP address when bound to an unspecified address
//!   (`0.0.0.0` / `::`), or a name given with `tresor serve --allow-host`.
//!   A request without `Host` (HTTP/1.0 tools) is let through: browsers always send one.
//! - `Origin`, when present, must be `http(s)://HOST[:PORT]` with HOST as
//!   above and, for localhost / IP origins, PORT the bound port (another local
//!   web app is another origin); `Origin: null` is refused. Allow-listed names
//!   match on any port.
//!
//! The hook for embedded widgets: [`HostPolicy::add_origin_hook`] registers a
//! function `(origin, request) -> bool`; an `Origin` the rules above refuse is
//! let through when any hook says yes (e.g. the widget module: the request
//! carries a widget token whose allow-list holds this origin). Hooks never
//! widen the `Host` check. The widget module registers its hook once, after
//! [`crate::state::AppState::start`] (`state.hosts.add_origin_hook(...)`).
//!
//! Owns: the header rules. Never: answers CORS preflights or decides tokens.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use axum::extract::Request;
use axum::http::header;

/// A widget-style exception to the `Origin` rule: `(origin, request)` → allow.
pub type OriginHook = Arc<dyn Fn(&str, &Request) -> bool + Send + Sync>;

pub struct HostPolicy {
    bound: RwLock<SocketAddr>,
    names: Vec<String>,
    hooks: RwLock<Vec<OriginHook>>,
}

/// Why a request was refused (the 403's message).
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    Host(String),
    Origin(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Host(h) => write!(f, "Host `{h}` is not this server's address (DNS rebinding defence; allow a name with `tresor serve --allow-host NAME`)"),
            Refused::Origin(o) => write!(f, "Origin `{o}` may not call this API (cross-site defence; allow a name with `tresor serve --allow-host NAME`)"),
        }
    }
}

impl HostPolicy {
    /// Bound to `addr` (its port may be 0 until [`HostPolicy::set_bound`]), with the extra `names`.
    pub fn new(addr: SocketAddr, names: &[String]) -> Self {
        HostPolicy {
            bound: RwLock::new(addr),
            names: names.iter().map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase()).filter(|n| !n.is_empty()).collect(),
            hooks: RwLock::default(),
        }
    }

    /// The address actually bound (the port once the listener has one).
    pub fn set_bound(&self, addr: SocketAddr) {
        *self.bound.write().unwrap_or_else(|p| p.into_inner()) = addr;
    }

    /// Registers an `Origin` exception (see the module doc).
    pub fn add_origin_hook(&self, hook: OriginHook) {
        self.hooks.write().unwrap_or_else(|p| p.into_inner()).push(hook);
    }

    fn bound(&self) -> SocketAddr {
        *self.bound.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `host` (no port, lower case, IPv6 without brackets) names this server.
    fn host_ok(&self, host: &str) -> bool {
        if host == "localhost" || self.names.iter().any(|n| n == host) {
            return true;
        }
        match host.parse::<IpAddr>() {
            Ok(ip) => {
                let b = self.bound().ip();
                ip.is_loopback() || ip == b || b.is_unspecified()
            }
            Err(_) => false,
        }
    }

    /// Checks a request's `Host` and `Origin` headers.
    pub fn check(&self, req: &Request) -> Result<(), Refused> {
        if let Some(h) = req.headers().get(header::HOST) {
            let raw = h.to_str().unwrap_or("");
            let (host, _) = split_host_port(raw);
            if !self.host_ok(&host) {
                return Err(Refused::Host(printable(raw)));
            }
        }
        let Some(o) = req.headers().get(header::ORIGIN) else { return Ok(()) };
        let origin = o.to_str().unwrap_or("");
        if self.origin_ok(origin) {
            return Ok(());
        }
        let hooks = self.hooks.read().unwrap_or_else(|p| p.into_inner()).clone();
        if hooks.iter().any(|h| h(origin, req)) {
            return Ok(());
        }
        Err(Refused::Origin(printable(origin)))
    }

    fn origin_ok(&self, origin: &str) -> bool {
        let Some((scheme, rest)) = origin.split_once("://") else { return false };
        if !matches!(scheme, "http" | "https") || rest.contains('/') {
            return false;
        }
        let (host, port) = split_host_port(rest);
        if self.names.iter().any(|n| *n == host) {
            return true;
        }
        if !self.host_ok(&host) {
            return false;
        }
        let port = port.unwrap_or(if scheme == "https" { 443 } else { 80 });
        let bound = self.bound().port();
        bound == 0 || port == bound
    }
}

/// `host[:port]` / `[v6]:port` → (lower-case host without brackets, port).
fn split_host_port(s: &str) -> (String, Option<u16>) {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']').unwrap_or((rest, ""));
        return (h.to_ascii_lowercase(), after.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h.trim_end_matches('.').to_ascii_lowercase(), p.parse().ok()),
        _ => (s.trim_end_matches('.').to_ascii_lowercase(), None),
    }
}

/// A header value for an error message: printable ASCII, at most 100 characters.
fn printable(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(100).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn req(host: Option<&str>, origin: Option<&str>) -> Request {
        let mut b = Request::get("/v1/models");
        if let Some(h) = host {
            b = b.header(header::HOST, h);
        }
        if let Some(o) = origin {
            b = b.header(header::ORIGIN, o);
        }
        b.body(Body::empty()).unwrap()
    }

    #[test]
    fn loopback_hosts_pass_and_rebound_names_do_not() {
        let p = HostPolicy::new("127.0.0.1:8080".parse().unwrap(), &["tresor.lan".into()]);
        for h in ["127.0.0.1:8080", "localhost:8080", "LOCALHOST", "[::1]:8080", "tresor.lan:8080", "127.0.0.1"] {
            assert_eq!(p.check(&req(Some(h), None)), Ok(()), "{h}");
        }
        for h in ["evil.example:8080", "evil.example", "127.0.0.1.evil.example", "localhost.evil.example:8080", "10.0.0.5:8080"] {
            assert!(matches!(p.check(&req(Some(h), None)), Err(Refused::Host(_))), "{h}");
        }
        assert_eq!(p.check(&req(None, None)), Ok(()), "no Host: not a browser");
    }

    #[test]
    fn origins_must_be_this_server_or_allow_listed() {
        let p = HostPolicy::new("127.0.0.1:8080".parse().unwrap(), &["tresor.lan".into()]);
        for o in ["http://127.0.0.1:8080", "http://localhost:8080", "https://tresor.lan", "http://tresor.lan:3000"] {
            assert_eq!(p.check(&req(Some("127.0.0.1:8080"), Some(o))), Ok(()), "{o}");
        }
        for o in ["https://evil.example", "http://localhost:3000", "null", "file://", "http://127.0.0.1:8080/x", "javascript:1"] {
            assert!(matches!(p.check(&req(Some("127.0.0.1:8080"), Some(o))), Err(Refused::Origin(_))), "{o}");
        }
        // a widget-style hook lets its own origin through, never another
        p.add_origin_hook(Arc::new(|o, r| o == "https://shop.example" && r.uri().path() == "/v1/models"));
        assert_eq!(p.check(&req(Some("127.0.0.1:8080"), Some("https://shop.example"))), Ok(()));
        assert!(p.check(&req(Some("127.0.0.1:8080"), Some("https://evil.example"))).is_err());
        assert!(p.check(&req(Some("evil.example"), Some("https://shop.example"))).is_err(), "hooks never widen Host");
    }

    #[test]
    fn an_unspecified_bind_accepts_ip_hosts_but_not_names() {
        let p = HostPolicy::new("0.0.0.0:8080".parse().unwrap(), &[]);
        assert_eq!(p.check(&req(Some("192.168.1.20:8080"), None)), Ok(()));
        assert!(p.check(&req(Some("evil.example:8080"), None)).is_err());
    }
}
