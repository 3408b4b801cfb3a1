//! `[proxy]` and `[client_version]`: process-wide settings.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use regex::Regex;
use toml::Spanned;

use super::checks::{self, header_name};
use super::compile::Ctx;
use super::raw::{RawClientVersion, RawProxy, Scalar, Section, StringOrList};
use crate::routing::{has_version_group, UpstreamId, VersionSource};
use crate::settings::{Engine, LogFormat, ProxySettings};

pub(crate) const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);
pub(crate) const DEFAULT_DATA_DIR: &str = "./ficus-data";
pub(crate) const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(10);
pub(crate) const DEFAULT_VERSION_HEADER: &str = "x-client-version";
/// ficus's own HTTP/1 engine; Pingora's proxy path stays selectable for one more cycle.
pub(crate) const DEFAULT_ENGINE: Engine = Engine::H1;

/// The settings and the default upstream; `[proxy]` is required for `default`.
pub(crate) fn settings(
    ctx: &mut Ctx,
    section: &Section<Spanned<RawProxy>>,
) -> Option<(ProxySettings, UpstreamId)> {
    let raw = match section {
        Section::Parsed(raw) => raw,
        Section::Rejected => return None,
        Section::Missing => {
            ctx.problems.hinted(
                0..0,
                "missing [proxy] section",
                "add [proxy] with default = \"NAME\", the upstream for requests that no route matches",
            );
            return None;
        }
    };
    let RawProxy {
        listen,
        admin,
        admin_token_env,
        default,
        data_dir,
        grace_period,
        shutdown_delay,
        threads,
        log_format,
        engine,
        header_timeout,
        body_timeout,
        keepalive_timeout,
        max_header_size,
        max_connections,
        // Resolved with the plugin instances, by `compile::validate`.
        plugins: _,
        // Reloadable, so kept in the table: `compile::validate`.
        trusted_proxies: _,
        allow_encoded_slash: _,
    } = raw.get_ref();

    let listen = listen_addresses(ctx, listen.as_ref());
    let admin_addr = match admin {
        None => Some(None),
        Some(a) => socket_addr(ctx, a, "admin").map(Some),
    };
    let admin_token_env = match admin_token_env {
        None => Some(None),
        Some(name) => ctx.parse(name, checks::env_name).map(Some),
    };
    if let (Some(Some(addr)), Some(None), Some(a)) = (admin_addr, &admin_token_env, admin) {
        if !addr.ip().is_loopback() {
            ctx.problems.hinted(
                a.span(),
                format!("the admin API on {addr}, not a loopback address, needs `admin_token_env`"),
                "set admin_token_env = \"FICUS_ADMIN_TOKEN\" (and that variable), or bind admin to 127.0.0.1",
            );
        }
    }
    let default_upstream = match default {
        Some(name) => ctx.upstream(name),
        None => {
            ctx.problems.missing(
                raw.span(),
                &["default"],
                "[proxy] has no `default`",
                "add default = \"NAME\", the upstream for requests that no route matches",
            );
            None
        }
    };
    let data_dir = match data_dir {
        None => Some(PathBuf::from(DEFAULT_DATA_DIR)),
        Some(d) if d.get_ref().is_empty() => {
            ctx.problems.error(d.span(), "data_dir cannot be empty");
            None
        }
        Some(d) => Some(PathBuf::from(d.get_ref())),
    };
    let grace_period = ctx.duration(grace_period.as_ref(), DEFAULT_GRACE_PERIOD);
    let delay_parsed = ctx.duration(shutdown_delay.as_ref(), Duration::ZERO);
    if let (Some(grace), Some(delay), Some(raw_delay)) = (
        grace_period,
        delay_parsed,
        shutdown_delay.as_ref().map(|d| d.span()),
    ) {
        if !delay.is_zero() && delay >= grace {
            ctx.problems.hinted(
                raw_delay,
                format!("shutdown_delay ({delay:?}) must be shorter than grace_period ({grace:?})"),
                "the delay is spent inside the grace period: SIGTERM turns /readyz to 503, keeps serving for shutdown_delay, then drains requests in flight for the rest",
            );
        }
    }
    let threads = match threads {
        None => Some(None),
        Some(t) => {
            let count = match t.get_ref() {
                Scalar::Integer(n) => usize::try_from(*n).ok().filter(|n| *n >= 1),
                Scalar::Float(_) | Scalar::String(_) => None,
            };
            if count.is_none() {
                ctx.problems.hinted(
                    t.span(),
                    format!(
                        "threads must be a whole number of at least 1, got {}",
                        t.get_ref()
                    ),
                    "leave it out to use one thread per core",
                );
            }
            count.map(Some)
        }
    };
    let log_format = match log_format
        .as_ref()
        .map(|f| (f.get_ref().as_str(), f.span()))
    {
        None | Some(("text", _)) => Some(LogFormat::Text),
        Some(("json", _)) => Some(LogFormat::Json),
        Some((other, span)) => {
            ctx.problems.hinted(
                span,
                format!("unknown log_format {other:?}"),
                "write \"text\" or \"json\"",
            );
            None
        }
    };
    let engine = engine_setting(ctx, engine.as_ref());
    let limits = super::limits::client_limits(
        ctx,
        &super::limits::RawLimits {
            header_timeout: header_timeout.as_ref(),
            body_timeout: body_timeout.as_ref(),
            keepalive_timeout: keepalive_timeout.as_ref(),
            max_header_size: max_header_size.as_ref(),
            max_connections: max_connections.as_ref(),
        },
    );

    Some((
        ProxySettings {
            listen: listen?,
            admin: admin_addr?,
            admin_token_env: admin_token_env?,
            data_dir: data_dir?,
            grace_period: grace_period?,
            shutdown_delay: delay_parsed?,
            threads: threads?,
            log_format: log_format?,
            engine: engine?,
            limits: limits?,
        },
        default_upstream?,
    ))
}

