//! Client TLS settings, in the shape of the Java client's options:
//!
//! | Java client                | here                                  |
//! |----------------------------|---------------------------------------|
//! | `enableTLS`                | `ClientConfig::tls` is `Some`         |
//! | `tlsCaPath`                | [`ClientTls::ca_path`]                |
//! | `enableTlsAuthentication`  | [`ClientTls::identity`] is `Some`     |
//! | `tlsKeyPath`, `tlsCertPath`| [`ClientIdentity`]                    |
//!
//! Why separate: reading the PEM files and turning them into tonic's
//! configuration is the only file I/O the client does, and its errors must
//! name the file. Must never: print key material.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// TLS towards the servers: connections use `https://` and verify the
/// server's certificate against a CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// CA certificate(s) (PEM) the server's certificate must chain to; its
    /// subject alternative names must cover the address connected to.
    pub ca_path: PathBuf,
    /// The client certificate and key for servers that demand one (mutual
    /// TLS); `None` presents no certificate.
    pub identity: Option<ClientIdentity>,
}

/// A client certificate and its private key (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate, optionally followed by its issuers.
    pub cert_path: PathBuf,
    /// The private key.
    pub key_path: PathBuf,
}

/// A TLS file that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("client TLS {what} {path}: {reason}")]
pub struct TlsFileError {
    /// Which file (`CA`, `certificate`, `key`).
    pub what: &'static str,
    /// The file.
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

impl ClientTls {
    /// Reads the files into tonic's configuration; the TLS handshake may take
    /// at most `handshake_timeout`. Files are read on every call so that a
    /// replaced certificate is picked up by the next connection.
    pub async fn config(&self, handshake_timeout: Duration) -> Result<ClientTlsConfig, TlsFileError> {
        let ca = read_pem("CA", &self.ca_path).await?;
        let config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).timeout(handshake_timeout);
        let Some(identity) = &self.identity else {
            return Ok(config);
        };
        let cert = read_pem("certificate", &identity.cert_path).await?;
        let key = read_pem("key", &identity.key_path).await?;
        Ok(config.identity(Identity::from_pem(cert, key)))
    }
}

/// The file's bytes, if it holds at least one PEM block.
async fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    let error = |reason: String| TlsFileError { what, path: path.display().to_string(), reason };
    let bytes = tokio::fs::read(path).await.map_err(|e| error(format!("cannot read: {e}")))?;
    if !bytes.windows(11).any(|window| window == b"-----BEGIN ") {
        return Err(error("holds no PEM block (`-----BEGIN ...`)".into()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a missing or non-PEM file is reported with its role and path,
    /// and good files give a configuration. Method: temporary files.
    #[tokio::test]
    async fn unusable_files_are_named_and_pem_files_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n").unwrap();
        let mut tls = ClientTls { ca_path: dir.path().join("absent.pem"), identity: None };
        let error = tls.config(Duration::from_secs(1)).await.expect_err("missing CA").to_string();
        assert!(error.contains("client TLS CA") && error.contains("absent.pem") && error.contains("cannot read"));
        tls.ca_path = pem.clone();
        assert!(tls.config(Duration::from_secs(1)).await.is_ok());
        let key = dir.path().join("client.key");
        std::fs::write(&key, "not pem").unwrap();
        tls.identity = Some(ClientIdentity { cert_path: pem, key_path: key });
        let error = tls.config(Duration::from_secs(1)).await.expect_err("bad key").to_string();
        assert!(error.contains("client TLS key") && error.contains("holds no PEM block"), "{error}");
    }
}
