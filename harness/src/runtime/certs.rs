//! Throwaway certificates for a run: a CA made for this run only, one
//! certificate per hserver (subject alternative name = the node's IP
//! address) and one client certificate, written under `<run_dir>/tls/`.
//!
//! Files (private keys mode 0600; the CA's key is never written, so nothing
//! can be signed by the run's CA once the run has booted):
//!
//! - `ca.pem`: the CA certificate (trust root of clients and peers).
//! - `<node>.pem`, `<node>.key`: a node's certificate followed by the CA
//!   certificate, and its key. The certificate allows server and client
//!   authentication, since nodes present it to their peers.
//! - `client.pem`, `client.key`: the workload clients' certificate (client
//!   authentication only).
//!
//! Why separate: the paths are decided before any process exists (they go
//! into each hserver's argv) while the files are made at boot; both live
//! here, next to the mapping from a [`TlsMode`] to hserver's flags.
//!
//! Must never: write a key readable by others, or reuse certificates across
//! runs.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};
use workloads::client::{ClientIdentity, ClientTls};

use super::error::RuntimeError;

/// The run directory's subdirectory holding the certificates.
pub const TLS_DIR: &str = "tls";

/// How the cluster's public port is secured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plaintext.
    #[default]
    Off,
    /// TLS: clients verify the servers; servers accept any client.
    Tls,
    /// Mutual TLS: servers also demand a client certificate signed by the
    /// run's CA.
    Mtls,
}

impl TlsMode {
    /// `off`, `tls` or `mtls`.
    pub fn name(self) -> &'static str {
        match self {
            TlsMode::Off => "off",
            TlsMode::Tls => "tls",
            TlsMode::Mtls => "mtls",
        }
    }
}

impl std::fmt::Display for TlsMode {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

impl std::str::FromStr for TlsMode {
    type Err = String;

    fn from_str(text: &str) -> Result<TlsMode, String> {
        match text {
            "off" => Ok(TlsMode::Off),
            "tls" => Ok(TlsMode::Tls),
            "mtls" => Ok(TlsMode::Mtls),
            _ => Err(format!("unknown TLS mode {text:?}; use off, tls or mtls")),
        }
    }
}

/// Where a run's certificates are (whether or not they exist yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunCertificates {
    /// `tls` or `mtls`.
    pub mode: TlsMode,
    /// `<run_dir>/tls`.
    pub dir: PathBuf,
}

impl RunCertificates {
    /// The certificate paths of a run, or `None` when `mode` is off.
    pub fn plan(run_dir: &Path, mode: TlsMode) -> Option<RunCertificates> {
        (mode != TlsMode::Off).then(|| RunCertificates { mode, dir: run_dir.join(TLS_DIR) })
    }

    /// The CA certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A node's certificate chain (its certificate, then the CA's).
    pub fn node_cert(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.pem"))
    }

    /// A node's private key.
    pub fn node_key(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.key"))
    }

    /// The client certificate.
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.pem")
    }

    /// The client's private key.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    /// hserver flags for `node`: TLS with its certificate, plus the CA (so
    /// client certificates are demanded) in `mtls`.
    pub fn server_flags(&self, node: &str) -> Vec<String> {
        let path = |path: PathBuf| path.display().to_string();
        let mut flags = vec![
            "--enable-tls".to_string(),
            "--tls-key-path".to_string(),
            path(self.node_key(node)),
            "--tls-cert-path".to_string(),
            path(self.node_cert(node)),
        ];
        if self.mode == TlsMode::Mtls {
            flags.extend(["--tls-ca-path".to_string(), path(self.ca_cert())]);
        }
        flags
    }

    /// What workload clients use: the CA, and in `mtls` the client
    /// certificate.
    pub fn client_tls(&self) -> ClientTls {
        let identity = (self.mode == TlsMode::Mtls)
            .then(|| ClientIdentity { cert_path: self.client_cert(), key_path: self.client_key() });
        ClientTls { ca_path: self.ca_cert(), identity }
    }

    /// Makes the CA, a certificate for each `(node, ip address)` and the
    /// client certificate, and writes them.
    pub fn create(&self, nodes: &[(String, String)], run_id: &str) -> Result<(), RuntimeError> {
        std::fs::create_dir_all(&self.dir).map_err(|error| RuntimeError::io(&self.dir, error))?;
        let (ca_pem, issuer) = authority(run_id)?;
        write_file(&self.ca_cert(), &ca_pem, false)?;
        for (node, address) in nodes {
            let (cert_pem, key_pem) = node_certificate(&issuer, node, address)?;
            write_file(&self.node_cert(node), &format!("{cert_pem}{ca_pem}"), false)?;
            write_file(&self.node_key(node), &key_pem, true)?;
        }
        let (client_pem, client_key) = client_certificate(&issuer, run_id)?;
        write_file(&self.client_cert(), &client_pem, false)?;
        write_file(&self.client_key(), &client_key, true)?;
        Ok(())
    }
}

