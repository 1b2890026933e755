//! TLS for `rediss://` URLs beyond the system defaults: a private CA (`REDIS_TLS_CA`) and a client
//! certificate for mutual TLS (`REDIS_TLS_CERT` + `REDIS_TLS_KEY`), with rustls and ring.
//!
//! A file that cannot be read or parsed is a [`ConfigError`] naming its variable. Its contents are
//! never quoted: the PEM reader's errors hold the line at fault, and a key file is a secret.

use std::path::Path;
use std::sync::Arc;

use fred::rustls::pki_types::pem::{self, PemObject};
use fred::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use fred::rustls::{ClientConfig, RootCertStore};
use fred::types::config::TlsConfig;

use crate::config::TlsFiles;
use crate::error::CacheError;
use crate::error::ConfigError;

/// The client TLS configuration for `files`; `None` when they name nothing (fred's defaults, with
/// the system's trusted roots, then apply).
pub(crate) fn client_config(files: &TlsFiles) -> Result<Option<TlsConfig>, CacheError> {
    if files.ca.is_none() && files.cert.is_none() {
        return Ok(None);
    }
    let mut roots = RootCertStore::empty();
    match &files.ca {
        Some(path) => {
            let bad = |why: String| bad_file("REDIS_TLS_CA", "CA certificates", path, why);
            for cert in read_certificates("REDIS_TLS_CA", "CA certificates", path)? {
                roots
                    .add(cert)
                    .map_err(|e| bad(format!("a certificate is not valid: {e}")))?;
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
        .map_err(|e| CacheError::Connection(format!("TLS: protocol versions: {e}")))?
        .with_root_certificates(roots);
    let config = match (&files.cert, &files.key) {
        (Some(cert), Some(key_file)) => {
            let chain = read_certificates("REDIS_TLS_CERT", "the client certificate chain", cert)?;
            let what = "the client certificate's private key";
            let key = PrivateKeyDer::from_pem_file(key_file)
                .map_err(|e| bad_pem("REDIS_TLS_KEY", what, key_file, &e))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                // rustls says why the pair is refused (a key it cannot use, a mismatch), never
                // what the key holds.
                bad_file(
                    "REDIS_TLS_KEY",
                    what,
                    key_file,
                    format!("refused with the certificate of REDIS_TLS_CERT: {e}"),
                )
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(config.into()))
}

/// Every certificate in the PEM file at `path`, at least one.
fn read_certificates(
    variable: &'static str,
    what: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, CacheError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| bad_pem(variable, what, path, &e))?;
    if certs.is_empty() {
        return Err(bad_pem(variable, what, path, &pem::Error::NoItemsFound));
    }
    Ok(certs)
}

/// The error for a PEM file that does not read: what went wrong, never the text at fault.
fn bad_pem(variable: &'static str, what: &str, path: &Path, e: &pem::Error) -> CacheError {
    let why = match e {
        pem::Error::Io(e) => format!("it cannot be read: {}", e.kind()),
        pem::Error::NoItemsFound => format!("there is no PEM section of {what} in it"),
        pem::Error::IllegalSectionStart { .. } => "a -----BEGIN line is malformed".to_owned(),
        pem::Error::MissingSectionEnd { .. } => "a section has no -----END line".to_owned(),
        pem::Error::Base64Decode(_) => "a section is not valid base64".to_owned(),
        pem::Error::SectionTooLarge => "a section is over 256 MB".to_owned(),
        _ => "it is not valid PEM".to_owned(),
    };
    bad_file(variable, what, path, why)
}

fn bad_file(variable: &'static str, what: &str, path: &Path, why: String) -> CacheError {
    CacheError::Config(ConfigError::new(
        variable,
        format!(
            "a PEM file of {what} ({}: {why}; its contents are not shown)",
            path.display()
        ),
        None,
    ))
}
