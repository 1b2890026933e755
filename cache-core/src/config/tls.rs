//! The TLS files beyond the system's defaults, checked at startup.

use crate::error::ConfigError;

/// Files for TLS beyond the system defaults (`REDIS_TLS_CA`, `REDIS_TLS_CERT`, `REDIS_TLS_KEY`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// PEM bundle of the CA certificates to trust instead of the system's.
    pub(crate) ca: Option<std::path::PathBuf>,
    /// PEM client certificate chain, for servers that require client certificates.
    pub(crate) cert: Option<std::path::PathBuf>,
    /// PEM private key of the client certificate.
    pub(crate) key: Option<std::path::PathBuf>,
}

impl TlsFiles {
    /// Each named file must be readable, the certificate and key come together, TLS must be
    /// compiled in, and the URL must be a TLS one (`uses_tls`).
    pub(super) fn check(&self, uses_tls: bool) -> Result<(), ConfigError> {
        let named = [
            ("REDIS_TLS_CA", &self.ca),
            ("REDIS_TLS_CERT", &self.cert),
            ("REDIS_TLS_KEY", &self.key),
        ];
        for (variable, path) in named {
            let Some(path) = path else { continue };
            if !uses_tls {
                return Err(ConfigError::new(
                    variable,
                    "a TLS URL (rediss://...) beside it: the connection would not use this file",
                    None,
                ));
            }
            if !cfg!(feature = "tls") {
                return Err(ConfigError::new(
                    variable,
                    "a build of cache-core with the `tls` feature, to use TLS files",
                    None,
                ));
            }
            if let Err(e) = std::fs::File::open(path) {
                return Err(ConfigError::new(
                    variable,
                    format!("a readable PEM file ({}: {e})", path.display()),
                    None,
                ));
            }
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => Err(ConfigError::new(
                "REDIS_TLS_CERT",
                "REDIS_TLS_KEY beside it (the certificate's private key)",
                None,
            )),
            (None, Some(_)) => Err(ConfigError::new(
                "REDIS_TLS_KEY",
                "REDIS_TLS_CERT beside it (the certificate of this key)",
                None,
            )),
            _ => Ok(()),
        }
    }
}