/// `engine = "pingora" | "h1"`, read as `log_format` is; absent means [`DEFAULT_ENGINE`].
fn engine_setting(ctx: &mut Ctx, engine: Option<&Spanned<String>>) -> Option<Engine> {
    match engine.map(|e| (e.get_ref().as_str(), e.span())) {
        None => Some(DEFAULT_ENGINE),
        Some(("pingora", _)) => Some(Engine::Pingora),
        Some(("h1", _)) => Some(Engine::H1),
        Some((other, span)) => {
            ctx.problems.hinted(
                span,
                format!("unknown engine {other:?}"),
                "write \"pingora\" (Pingora's proxy path) or \"h1\" (ficus's own HTTP/1 engine)",
            );
            None
        }
    }
}

fn listen_addresses(
    ctx: &mut Ctx,
    listen: Option<&Spanned<StringOrList>>,
) -> Option<Vec<SocketAddr>> {
    let Some(listen) = listen else {
        return Some(vec![DEFAULT_LISTEN]);
    };
    let items: Vec<Spanned<String>> = match listen.get_ref() {
        StringOrList::One(s) => vec![Spanned::new(listen.span(), s.clone())],
        StringOrList::Many(list) => list.clone(),
    };
    if items.is_empty() {
        ctx.problems.hinted(
            listen.span(),
            "listen has no addresses",
            "write listen = \"0.0.0.0:8080\"",
        );
        return None;
    }
    let addrs: Vec<Option<SocketAddr>> = items
        .iter()
        .map(|a| socket_addr(ctx, a, "listen"))
        .collect();
    addrs.into_iter().collect()
}

fn socket_addr(ctx: &mut Ctx, addr: &Spanned<String>, what: &str) -> Option<SocketAddr> {
    match addr.get_ref().parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            ctx.problems.hinted(
                addr.span(),
                format!("invalid {what} address {:?}", addr.get_ref()),
                "write IP:PORT, like \"0.0.0.0:8080\" or \"127.0.0.1:9090\"",
            );
            None
        }
    }
}

pub(crate) fn version_source(
    ctx: &mut Ctx,
    section: &Section<Spanned<RawClientVersion>>,
) -> Option<VersionSource> {
    let raw = match section {
        Section::Missing => return Some(VersionSource::default()),
        Section::Rejected => return None,
        Section::Parsed(raw) => raw,
    };
    let RawClientVersion { header, user_agent } = raw.get_ref();
    let header = match header {
        None => Some(HeaderName::from_static(DEFAULT_VERSION_HEADER)),
        Some(h) => ctx.parse(h, header_name),
    };
    let user_agent = match user_agent {
        None => Some(None),
        Some(pattern) => ctx.parse(pattern, user_agent_regex).map(Some),
    };
    Some(VersionSource {
        header: header?,
        user_agent: user_agent?,
    })
}

fn user_agent_regex(pattern: &str) -> Result<Regex, String> {
    let re = regex::RegexBuilder::new(pattern)
        .size_limit(crate::routing::pattern::MAX_REGEX_BYTES)
        .build()
        .map_err(|e| format!("bad user_agent regex: {e}"))?;
    if !has_version_group(&re) {
        return Err(format!(
            "user_agent regex {pattern:?} has no `version` group; capture the version with (?<version>...), like '^MyApp/(?<version>[0-9.]+)'"
        ));
    }
    Ok(re)
}

/// `trusted_proxies = ["10.0.0.0/8", "192.0.2.7"]`: CIDRs, or single addresses.
pub(crate) fn trusted(
    ctx: &mut Ctx,
    list: Option<&[Spanned<String>]>,
) -> Option<Vec<ipnet::IpNet>> {
    let parsed: Vec<Option<ipnet::IpNet>> = list
        .unwrap_or_default()
        .iter()
        .map(|v| {
            ctx.parse(v, |s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("{s:?} is not a CIDR (10.0.0.0/8) or an IP address"))
            })
        })
        .collect();
    parsed.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_regex_needs_a_version_group() {
        assert!(user_agent_regex("^MyApp/(?<version>[0-9.]+)").is_ok());
        assert!(user_agent_regex("^MyApp/([0-9.]+)")
            .unwrap_err()
            .contains("`version` group"));
        assert!(user_agent_regex("^MyApp/(")
            .unwrap_err()
            .starts_with("bad user_agent regex"));
    }
}
