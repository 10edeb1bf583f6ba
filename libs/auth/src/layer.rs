//! The tower layer in front of every waihu gRPC service: finds what the method needs in the
//! permission table, checks the bearer token, and passes the request on with the caller's
//! tenant in `x-tenant-id` (any value the client sent is replaced) and the [`Principal`] in the
//! request extensions. Refusals are gRPC statuses: UNAUTHENTICATED for a missing or bad token,
//! PERMISSION_DENIED naming the permission.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderValue, Request, Response};
use tonic::Status;

use crate::{
    keys::valid_tenant,
    perms::{requirement, Requirement, ALL_PERMISSIONS},
    Keys, Principal,
};

/// Adds authentication to a tonic server (`Server::builder().layer(..)`).
#[derive(Clone)]
pub struct AuthLayer {
    inner: Arc<Gate>,
}

struct Gate {
    keys: Keys,
    dev_mode: bool,
    operator_tenant: String,
}

impl AuthLayer {
    /// `operator_tenant` is the tenant whose tokens may call deployment-wide methods.
    pub fn new(keys: Keys, dev_mode: bool, operator_tenant: &str) -> Self {
        AuthLayer {
            inner: Arc::new(Gate {
                keys,
                dev_mode,
                operator_tenant: operator_tenant.to_string(),
            }),
        }
    }

    /// Loads the keys `config` names and says at start-up how tokens are checked: loudly when
    /// with the local development key or in development mode.
    pub fn from_config(config: &crate::AuthConfig) -> Result<Self, crate::KeyError> {
        let keys = Keys::load(config)?;
        if let Some(remote) = keys.remote() {
            // Fetched now and kept fresh in the background; tokens signed with its keys wait
            // for the first fetch (UNAUTHENTICATED, saying so) rather than the service.
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(remote.run());
                }
                Err(_) => tracing::warn!(
                    url = %remote.url,
                    "no async runtime: the JWKS URL is not fetched"
                ),
            }
        }
        if keys.development {
            tracing::warn!(
                source = %keys.source,
                "AUTHENTICATION USES THE LOCAL DEVELOPMENT KEY: configure auth.hs256_key_file or \
                 auth.jwks_file or auth.jwks_url (WAIHU_AUTH__HS256_KEY_FILE, WAIHU_AUTH__JWKS_FILE, \
                 WAIHU_AUTH__JWKS_URL) in production"
            );
        } else {
            tracing::info!(source = %keys.source, "tokens are verified with");
        }
        if config.dev_mode {
            tracing::warn!(
                "DEV MODE: requests without a token act as x-tenant-id with every permission \
                 (auth.dev_mode / WAIHU_AUTH__DEV_MODE); never in production"
            );
        }
        Ok(AuthLayer::new(
            keys,
            config.dev_mode,
            &config.operator_tenant,
        ))
    }

    /// Who a request with these headers acts as, when it needs one of `wanted` (HTTP routes
    /// use this with their own permission table): UNAUTHENTICATED or PERMISSION_DENIED as for
    /// gRPC methods.
    pub fn admit(
        &self,
        what: &str,
        headers: &http::HeaderMap,
        wanted: &[&str],
    ) -> Result<Principal, Status> {
        let principal = self.inner.principal(headers)?;
        needs(what, &principal, wanted)?;
        Ok(principal)
    }

    /// Who the request with these headers acts as, for the method at `path`; None for a
    /// public method.
    pub fn authorize(
        &self,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Result<Option<Principal>, Status> {
        self.inner.authorize(path, headers)
    }
}

impl Gate {
    fn authorize(
        &self,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Result<Option<Principal>, Status> {
        let (wanted, operator) = match requirement(path) {
            Some(Requirement::Public) => return Ok(None),
            Some(Requirement::AnyOf(p)) => (p, false),
            Some(Requirement::Operator(p)) => (p, true),
            None => {
                return Err(Status::permission_denied(format!(
                    "{path}: no permission is declared for this method"
                )))
            }
        };
        let principal = self.principal(headers)?;
        needs(path, &principal, wanted)?;
        if operator && principal.tenant != self.operator_tenant {
            return Err(Status::permission_denied(format!(
                "{path} is deployment-wide: only a token of the operator tenant ({}) may call it",
                self.operator_tenant
            )));
        }
        Ok(Some(principal))
    }

    /// The caller: the verified token's, or in dev mode a token-less request's.
    fn principal(&self, headers: &http::HeaderMap) -> Result<Principal, Status> {
        Ok(match bearer(headers)? {
            Some(token) => self
                .keys
                .verify(token)
                .map_err(|e| Status::unauthenticated(e.0))?,
            None if self.dev_mode => {
                let tenant = match headers.get("x-tenant-id") {
                    None => "default".to_string(),
                    Some(v) => v
                        .to_str()
                        .ok()
                        .filter(|t| valid_tenant(t))
                        .ok_or_else(|| {
                            Status::invalid_argument(
                                "x-tenant-id: 1-64 characters of A-Z a-z 0-9 - _",
                            )
                        })?
                        .to_string(),
                };
                Principal {
                    tenant,
                    user: "dev".into(),
                    permissions: ALL_PERMISSIONS.iter().map(|p| p.to_string()).collect(),
                    dev: true,
                }
            }
            None => {
                return Err(Status::unauthenticated(
                    "missing token: send `authorization: Bearer <JWT>` (`waihu auth token` mints one for development)",
                ))
            }
        })
    }
}

/// PERMISSION_DENIED naming what `what` needs, unless `p` holds one of `wanted`.
fn needs(what: &str, p: &Principal, wanted: &[&str]) -> Result<(), Status> {
    if p.has_any(wanted) {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "{what} needs permission {}",
            wanted.join(" or ")
        )))
    }
}

