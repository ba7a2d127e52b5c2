//! TLS setup (rustls with the ring provider) from PEM files.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Server side TLS: certificate chain and key, and optionally a CA that client certificates must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// PEM file with the server certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the server private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM file with CA certificates; when set, clients must present a certificate signed by one of them.
    pub client_ca: Option<PathBuf>,
}

/// Client side TLS: the CA that the server certificate must chain to, and an optional client identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// PEM file with the CA certificates trusted for the server.
    pub ca: PathBuf,
    /// PEM files (certificate chain, private key) presented when the server asks for a client certificate.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Name checked against the server certificate; defaults to the host part of the address.
    pub server_name: Option<String>,
}

/// TLS configuration that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A certificate file holds no certificate.
    #[error("{0}: no PEM certificate found")]
    NoCertificate(PathBuf),
    /// A key file holds no private key.
    #[error("{0}: no PEM private key found")]
    NoPrivateKey(PathBuf),
    /// rustls refused the certificates or keys.
    #[error("TLS setup failed ({context}): {source}")]
    Rustls {
        /// What was being set up.
        context: &'static str,
        /// rustls' reason.
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built from the CA file.
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// The name to verify the server certificate against is not a DNS name or IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn open(path: &Path) -> Result<BufReader<File>, TlsError> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })?
        .ok_or_else(|| TlsError::NoPrivateKey(path.to_owned()))
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|source| TlsError::Rustls {
            context: "adding CA certificate",
            source,
        })?;
    }
    Ok(roots)
}

fn rustls_err(context: &'static str) -> impl FnOnce(rustls::Error) -> TlsError {
    move |source| TlsError::Rustls { context, source }
}

impl ServerTls {
    /// Loads the files and builds an acceptor.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(rustls_err("protocol versions"))?;
        let builder = match &self.client_ca {
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(load_roots(ca)?),
                    provider(),
                )
                .build()?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(load_certs(&self.cert)?, load_key(&self.key)?)
            .map_err(rustls_err("server certificate and key"))?;
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ClientTls {
    /// Loads the files and builds a connector.
    pub fn connector(&self) -> Result<TlsConnector, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(rustls_err("protocol versions"))?
            .with_root_certificates(load_roots(&self.ca)?);
        let config = match &self.identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
                .map_err(rustls_err("client certificate and key"))?,
            None => builder.with_no_client_auth(),
        };
        Ok(TlsConnector::from(Arc::new(config)))
    }

    /// The name to verify: the configured one, else `host`.
    pub(crate) fn server_name(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(name.to_owned()).map_err(|_| TlsError::ServerName(name.to_owned()))
    }
}
