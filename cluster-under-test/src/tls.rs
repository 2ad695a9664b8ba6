//! TLS for hserver: loading and checking the key, certificate and CA files
//! once at startup, and turning them into tonic's server configuration (the
//! public API and replication share one port) and the client configuration
//! peers use to reach each other.
//!
//! The settings mean what they mean in HStreamDB: `enable-tls` with
//! `tls-key-path` and `tls-cert-path` serves TLS; adding `tls-ca-path` makes
//! the server demand a client certificate signed by that CA (mutual TLS).
//!
//! Server-to-server traffic (replication, recovery, remote reads) uses the
//! same files: peers connect with `https`, trust the CA (or, without a CA,
//! the last certificate of `tls-cert-path`, so that file should end with the
//! issuing CA), and present the node's own certificate when a CA is set.
//!
//! Why separate: every check happens here, before anything listens, and
//! names the file and the problem; tonic would only report "error parsing
//! TLS certificate" at the first handshake, and a key that does not match
//! its certificate would surface as handshake failures on every client.
//!
//! Must never: log, print or put key material into an error message.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, TrustAnchor, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// How long a client may take to complete the TLS handshake with the
/// server before the connection is dropped (a stalled handshake must not
/// hold a socket forever).
pub const SERVER_HANDSHAKE_TIMEOUT_MS: u64 = 5_000;

/// Where the TLS files are, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPaths {
    /// `tls-key-path`: the node's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// `tls-cert-path`: the node's certificate, optionally followed by its
    /// issuers (PEM).
    pub cert: PathBuf,
    /// `tls-ca-path`: CA certificates client certificates must chain to;
    /// setting it turns on client-certificate verification.
    pub ca: Option<PathBuf>,
}

/// A TLS file that cannot be used, naming the setting, the file and what is
/// wrong.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file is missing or unreadable.
    #[error("{setting} {path}: cannot read: {reason}")]
    Read {
        /// Setting (`tls-key-path`, ...).
        setting: &'static str,
        /// File.
        path: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The file holds no usable PEM object of the expected kind.
    #[error("{setting} {path}: {problem}")]
    Content {
        /// Setting.
        setting: &'static str,
        /// File.
        path: String,
        /// What is wrong and what was expected.
        problem: String,
    },
    /// The private key is not the certificate's.
    #[error(
        "tls-key-path {key} does not match the certificate in tls-cert-path {cert} ({reason}); \
         pass the key the certificate was issued for"
    )]
    KeyMismatch {
        /// Key file.
        key: String,
        /// Certificate file.
        cert: String,
        /// Detail from rustls.
        reason: String,
    },
    /// The certificate does not verify against the trust root peers use.
    #[error("tls-cert-path {cert}: {problem}")]
    Chain {
        /// Certificate file.
        cert: String,
        /// What fails and why it matters.
        problem: String,
    },
}

/// The checked PEM contents of a node's TLS files.
#[derive(Clone)]
pub struct TlsMaterial {
    key_pem: Vec<u8>,
    cert_pem: Vec<u8>,
    ca_pem: Option<Vec<u8>>,
    peer_roots: Vec<TrustAnchor<'static>>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("TlsMaterial").field("mutual", &self.is_mutual()).finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Reads and checks the files: each parses, the key belongs to the
    /// certificate, and the certificate covers `advertised_host` and chains
    /// to the root peers will trust (the CA, or the chain's last
    /// certificate); with a CA it must also be usable as a client
    /// certificate, since the node presents it to its peers.
    pub fn load(paths: &TlsPaths, advertised_host: &str) -> Result<TlsMaterial, TlsError> {
        let provider = rustls::crypto::ring::default_provider();
        let key_pem = read("tls-key-path", &paths.key)?;
        let cert_pem = read("tls-cert-path", &paths.cert)?;
        let chain = parse_certificates("tls-cert-path", &paths.cert, &cert_pem)?;
        check_key(paths, &key_pem, &chain, &provider)?;
        let (ca_pem, roots) = match &paths.ca {
            Some(ca_path) => {
                let ca_pem = read("tls-ca-path", ca_path)?;
                let roots = root_store("tls-ca-path", ca_path, parse_certificates("tls-ca-path", ca_path, &ca_pem)?)?;
                (Some(ca_pem), roots)
            }
            None => (None, root_store("tls-cert-path", &paths.cert, chain[chain.len() - 1..].to_vec())?),
        };
        let peer_roots = roots.roots.clone();
        let roots = Arc::new(roots);
        let root_path = paths.ca.as_deref().unwrap_or(&paths.cert);
        let cert_shown = paths.cert.display().to_string();
        let verified = check_as_server(&chain, roots.clone(), advertised_host, &provider, root_path);
        verified
            .map_err(|problem| TlsError::Chain { cert: cert_shown.clone(), problem: problem + root_hint(paths) })?;
        if paths.ca.is_some() {
            check_as_client(&chain, roots, &provider, &cert_shown, root_path)?;
        }
        Ok(TlsMaterial { key_pem, cert_pem, ca_pem, peer_roots })
    }

    /// Whether client certificates are demanded (a CA is configured).
    pub fn is_mutual(&self) -> bool {
        self.ca_pem.is_some()
    }

