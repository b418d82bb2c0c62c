//! Outbound connections limited to a component's `allowed_outbound_hosts`: HTTP
//! (`wasi:http/outgoing-handler`) and TCP/UDP sockets (`wasi:sockets`), with the checks other
//! outbound capabilities (Redis) share.
//!
//! Patterns are `scheme://host[:port]`: the scheme may be `*`; the host may be `*`, `*.domain`,
//! a name, an IP address or an IP network (`10.0.0.0/8`); the port may be `*` and defaults to the
//! scheme's (80 for http, 443 for https). `{{ variable }}` templates are filled in at startup.
//! `http://self` allows requests to the application itself by relative URL (`/path`), and
//! `insecure:allow-all` allows everything. As in Spin, `handle` accepts a refused request and
//! returns a future response that resolves to the `HTTP-request-denied` error code (never a
//! trap), so a guest sees the refusal where it awaits the response.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use ipnet::IpNet;
use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi_http::p2::bindings::http::outgoing_handler;
use wasmtime_wasi_http::p2::bindings::http::types::{self, ErrorCode, RequestOptions, Scheme};
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
use wasmtime_wasi_http::WasiHttpCtxView;

use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::WasiCtxBuilder;

use crate::app::{AppError, InstanceState};
use crate::capability::{AppContext, Capability};
use crate::manifest::Component;
use crate::variables::{AppVariables, Template};

/// One `allowed_outbound_hosts` entry as written (templates not yet filled in).
#[derive(Debug, Clone)]
pub struct AllowedHostPattern {
    template: Template,
}

impl AllowedHostPattern {
    /// Parses an entry; one without templates is fully checked here.
    pub fn parse(text: &str) -> Result<Self, String> {
        let template = Template::parse(text)?;
        if template.variables().next().is_none() {
            HostRule::parse(text)?;
        }
        Ok(Self { template })
    }

    /// The application variables the entry refers to.
    pub fn template_variables(&self) -> impl Iterator<Item = &str> {
        self.template.variables()
    }

    /// Fills in templates and parses the result.
    fn resolve(&self, variables: &AppVariables) -> Result<HostRule, String> {
        HostRule::parse(&self.template.render(variables)?)
    }
}

/// Where a component may connect: HTTP requests, TCP/UDP sockets, Redis, MQTT.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    rules: Vec<HostRule>,
}

#[derive(Debug, Clone, PartialEq)]
enum HostRule {
    AllowAll,
    SelfApp,
    Match {
        scheme: Option<String>,
        host: HostMatch,
        port: Option<u16>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum HostMatch {
    Any,
    Subdomain(String),
    Name(String),
    Network(IpNet),
}

impl HostRule {
    fn parse(text: &str) -> Result<Self, String> {
        if text == "insecure:allow-all" {
            return Ok(HostRule::AllowAll);
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| format!("`{text}` needs a scheme, like `https://{text}`"))?;
        if scheme != "*"
            && !(scheme.starts_with(|c: char| c.is_ascii_lowercase())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+.-".contains(c)))
        {
            return Err(format!("`{text}`: invalid scheme `{scheme}`"));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = split_host_port(rest);
        if host == "self" || host == "self.alt" {
            return Ok(HostRule::SelfApp);
        }
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(domain) = host.strip_prefix("*.") {
            HostMatch::Subdomain(domain.to_ascii_lowercase())
        } else if let Ok(net) = host.parse::<IpNet>() {
            HostMatch::Network(net)
        } else if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            HostMatch::Network(IpNet::from(ip))
        } else if !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            HostMatch::Name(host.to_ascii_lowercase())
        } else {
            return Err(format!(
                "`{text}`: `{host}` is not a host name, IP address or network (no paths allowed)"
            ));
        };
        let port = match port {
            Some("*") => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| format!("`{text}`: invalid port `{p}`"))?,
            ),
            None => Some(default_port(scheme).ok_or_else(|| {
                format!("`{text}`: give a port; scheme `{scheme}` has no default port")
            })?),
        };
        let scheme = (scheme != "*").then(|| scheme.to_string());
        Ok(HostRule::Match { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        match self {
            HostRule::AllowAll => true,
            HostRule::SelfApp => false,
            HostRule::Match {
                scheme: s,
                host: h,
                port: p,
            } => {
                s.as_deref().is_none_or(|s| s == scheme)
                    && p.is_none_or(|p| p == port)
                    && match h {
                        HostMatch::Any => true,
                        HostMatch::Subdomain(domain) => host
                            .strip_suffix(domain.as_str())
                            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                        HostMatch::Name(name) => name == host,
                        HostMatch::Network(net) => host
                            .trim_matches(['[', ']'])
                            .parse::<IpAddr>()
                            .is_ok_and(|ip| net.contains(&ip)),
                    }
            }
        }
    }
}

/// Splits `host:port`, keeping bracketed IPv6 addresses and IP networks whole.
fn split_host_port(text: &str) -> (&str, Option<&str>) {
    if text.starts_with('[') {
        return match text.split_once("]:") {
            Some((host, port)) => (&text[..host.len() + 1], Some(port)),
            None => (text, None),
        };
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (text, None),
    }
}

/// The port a scheme implies when an entry gives none (Spin's well-known ports).
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        _ => None,
    }
}

