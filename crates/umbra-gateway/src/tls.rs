//! TLS for the listeners and the destinations (rustls, feature `tls`): PEM certificates and
//! keys from files; optional client certificates (mutual TLS) on both sides.
//!
//! Without the feature, a configuration that asks for TLS is refused at start with a clear
//! message, never silently served in the clear.

use crate::config::ConfigError;
use serde::Deserialize;
use std::path::PathBuf;

/// `tls = { cert_file, key_file, client_ca_file }` on a listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsServer {
    /// The server's certificate chain (PEM).
    pub cert_file: PathBuf,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// When given, clients must present a certificate issued by one of these CAs (PEM).
    pub client_ca_file: Option<PathBuf>,
}

/// `tls = { ca_file, cert_file, key_file, server_name }` on a destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsClient {
    /// CAs trusted for the destination's certificate (PEM).
    pub ca_file: PathBuf,
    /// The gateway's client certificate chain (PEM), for destinations that require one.
    pub cert_file: Option<PathBuf>,
    /// The key of `cert_file` (PEM).
    pub key_file: Option<PathBuf>,
    /// Name the destination's certificate must carry (default: the host).
    pub server_name: Option<String>,
}

#[cfg(feature = "tls")]
mod imp {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use std::path::Path;
    use std::sync::Arc;

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
        let certs: Vec<_> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ConfigError(format!("certificates in {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(ConfigError(format!("no certificate in {}", path.display())));
        }
        Ok(certs)
    }

    fn key(path: &Path) -> Result<PrivateKeyDer<'static>, ConfigError> {
        PrivateKeyDer::from_pem_file(path)
            .map_err(|e| ConfigError(format!("private key in {}: {e}", path.display())))
    }

    fn roots(path: &Path) -> Result<rustls::RootCertStore, ConfigError> {
        let mut store = rustls::RootCertStore::empty();
        for c in certs(path)? {
            store
                .add(c)
                .map_err(|e| ConfigError(format!("CA in {}: {e}", path.display())))?;
        }
        Ok(store)
    }

    /// A listener's rustls configuration.
    pub fn server_config(t: &TlsServer) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ConfigError(format!("TLS: {e}")))?;
        let builder = match &t.client_ca_file {
            Some(ca) => {
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots(ca)?),
                    provider(),
                )
                .build()
                .map_err(|e| ConfigError(format!("TLS client CAs {}: {e}", ca.display())))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(certs(&t.cert_file)?, key(&t.key_file)?)
            .map_err(|e| ConfigError(format!("TLS certificate and key: {e}")))?;
        Ok(Arc::new(config))
    }

    /// A destination's TLS: rustls configuration and the name to verify.
    #[derive(Clone)]
    pub struct ClientTls {
        /// The rustls configuration.
        pub config: Arc<rustls::ClientConfig>,
        /// The name the destination's certificate must carry.
        pub name: ServerName<'static>,
        /// The CA certificates (for the STOW-RS client, which builds its own configuration).
        pub cas: Vec<CertificateDer<'static>>,
        /// The gateway's certificate and key, when it shows one, for the STOW-RS client.
        pub stow_identity: Option<ureq::tls::ClientCert>,
    }

    impl std::fmt::Debug for ClientTls {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "ClientTls({:?})", self.name)
        }
    }

    impl ClientTls {
        /// Loads a destination's TLS settings; `host` names the server when `server_name` is
        /// not given.
        pub fn load(t: &TlsClient, host: &str) -> Result<ClientTls, ConfigError> {
            let builder = rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| ConfigError(format!("TLS: {e}")))?
                .with_root_certificates(roots(&t.ca_file)?);
            let identity = match (&t.cert_file, &t.key_file) {
                (Some(c), Some(k)) => Some((certs(c)?, key(k)?, k)),
                (None, None) => None,
                _ => {
                    return Err(ConfigError(
                        "tls: cert_file and key_file go together".into(),
                    ));
                }
            };
            let config = match &identity {
                Some((chain, key, _)) => builder
                    .with_client_auth_cert(chain.clone(), key.clone_key())
                    .map_err(|e| ConfigError(format!("TLS client certificate: {e}")))?,
                None => builder.with_no_client_auth(),
            };
            // the same certificate and key, as the STOW-RS client (ureq) takes them
            let stow_identity = match &identity {
                Some((chain, _, key_file)) => {
                    let chain: Vec<ureq::tls::Certificate<'static>> = chain
                        .iter()
                        .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                        .collect();
                    let pem = std::fs::read(key_file).map_err(|e| {
                        ConfigError(format!("private key in {}: {e}", key_file.display()))
                    })?;
                    let key = ureq::tls::PrivateKey::from_pem(&pem).map_err(|e| {
                        ConfigError(format!("private key in {}: {e}", key_file.display()))
                    })?;
                    Some(ureq::tls::ClientCert::new_with_certs(&chain, key))
                }
                None => None,
            };
            let name = t.server_name.as_deref().unwrap_or(host).to_string();
            let name = ServerName::try_from(name.clone())
                .map_err(|_| ConfigError(format!("tls: {name:?} is not a server name")))?;
            Ok(ClientTls {
                config: Arc::new(config),
                name,
                cas: certs(&t.ca_file)?,
                stow_identity,
            })
        }
    }
}

#[cfg(feature = "tls")]
pub use imp::{ClientTls, server_config};

/// A destination's TLS (this build has none).
#[cfg(not(feature = "tls"))]
#[derive(Debug, Clone)]
pub enum ClientTls {}

#[cfg(not(feature = "tls"))]
const NO_TLS: &str = "this build of umbra has no TLS: build it with `--features tls`";

#[cfg(not(feature = "tls"))]
impl ClientTls {
    /// Always an error: this build has no TLS.
    pub fn load(_t: &TlsClient, _host: &str) -> Result<ClientTls, ConfigError> {
        Err(ConfigError(NO_TLS.into()))
    }
}

/// Always an error: this build has no TLS.
#[cfg(not(feature = "tls"))]
pub fn server_config(_t: &TlsServer) -> Result<std::convert::Infallible, ConfigError> {
    Err(ConfigError(NO_TLS.into()))
}