    /// The server side: the node's identity, and with a CA, mandatory client
    /// certificates signed by it.
    pub fn server_config(&self) -> ServerTlsConfig {
        let identity = Identity::from_pem(&self.cert_pem, &self.key_pem);
        let config =
            ServerTlsConfig::new().identity(identity).timeout(Duration::from_millis(SERVER_HANDSHAKE_TIMEOUT_MS));
        match &self.ca_pem {
            Some(ca_pem) => config.client_ca_root(Certificate::from_pem(ca_pem)).client_auth_optional(false),
            None => config,
        }
    }

    /// The client side for peer channels: trust the peer root, and present
    /// the node's own certificate when client certificates are demanded.
    pub fn peer_config(&self, handshake_timeout: Duration) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().trust_anchors(self.peer_roots.clone()).timeout(handshake_timeout);
        match self.is_mutual() {
            true => config.identity(Identity::from_pem(&self.cert_pem, &self.key_pem)),
            false => config,
        }
    }
}

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read { setting, path: path.display().to_string(), reason: e.to_string() })
}

fn parse_certificates(
    setting: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let content = |problem: String| TlsError::Content { setting, path: path.display().to_string(), problem };
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| content(format!("not a PEM certificate file: {e}")))?;
    if chain.is_empty() {
        return Err(content("contains no PEM certificate (no `-----BEGIN CERTIFICATE-----` block)".into()));
    }
    Ok(chain)
}

/// The key parses, the provider supports it, and it is the first
/// certificate's key.
fn check_key(
    paths: &TlsPaths,
    key_pem: &[u8],
    chain: &[CertificateDer<'static>],
    provider: &CryptoProvider,
) -> Result<(), TlsError> {
    let key_shown = paths.key.display().to_string();
    let content = |problem: String| TlsError::Content { setting: "tls-key-path", path: key_shown.clone(), problem };
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            content("contains no PEM private key (PKCS#8, PKCS#1 or SEC1 `-----BEGIN ... PRIVATE KEY-----`)".into())
        }
        other => content(format!("not a PEM private key: {other}")),
    })?;
    let signing_key =
        provider.key_provider.load_private_key(key).map_err(|e| content(format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain.to_vec(), signing_key);
    certified.keys_match().map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            key: key_shown.clone(),
            cert: paths.cert.display().to_string(),
            reason: e.to_string(),
        },
        other => TlsError::Content {
            setting: "tls-cert-path",
            path: paths.cert.display().to_string(),
            problem: format!("not a valid X.509 certificate: {other}"),
        },
    })
}

/// Trust anchors from `certificates`, each of which must be usable as one.
fn root_store(
    setting: &'static str,
    path: &Path,
    certificates: Vec<CertificateDer<'static>>,
) -> Result<RootCertStore, TlsError> {
    let content = |problem: String| TlsError::Content { setting, path: path.display().to_string(), problem };
    let mut roots = RootCertStore::empty();
    for cert in certificates {
        roots.add(cert).map_err(|e| content(format!("not a usable CA certificate: {e}")))?;
    }
    assert!(!roots.is_empty());
    Ok(roots)
}

/// Peers verify this certificate as a server's, by the advertised host;
/// on failure, what is wrong.
fn check_as_server(
    chain: &[CertificateDer<'static>],
    roots: Arc<RootCertStore>,
    advertised_host: &str,
    provider: &CryptoProvider,
    root_path: &Path,
) -> Result<(), String> {
    let name = ServerName::try_from(advertised_host.to_string())
        .map_err(|e| format!("the advertised host {advertised_host:?} is not a DNS name or IP: {e}"))?;
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, Arc::new(provider.clone()))
        .build()
        .map_err(|e| format!("cannot build a verifier from {}: {e}", root_path.display()))?;
    verifier.verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now()).map_err(|e| {
        format!(
            "does not verify against {} for the advertised host {advertised_host} ({e}); peers and clients trusting \
             that root would refuse this node: use a certificate signed by it whose subject alternative names \
             include the advertised host",
            root_path.display()
        )
    })?;
    Ok(())
}

/// Where peers' trust comes from, for errors about the chain.
fn root_hint(paths: &TlsPaths) -> &'static str {
    match paths.ca {
        Some(_) => "",
        None => {
            " (without tls-ca-path, peers trust the last certificate of tls-cert-path: end that file with the \
             issuing CA's certificate)"
        }
    }
}

/// With a CA, the node presents its certificate to peers as a client.
fn check_as_client(
    chain: &[CertificateDer<'static>],
    roots: Arc<RootCertStore>,
    provider: &CryptoProvider,
    cert_shown: &str,
    root_path: &Path,
) -> Result<(), TlsError> {
    let chain_error = |problem: String| TlsError::Chain { cert: cert_shown.to_string(), problem };
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, Arc::new(provider.clone()))
        .build()
        .map_err(|e| chain_error(format!("cannot build a verifier from {}: {e}", root_path.display())))?;
    verifier.verify_client_cert(&chain[0], &chain[1..], UnixTime::now()).map_err(|e| {
        chain_error(format!(
            "is not accepted as a client certificate by the CA in {} ({e}); nodes present their own certificate \
             to peers, so it must allow client authentication",
            root_path.display()
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests;