impl AllowList {
    /// A component's `allowed_outbound_hosts`, templates filled in.
    fn of_component(component: &Component, cx: &AppContext<'_>) -> Result<Arc<Self>, String> {
        Self::resolve(&component.allowed_outbound_hosts, cx.variables)
            .map(Arc::new)
            .map_err(|e| format!("allowed_outbound_hosts: {e}"))
    }

    /// Resolves a component's patterns against the application variables.
    pub fn resolve(
        patterns: &[AllowedHostPattern],
        variables: &AppVariables,
    ) -> Result<Self, String> {
        let rules = patterns
            .iter()
            .map(|p| p.resolve(variables))
            .collect::<Result<_, _>>()?;
        Ok(Self { rules })
    }

    /// Whether a request to `scheme://host:port` may go out.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.to_ascii_lowercase();
        self.rules.iter().any(|r| r.allows(scheme, &host, port))
    }

    /// Whether `scheme://host:port` may be reached, the host given by name or IP address
    /// (Redis, MQTT and other clients that are given an address).
    pub fn allows_address(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.allows(scheme, host.trim_matches(['[', ']']), port)
    }

    /// Whether some entry could allow `scheme` (`tcp`, `udp`): the WASI socket kind is enabled.
    fn uses(&self, scheme: &str) -> bool {
        self.rules.iter().any(|r| match r {
            HostRule::AllowAll => true,
            HostRule::SelfApp => false,
            HostRule::Match { scheme: s, .. } => s.as_deref().is_none_or(|s| s == scheme),
        })
    }

    /// Whether an entry for `scheme` names a host (the guest then needs name lookups).
    fn names_hosts(&self, scheme: &str) -> bool {
        self.rules.iter().any(|r| match r {
            HostRule::AllowAll => true,
            HostRule::SelfApp => false,
            HostRule::Match {
                scheme: s, host, ..
            } => {
                s.as_deref().is_none_or(|s| s == scheme)
                    && matches!(host, HostMatch::Name(_) | HostMatch::Subdomain(_))
            }
        })
    }

    /// Whether a socket may reach `addr` over `scheme` (`tcp`, `udp`): an entry whose network
    /// holds the address, or whose host name resolves to it.
    async fn allows_socket(&self, scheme: &str, addr: SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        for rule in &self.rules {
            let HostRule::Match {
                scheme: s,
                host,
                port,
            } = rule
            else {
                if matches!(rule, HostRule::AllowAll) {
                    return true;
                }
                continue;
            };
            if s.as_deref().is_some_and(|s| s != scheme) || port.is_some_and(|p| p != addr.port()) {
                continue;
            }
            let matched = match host {
                HostMatch::Any => true,
                HostMatch::Network(net) => net.contains(&ip),
                HostMatch::Name(name) => tokio::net::lookup_host((name.as_str(), addr.port()))
                    .await
                    .is_ok_and(|mut found| found.any(|a| a.ip().to_canonical() == ip)),
                // A wildcard domain names no address the socket could be checked against.
                HostMatch::Subdomain(_) => false,
            };
            if matched {
                return true;
            }
        }
        false
    }

    /// Whether relative-URL requests to the application itself are allowed.
    pub fn allows_self(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r, HostRule::SelfApp | HostRule::AllowAll))
    }
}

/// The application's own listening address, for `self` requests; set once serving starts.
pub type SelfAddress = Arc<OnceLock<SocketAddr>>;

/// The outbound HTTP capability: each component's allow-list, and where the application
/// itself listens (for `self` requests).
#[derive(Default)]
pub struct OutboundHttpPolicy {
    self_address: SelfAddress,
}

impl OutboundHttpPolicy {
    /// Records where the application is served, for `self` requests.
    pub fn set_address(&self, addr: SocketAddr) {
        let _ = self.self_address.set(addr);
    }
}