fn certificate_error(what: &str, error: rcgen::Error) -> RuntimeError {
    RuntimeError::Certificate { what: what.to_string(), message: error.to_string() }
}

/// The run's CA: its certificate PEM and the issuer that signs with its key.
fn authority(run_id: &str) -> Result<(String, Issuer<'static, KeyPair>), RuntimeError> {
    let failed = |error| certificate_error("CA", error);
    let key = KeyPair::generate().map_err(failed)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    params.distinguished_name.push(DnType::CommonName, format!("hstream-chaos run {run_id} CA"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let pem = params.self_signed(&key).map_err(failed)?.pem();
    Ok((pem, Issuer::new(params, key)))
}

/// A node certificate for `address`, usable as server and client: (cert, key).
fn node_certificate(
    issuer: &Issuer<'static, KeyPair>,
    node: &str,
    address: &str,
) -> Result<(String, String), RuntimeError> {
    let failed = |error| certificate_error(node, error);
    assert!(address.parse::<std::net::IpAddr>().is_ok(), "node addresses are IPs, got {address:?}");
    let key = KeyPair::generate().map_err(failed)?;
    let mut params = CertificateParams::new(vec![address.to_string()]).map_err(failed)?;
    params.distinguished_name.push(DnType::CommonName, format!("hserver {node}"));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).map_err(failed)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The clients' certificate: (cert, key).
fn client_certificate(issuer: &Issuer<'static, KeyPair>, run_id: &str) -> Result<(String, String), RuntimeError> {
    let failed = |error| certificate_error("client", error);
    let key = KeyPair::generate().map_err(failed)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
    params.distinguished_name.push(DnType::CommonName, format!("hstream-chaos run {run_id} client"));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).map_err(failed)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes `text` to `path`; a `secret` is created mode 0600 (and forced to
/// 0600 if it already existed).
fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), RuntimeError> {
    let mode = if secret { 0o600 } else { 0o644 };
    let io = |error| RuntimeError::io(path, error);
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(path).map_err(io)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the files the flags name exist after `create`, keys are 0600,
    /// every node's certificate chains to the run's CA as a server for its
    /// address and as a client (what hserver checks at startup; the mTLS
    /// integration tests boot hserver on them), and the client gets a
    /// certificate only in `mtls`.
    #[test]
    fn created_certificates_chain_to_the_ca_and_keys_are_private() {
        let run = tempfile::tempdir().expect("temp dir");
        let certs = RunCertificates::plan(run.path(), TlsMode::Mtls).expect("mtls plans certificates");
        let nodes = [("n1".to_string(), "127.0.9.11".to_string()), ("n2".to_string(), "127.0.9.12".to_string())];
        certs.create(&nodes, "abc123").expect("create");
        for (node, address) in &nodes {
            let mode = std::fs::metadata(certs.node_key(node)).expect("key").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{node}.key");
            assert_chains_to(&certs.ca_cert(), &certs.node_cert(node), address);
        }
        assert_eq!(std::fs::metadata(certs.client_key()).unwrap().permissions().mode() & 0o777, 0o600);
        let flags = certs.server_flags("n2").join(" ");
        assert!(flags.ends_with(&format!("--tls-ca-path {}", certs.ca_cert().display())), "{flags}");
        assert!(certs.client_tls().identity.is_some());
        let tls_only = RunCertificates::plan(run.path(), TlsMode::Tls).expect("tls plans certificates");
        assert!(!tls_only.server_flags("n1").contains(&"--tls-ca-path".to_string()));
        assert!(tls_only.client_tls().identity.is_none());
        assert!(RunCertificates::plan(run.path(), TlsMode::Off).is_none());
    }

    /// Verifies `cert` (leaf first) against the CA in `ca` with rustls's
    /// own verifiers: as a server named `address`, and as a client.
    fn assert_chains_to(ca: &Path, cert: &Path, address: &str) {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let mut roots = rustls::RootCertStore::empty();
        for root in CertificateDer::pem_file_iter(ca).expect("ca file") {
            roots.add(root.expect("ca pem")).expect("ca certificate");
        }
        let chain: Vec<CertificateDer> =
            CertificateDer::pem_file_iter(cert).expect("cert file").map(|c| c.expect("cert pem")).collect();
        let roots = std::sync::Arc::new(roots);
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .expect("server verifier");
        let name = ServerName::try_from(address.to_string()).expect("address");
        server.verify_server_cert(&chain[0], &chain[1..], &name, &[], UnixTime::now()).expect("valid as a server");
        let client =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider).build().expect("verifier");
        client.verify_client_cert(&chain[0], &chain[1..], UnixTime::now()).expect("valid as a client");
    }
}
