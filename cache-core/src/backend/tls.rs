//! TLS for `rediss://` URLs beyond the system defaults: a private CA (`REDIS_TLS_CA`) and a client
//! certificate for mutual TLS (`REDIS_TLS_CERT` + `REDIS_TLS_KEY`), with rustls and ring.

use std::sync::Arc;

use fred::rustls::pki_types::pem::PemObject;
use fred::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use fred::rustls::{ClientConfig, RootCertStore};
use fred::types::config::TlsConfig;

use crate::config::TlsFiles;
use crate::CacheError;

/// The client TLS configuration for `files`; `None` when they name nothing (fred's defaults, with
/// the system's trusted roots, then apply).
pub(crate) fn client_config(files: &TlsFiles) -> Result<Option<TlsConfig>, CacheError> {
    if files.ca.is_none() && files.cert.is_none() {
        return Ok(None);
    }
    let bad =
        |what: &str, e: &dyn std::fmt::Display| CacheError::Connection(format!("TLS: {what}: {e}"));
    let mut roots = RootCertStore::empty();
    match &files.ca {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad("REDIS_TLS_CA", &e))? {
                let cert = cert.map_err(|e| bad("REDIS_TLS_CA", &e))?;
                roots.add(cert).map_err(|e| bad("REDIS_TLS_CA", &e))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let provider = Arc::new(fred::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("protocol versions", &e))?
        .with_root_certificates(roots);
    let config = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| bad("REDIS_TLS_CERT", &e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad("REDIS_TLS_CERT", &e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("REDIS_TLS_KEY", &e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad("client certificate", &e))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(config.into()))
}