/// What one component may reach.
pub struct ComponentOutbound {
    allowed: Arc<AllowList>,
    self_address: SelfAddress,
}

impl ComponentOutbound {
    /// The component's `allowed_outbound_hosts`, which the other outbound capabilities (Redis,
    /// MQTT) check against too, as Spin's read its outbound-networking factor.
    pub fn allowed(&self) -> &AllowList {
        &self.allowed
    }
}

impl Capability for OutboundHttpPolicy {
    type Component = ComponentOutbound;

    fn configure_app(_cx: &AppContext<'_>) -> Result<Self, AppError> {
        Ok(Self::default())
    }

    fn configure_component(
        &self,
        component: &Component,
        cx: &AppContext<'_>,
    ) -> Result<ComponentOutbound, String> {
        Ok(ComponentOutbound {
            allowed: AllowList::of_component(component, cx)?,
            self_address: self.self_address.clone(),
        })
    }

    /// TCP and UDP sockets (`wasi:sockets`) as Spin allows them: outbound only, to what
    /// `tcp://` and `udp://` entries name; everything else is `access-denied`.
    fn prepare_wasi(component: &ComponentOutbound, wasi: &mut WasiCtxBuilder) {
        let allowed = component.allowed.clone();
        wasi.allow_tcp(allowed.uses("tcp"))
            .allow_udp(allowed.uses("udp"))
            .allow_ip_name_lookup(allowed.names_hosts("tcp") || allowed.names_hosts("udp"));
        wasi.socket_addr_check(move |addr, usage| {
            let allowed = allowed.clone();
            Box::pin(async move {
                match usage {
                    // A connect first binds to the wildcard address with port 0; a guest may
                    // not bind anything else (no servers).
                    SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                        addr.ip().is_unspecified() && addr.port() == 0
                    }
                    SocketAddrUse::TcpConnect => allowed.allows_socket("tcp", addr).await,
                    SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => {
                        allowed.allows_socket("udp", addr).await
                    }
                    SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => false,
                }
            })
        });
    }

    fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
        add_to_linker(linker, |s| {
            let parts = s.parts::<OutboundHttpPolicy>();
            OutboundHttp {
                http: WasiHttpCtxView {
                    ctx: parts.http,
                    table: parts.table,
                    hooks: Default::default(),
                },
                allowed: &parts.component.allowed,
                self_address: &parts.component.self_address,
            }
        })
    }
}

/// The `wasi:http` context of one request plus the policy its outbound requests obey.
pub struct OutboundHttp<'a> {
    /// wasmtime's `wasi:http` state for the instance.
    pub http: WasiHttpCtxView<'a>,
    /// The component's allow-list.
    pub allowed: &'a AllowList,
    /// Where the application listens.
    pub self_address: &'a SelfAddress,
}

/// The `wasi:http` release whose `outgoing-handler.handle` [`add_to_linker`] replaces; guests
/// importing any compatible 0.2 release are served by it.
const OUTGOING_HANDLER: &str = "wasi:http/outgoing-handler@0.2.12";

impl OutboundHttp<'_> {
    /// Applies the allow-list to a request; relative URLs are pointed at the app itself.
    fn authorize(&mut self, request: &Resource<HostOutgoingRequest>) -> Result<(), ErrorCode> {
        let req = self
            .http
            .table
            .get_mut(request)
            .map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?;
        // A relative URL arrives without a host (spin-sdk sends `:443` for it).
        let authority = req.authority.as_deref().unwrap_or_default();
        let (host, port) = split_host_port(authority);
        if host.is_empty() {
            let addr = self
                .self_address
                .get()
                .filter(|_| self.allowed.allows_self())
                .ok_or(ErrorCode::HttpRequestDenied)?;
            req.scheme = Some(Scheme::Http);
            req.authority = Some(addr.to_string());
            return Ok(());
        }
        let scheme = match &req.scheme {
            None | Some(Scheme::Https) => "https",
            Some(Scheme::Http) => "http",
            Some(Scheme::Other(other)) => other.as_str(),
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| ErrorCode::HttpRequestUriInvalid)?,
            None => default_port(scheme).ok_or(ErrorCode::HttpRequestUriInvalid)?,
        };
        if self.allowed.allows(scheme, host, port) {
            Ok(())
        } else {
            tracing::warn!(
                scheme,
                host,
                port,
                "outbound request refused by allowed_outbound_hosts"
            );
            Err(ErrorCode::HttpRequestDenied)
        }
    }
}

