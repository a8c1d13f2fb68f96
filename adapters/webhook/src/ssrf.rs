//! SSRF guard: outbound webhooks may not reach loopback, private, link-local, metadata or other
//! special addresses unless the link allows it — checked when a link is configured and again for
//! every address DNS returns at connect time (so a name re-pointed at 127.0.0.1 is refused too).

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rumgate_gateway::GatewayError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why an address may not be a target, if it may not.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let seg = v6.segments();
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("the unspecified address")
            } else if v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
                Some("a cloud metadata address")
            } else if seg[0] & 0xfe00 == 0xfc00 {
                Some("a private (unique local) address")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if seg[0] & 0xff00 == 0xff00 {
                Some("a multicast address")
            } else {
                None
            }
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("a cloud metadata address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("the unspecified address")
    } else if ip.is_broadcast() || ip.is_multicast() {
        Some("a broadcast or multicast address")
    } else if o[0] == 100 && (64..128).contains(&o[1]) {
        Some("a shared (CGNAT) address")
    } else {
        None
    }
}

fn refusal(what: &str, reason: &str) -> GatewayError {
    GatewayError::Permanent(format!(
        "target {what} is {reason}; set webhook.allow_private_target to allow it"
    ))
}

/// Checks a target URL: http(s) only, and (unless allowed) no special addresses for literal IPs.
pub fn check_target(url: &str, allow_private: bool) -> Result<reqwest::Url, GatewayError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| GatewayError::Permanent(format!("target {url:?} is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(GatewayError::Permanent(format!(
            "target scheme {:?} is not http or https",
            parsed.scheme()
        )));
    }
    let host = parsed
        .host()
        .ok_or_else(|| GatewayError::Permanent(format!("target {url:?} has no host")))?;
    if !allow_private {
        let ip = match host {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(d)
                if d.eq_ignore_ascii_case("localhost") || d.ends_with(".localhost") =>
            {
                return Err(refusal(d, "a loopback name"));
            }
            url::Host::Domain(_) => None,
        };
        if let Some(reason) = ip.and_then(forbidden) {
            return Err(refusal(&host.to_string(), reason));
        }
    }
    Ok(parsed)
}

/// A resolver that drops forbidden addresses (and fails if none is left).
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| forbidden(a.ip()).is_none())
                .collect();
            if allowed.is_empty() {
                let reason = addrs
                    .first()
                    .and_then(|a| forbidden(a.ip()))
                    .unwrap_or("not resolvable");
                return Err(format!(
                    "target {host} resolves to {reason}; set webhook.allow_private_target to allow it"
                )
                .into());
            }
            let it: Addrs = Box::new(allowed.into_iter());
            Ok(it)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_special_addresses() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            assert!(forbidden(ip).is_some(), "{bad} should be forbidden");
        }
        for good in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            let ip: IpAddr = good.parse().unwrap();
            assert!(forbidden(ip).is_none(), "{good} should be allowed");
        }
    }

    #[test]
    fn check_target_explains_refusals() {
        let e = check_target("http://127.0.0.1:9/x", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("loopback") && e.contains("allow_private_target"),
            "{e}"
        );
        assert!(check_target("http://127.0.0.1:9/x", true).is_ok());
        assert!(check_target("http://[::1]/", false).is_err());
        assert!(check_target("http://localhost:8080/", false).is_err());
        assert!(
            check_target("http://169.254.169.254/latest/meta-data", false)
                .unwrap_err()
                .to_string()
                .contains("metadata")
        );
        assert!(check_target("ftp://example.com/", true).is_err());
        assert!(check_target("https://hooks.example.com/x", false).is_ok());
    }
}
