//! Goal: every unusable key, certificate or CA file is refused at startup
//! with a message naming the setting, the file and the problem, and good
//! files load. Method: make certificates with rcgen in a temporary
//! directory, break one thing per test, and check the message.

use super::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};

/// The host the node advertises in these tests.
const HOST: &str = "127.0.0.1";

/// A CA: its certificate PEM and an issuer that signs with its key.
struct Authority {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn authority(name: &str) -> Authority {
    let key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let pem = params.self_signed(&key).expect("CA certificate").pem();
    Authority { pem, issuer: Issuer::new(params, key) }
}

/// A leaf certificate for `sans` signed by `ca`: (certificate PEM, key PEM).
fn leaf(ca: &Authority, sans: &[&str], usages: &[ExtendedKeyUsagePurpose]) -> (String, String) {
    let key = KeyPair::generate().expect("leaf key");
    let sans: Vec<String> = sans.iter().map(|san| san.to_string()).collect();
    let mut params = CertificateParams::new(sans).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, "hserver test node");
    params.extended_key_usages = usages.to_vec();
    (params.signed_by(&key, &ca.issuer).expect("leaf certificate").pem(), key.serialize_pem())
}

const BOTH: &[ExtendedKeyUsagePurpose] = &[ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];

/// A directory with `ca.pem`, `node.pem` and `node.key` that load as mTLS.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = authority("test CA");
        let (cert, key) = leaf(&ca, &[HOST], BOTH);
        let files = Files { dir };
        files.write("ca.pem", &ca.pem);
        files.write("node.pem", &cert);
        files.write("node.key", &key);
        files
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn path_text(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).expect("read test file")
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).expect("write test file");
    }

    fn mutual(&self) -> TlsPaths {
        TlsPaths { key: self.path("node.key"), cert: self.path("node.pem"), ca: Some(self.path("ca.pem")) }
    }
}

fn load_error(paths: &TlsPaths) -> String {
    TlsMaterial::load(paths, HOST).expect_err("must be refused").to_string()
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{message:?} should mention {part:?}");
    }
}

#[test]
fn good_mutual_tls_files_load_and_demand_client_certificates() {
    let files = Files::new();
    let material = TlsMaterial::load(&files.mutual(), HOST).expect("good files load");
    assert!(material.is_mutual());
    assert!(!format!("{material:?}").contains("PRIVATE"), "Debug must not show the key");
}

#[test]
fn server_only_tls_loads_when_the_chain_ends_with_its_ca() {
    let files = Files::new();
    let chain = format!("{}{}", files.path_text("node.pem"), files.path_text("ca.pem"));
    files.write("chain.pem", &chain);
    let paths = TlsPaths { key: files.path("node.key"), cert: files.path("chain.pem"), ca: None };
    let material = TlsMaterial::load(&paths, HOST).expect("chain with its CA loads");
    assert!(!material.is_mutual());
}

#[test]
fn missing_key_file_names_setting_and_path() {
    let files = Files::new();
    let paths = TlsPaths { key: files.path("absent.key"), ..files.mutual() };
    let message = load_error(&paths);
    assert_mentions(&message, &["tls-key-path", "absent.key", "cannot read", "No such file"]);
}

#[test]
fn unreadable_certificate_names_setting_and_reason() {
    let files = Files::new();
    std::fs::create_dir(files.path("dir.pem")).unwrap();
    let paths = TlsPaths { cert: files.path("dir.pem"), ..files.mutual() };
    let message = load_error(&paths);
    assert_mentions(&message, &["tls-cert-path", "dir.pem", "cannot read", "directory"]);
}

#[test]
fn certificate_file_without_pem_block_is_refused() {
    let files = Files::new();
    files.write("node.pem", "this is not a certificate\n");
    let message = load_error(&files.mutual());
    assert_mentions(&message, &["tls-cert-path", "node.pem", "contains no PEM certificate"]);
}

#[test]
fn key_file_without_private_key_is_refused() {
    let files = Files::new();
    let certificate = files.path_text("node.pem");
    files.write("node.key", &certificate);
    let message = load_error(&files.mutual());
    assert_mentions(&message, &["tls-key-path", "node.key", "contains no PEM private key"]);
}

#[test]
fn key_of_another_certificate_is_a_mismatch() {
    let files = Files::new();
    files.write("node.key", &KeyPair::generate().unwrap().serialize_pem());
    let message = load_error(&files.mutual());
    assert_mentions(&message, &["tls-key-path", "node.key", "does not match the certificate", "node.pem"]);
}

#[test]
fn certificate_signed_by_another_ca_is_refused() {
    let files = Files::new();
    files.write("ca.pem", &authority("other CA").pem);
    let message = load_error(&files.mutual());
    assert_mentions(&message, &["tls-cert-path", "node.pem", "does not verify against", "ca.pem"]);
}

#[test]
fn empty_or_missing_ca_file_is_refused() {
    let files = Files::new();
    files.write("ca.pem", "");
    assert_mentions(&load_error(&files.mutual()), &["tls-ca-path", "ca.pem", "contains no PEM certificate"]);
    std::fs::remove_file(files.path("ca.pem")).unwrap();
    assert_mentions(&load_error(&files.mutual()), &["tls-ca-path", "ca.pem", "cannot read"]);
}

#[test]
fn certificate_not_covering_the_advertised_host_is_refused() {
    let files = Files::new();
    let message = TlsMaterial::load(&files.mutual(), "127.0.0.2").expect_err("wrong host").to_string();
    assert_mentions(&message, &["tls-cert-path", "advertised host 127.0.0.2", "subject alternative names"]);
}

#[test]
fn server_only_certificate_cannot_serve_mutual_tls_between_peers() {
    let files = Files::new();
    let ca = authority("test CA 2");
    let (cert, key) = leaf(&ca, &[HOST], &[ExtendedKeyUsagePurpose::ServerAuth]);
    files.write("ca.pem", &ca.pem);
    files.write("node.pem", &cert);
    files.write("node.key", &key);
    let message = load_error(&files.mutual());
    assert_mentions(&message, &["tls-cert-path", "client certificate", "client authentication"]);
}

#[test]
fn server_only_tls_without_the_ca_in_the_chain_says_how_to_fix_it() {
    let files = Files::new();
    let paths = TlsPaths { ca: None, ..files.mutual() };
    let message = load_error(&paths);
    assert_mentions(&message, &["tls-cert-path", "node.pem", "does not verify against", "end that file with"]);
}