/// Replaces wasmtime's `outgoing-handler.handle` (already in `linker`) with one that applies
/// the allow-list first; `get` borrows the request's view from the store data.
fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> OutboundHttp<'_>,
) -> wasmtime::Result<()> {
    type Args = (
        Resource<HostOutgoingRequest>,
        Option<Resource<RequestOptions>>,
    );
    type Answer = (Result<Resource<HostFutureIncomingResponse>, ErrorCode>,);
    linker.allow_shadowing(true);
    linker.instance(OUTGOING_HANDLER)?.func_wrap(
        "handle",
        move |mut caller: StoreContextMut<'_, T>,
              (request, options): Args|
              -> wasmtime::Result<Answer> {
            let mut view = get(caller.data_mut());
            let result = match view.authorize(&request) {
                Ok(()) => outgoing_handler::Host::handle(&mut view.http, request, options),
                Err(ErrorCode::HttpRequestDenied) => {
                    view.http.table.delete(request)?;
                    let refused = HostFutureIncomingResponse::Ready(Err(
                        wasmtime_wasi_http::Error::HttpRequestDenied,
                    ));
                    return Ok((Ok(view.http.table.push(refused)?),));
                }
                Err(code) => {
                    view.http.table.delete(request)?;
                    Err(code.into())
                }
            };
            match result {
                Ok(response) => Ok((Ok(response),)),
                Err(e) => Ok((Err(types::Host::convert_error_code(&mut view.http, e)?),)),
            }
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(patterns: &[&str]) -> AllowList {
        let patterns: Vec<_> = patterns
            .iter()
            .map(|p| AllowedHostPattern::parse(p).unwrap())
            .collect();
        AllowList::resolve(&patterns, &AppVariables::default()).unwrap()
    }

    #[test]
    fn matches_scheme_host_and_port() {
        let l = list(&[
            "https://api.example.com",
            "http://localhost:*",
            "*://*.shop.test:8080",
        ]);
        assert!(l.allows("https", "api.example.com", 443));
        assert!(l.allows("https", "API.example.com", 443));
        assert!(!l.allows("http", "api.example.com", 80));
        assert!(!l.allows("https", "api.example.com", 8443));
        assert!(l.allows("http", "localhost", 1234));
        assert!(l.allows("https", "a.shop.test", 8080));
        assert!(!l.allows("https", "shop.test", 8080));
        assert!(!l.allows("https", "evilshop.test", 8080));
        assert!(!l.allows_self());
    }

    #[test]
    fn well_known_schemes_have_default_ports() {
        let l = list(&["redis://cache.local", "mqtt://broker", "tcp://10.0.0.0/8:*"]);
        assert!(l.allows_address("redis", "cache.local", 6379));
        assert!(!l.allows_address("redis", "cache.local", 6380));
        assert!(l.allows_address("mqtt", "broker", 1883));
        assert!(l.uses("tcp") && !l.uses("udp"));
        assert!(
            AllowedHostPattern::parse("tcp://db").is_err(),
            "tcp needs a port"
        );
    }

    #[tokio::test]
    async fn sockets_match_networks_and_names() {
        let l = list(&["tcp://127.0.0.0/8:5432", "udp://localhost:53"]);
        let at = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert!(l.allows_socket("tcp", at("127.0.0.9:5432")).await);
        assert!(!l.allows_socket("tcp", at("127.0.0.9:5433")).await);
        assert!(!l.allows_socket("udp", at("127.0.0.9:5432")).await);
        assert!(!l.allows_socket("tcp", at("10.0.0.1:5432")).await);
        // A name entry matches the addresses it resolves to.
        assert!(l.allows_socket("udp", at("127.0.0.1:53")).await);
        assert!(!list(&[]).allows_socket("tcp", at("127.0.0.1:1")).await);
    }

    #[test]
    fn matches_ip_networks_and_self() {
        let l = list(&["http://10.0.0.0/8:*", "http://[::1]:3000", "http://self"]);
        assert!(l.allows("http", "10.1.2.3", 80));
        assert!(!l.allows("http", "11.1.2.3", 80));
        assert!(l.allows("http", "[::1]", 3000));
        assert!(l.allows_self());
        assert!(list(&["insecure:allow-all"]).allows("ftp", "x", 1));
    }

    #[test]
    fn rejects_bad_patterns() {
        for bad in [
            "example.com",
            "https://example.com/path",
            "ftp://cache",
            "https://exa mple.com",
            "https://x:port",
        ] {
            assert!(AllowedHostPattern::parse(bad).is_err(), "{bad}");
        }
    }
}