/// The bearer token of `authorization`, if any; a malformed header is UNAUTHENTICATED.
fn bearer(headers: &http::HeaderMap) -> Result<Option<&str>, Status> {
    let Some(v) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| Status::unauthenticated("authorization: not ASCII"))?;
    let (scheme, token) = v
        .split_once(' ')
        .ok_or_else(|| Status::unauthenticated("authorization: expected `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Status::unauthenticated(
            "authorization: expected `Bearer <token>`",
        ));
    }
    Ok(Some(token.trim()))
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            gate: self.inner.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    gate: Arc<Gate>,
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> tower::Service<Request<B>> for AuthService<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<RB>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone that was made ready is the one that must be called.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        match self.gate.authorize(req.uri().path(), req.headers()) {
            Ok(principal) => {
                if let Some(p) = principal {
                    match HeaderValue::from_str(&p.tenant) {
                        Ok(v) => {
                            req.headers_mut().insert("x-tenant-id", v);
                        }
                        Err(_) => {
                            let s = Status::unauthenticated("token tenant is not a header value");
                            return Box::pin(async move { Ok(s.into_http()) });
                        }
                    }
                    req.extensions_mut().insert(p);
                }
                Box::pin(inner.call(req))
            }
            Err(status) => Box::pin(async move { Ok(status.into_http()) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AuthConfig, Claims};

    const KEY: &str = "0123456789abcdef0123456789abcdef-layer";

    fn gate(dev_mode: bool) -> (AuthLayer, Keys) {
        let keys = || Keys::load(&AuthConfig::with_hs256(KEY)).expect("keys");
        (AuthLayer::new(keys(), dev_mode, "platform"), keys())
    }

    fn headers(pairs: &[(&'static str, String)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header"));
        }
        h
    }

    const CREATE: &str = "/waihu.v1.TaskService/CreateTask";

    #[test]
    fn refusals_name_what_is_wrong() {
        let (layer, keys) = gate(false);
        let code = |h: &http::HeaderMap, path: &str| {
            layer
                .authorize(path, h)
                .map(|_| ())
                .map_err(|s| (s.code(), s.message().to_string()))
        };
        let none = headers(&[]);
        assert_eq!(
            code(&none, CREATE).expect_err("no token").0,
            tonic::Code::Unauthenticated
        );
        assert!(code(&none, "/grpc.health.v1.Health/Check").is_ok());
        let tok = keys
            .mint(&Claims::new("acme", "ann", &["lead:call:view"], 60))
            .expect("mint");
        let h = headers(&[("authorization", format!("Bearer {tok}"))]);
        let (c, m) = code(&h, CREATE).expect_err("missing permission");
        assert_eq!(c, tonic::Code::PermissionDenied);
        assert!(m.contains("lead:call:create"), "{m}");
        assert!(code(&h, "/waihu.v1.TaskService/GetTask").is_ok());
        let (c, _) = code(&h, "/waihu.v1.TaskService/Unlisted").expect_err("fail closed");
        assert_eq!(c, tonic::Code::PermissionDenied);
        let h = headers(&[("authorization", "Basic abc".to_string())]);
        assert_eq!(
            code(&h, CREATE).expect_err("scheme").0,
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn deployment_wide_methods_take_only_operator_tokens() {
        let (layer, keys) = gate(false);
        let bearer = |tenant: &str| {
            let tok = keys
                .mint(&Claims::new(tenant, "ann", ALL_PERMISSIONS, 60))
                .expect("mint");
            headers(&[("authorization", format!("Bearer {tok}"))])
        };
        let path = "/waihu.v1.AdminService/ListDeadLetters";
        let refused = layer
            .authorize(path, &bearer("acme"))
            .expect_err("a tenant token");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(
            refused.message().contains("operator tenant (platform)"),
            "{}",
            refused.message()
        );
        let p = layer
            .authorize(path, &bearer("platform"))
            .expect("the operator")
            .expect("principal");
        assert_eq!(p.tenant, "platform");
        // Tenant-scoped methods are open to the operator's tokens like any tenant's.
        assert!(layer.authorize(CREATE, &bearer("platform")).is_ok());
    }

    #[test]
    fn the_token_tenant_wins_and_dev_mode_admits_only_tokenless_requests() {
        let (strict, keys) = gate(false);
        let tok = keys
            .mint(&Claims::new("acme", "ann", &["lead:call:view"], 60))
            .expect("mint");
        let h = headers(&[
            ("authorization", format!("Bearer {tok}")),
            ("x-tenant-id", "other".into()),
        ]);
        let p = strict
            .authorize("/waihu.v1.TaskService/GetTask", &h)
            .expect("ok")
            .expect("principal");
        assert_eq!(p.tenant, "acme");
        assert!(strict
            .authorize(CREATE, &headers(&[("x-tenant-id", "acme".into())]))
            .is_err());

        let (dev, _) = gate(true);
        let p = dev
            .authorize(CREATE, &headers(&[("x-tenant-id", "acme".into())]))
            .expect("ok")
            .expect("principal");
        assert!(p.dev && p.tenant == "acme");
        let h = headers(&[("authorization", "Bearer garbage".into())]);
        assert_eq!(
            dev.authorize(CREATE, &h)
                .expect_err("a bad token is bad in dev mode too")
                .code(),
            tonic::Code::Unauthenticated
        );
    }
}
