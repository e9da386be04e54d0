//! Extractors that answer in our error shape: JSON bodies, query strings, path ids, and the
//! client's IP address (trusting `X-Forwarded-For` only from configured proxies).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::AppError;
use crate::state::AppState;

/// JSON body in, JSON body out; malformed bodies become `bad_request` in our shape.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // axum checks the content type, reads the body under its limit and checks the
        // syntax; the text is then looked at for NUL before it becomes `T`.
        let axum::Json(raw) = axum::Json::<Box<RawValue>>::from_request(req, state).await?;
        if crate::domain::json::has_nul(raw.get().as_bytes()) {
            return Err(AppError::BadRequest("text must not contain NUL characters".into()));
        }
        let v = serde_json::from_str(raw.get()).map_err(|e| {
            AppError::BadRequest(format!("Failed to deserialize the JSON body into the target type: {e}"))
        })?;
        Ok(AppJson(v))
    }
}

impl<T: Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Query string, with our error shape on failure.
#[derive(Debug, Clone, Default)]
pub struct AppQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for AppQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // `%00` is a NUL once decoded: no parameter needs one, and PostgreSQL cannot take it.
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(AppError::BadRequest("query parameters must not contain NUL characters".into()));
        }
        let axum::extract::Query(v) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(AppQuery(v))
    }
}

/// Path parameters; an unparseable id is a 404 (there is no such thing), not a 400.
#[derive(Debug, Clone)]
pub struct AppPath<T>(pub T);

impl<T, S> FromRequestParts<S> for AppPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.path().contains("%00") {
            return Err(AppError::NotFound); // no such thing has a NUL in its name
        }
        let axum::extract::Path(v) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(AppPath(v))
    }
}

/// The client's address: the TCP peer, or — when the peer is a trusted proxy — the
/// right-most address in `X-Forwarded-For` that is not itself a trusted proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// Resolves the client address from the peer and the forwarded chain.
    pub fn resolve(peer: IpAddr, forwarded: Option<&str>, trusted: &[ipnet::IpNet]) -> IpAddr {
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
        if !is_trusted(&peer) {
            return peer;
        }
        let Some(chain) = forwarded else { return peer };
        for hop in chain.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if is_trusted(&ip) => continue,
                Ok(ip) => return ip,
                Err(_) => return peer,
            }
        }
        peer
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer =
            parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let forwarded = parts.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        Ok(ClientIp(ClientIp::resolve(peer, forwarded, &state.config.trusted_proxies)))
    }
}

/// The client's `User-Agent`, shortened to 200 characters: the device a session is listed
/// with (empty when absent).
#[derive(Clone, Debug, Default)]
pub struct Device(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Device {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ua = parts.headers.get(axum::http::header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
        Ok(Device(ua.chars().filter(|c| !c.is_control()).take(200).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let proxies = [ipnet::IpNet::from(proxy)];
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let spoof = Some("1.2.3.4, 203.0.113.7");
        assert_eq!(ClientIp::resolve(client, Some("1.2.3.4"), &proxies), client, "untrusted peer's header ignored");
        assert_eq!(ClientIp::resolve(proxy, spoof, &proxies), client, "right-most untrusted hop");
        assert_eq!(ClientIp::resolve(proxy, None, &proxies), proxy);
        assert_eq!(ClientIp::resolve(proxy, Some("garbage"), &proxies), proxy);
    }
}

#[cfg(test)]
mod network_tests {
    use super::*;

    #[test]
    fn a_trusted_network_covers_every_proxy_in_it() {
        let nets: Vec<ipnet::IpNet> = vec!["172.16.0.0/12".parse().unwrap()];
        let ip = ClientIp::resolve("172.18.0.5".parse().unwrap(), Some("198.51.100.9, 172.18.0.4"), &nets);
        assert_eq!(ip, "198.51.100.9".parse::<IpAddr>().unwrap());
    }
}
