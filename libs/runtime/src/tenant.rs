use tonic::{metadata::MetadataMap, Status};

/// The tenant a request acts for, from `x-tenant-id` metadata ("default" when absent):
/// 1-64 characters of `A-Z a-z 0-9 - _`, else INVALID_ARGUMENT.
pub fn tenant(metadata: &MetadataMap) -> Result<String, Status> {
    let Some(v) = metadata.get("x-tenant-id") else {
        return Ok("default".into());
    };
    let t = v
        .to_str()
        .map_err(|_| Status::invalid_argument("x-tenant-id: not ASCII"))?;
    if !waihu_auth::keys::valid_tenant(t) {
        return Err(Status::invalid_argument(
            "x-tenant-id: 1-64 characters of A-Z a-z 0-9 - _",
        ));
    }
    Ok(t.to_string())
}

/// Who sent a request, for audit records: the token's user ("dev" for a token-less development
/// request), "unknown" when no authentication ran (in-process tests without the layer).
pub fn actor<T>(req: &tonic::Request<T>) -> String {
    req.extensions()
        .get::<waihu_auth::Principal>()
        .map_or_else(|| "unknown".into(), |p| p.user.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_defaults_and_bad_values_are_invalid_argument() {
        let mut m = MetadataMap::new();
        assert_eq!(tenant(&m).ok().as_deref(), Some("default"));
        m.insert("x-tenant-id", "acme-1".parse().expect("ascii"));
        assert_eq!(tenant(&m).ok().as_deref(), Some("acme-1"));
        m.insert("x-tenant-id", "a b".parse().expect("ascii"));
        assert_eq!(
            tenant(&m).map_err(|s| s.code()),
            Err(tonic::Code::InvalidArgument)
        );
    }
}
