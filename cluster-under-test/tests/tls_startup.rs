//! Goal: the `hserver` binary refuses to start with unusable TLS files,
//! exits 2 (configuration error) and says which file and what is wrong,
//! before touching ZooKeeper. Method: run the real binary with a missing
//! key and with a key that belongs to another certificate.

use std::process::Command;

use rcgen::{CertificateParams, DnType, KeyPair};

fn hserver(tls_args: &[&str]) -> (Option<i32>, String) {
    let data = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_hserver"))
        .args(["--node-id", "1", "--bind", "127.0.0.1:1", "--zk", "127.0.0.1:1", "--data-dir"])
        .arg(data.path())
        .arg("--enable-tls")
        .args(tls_args)
        .output()
        .expect("hserver runs");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn missing_key_file_is_a_configuration_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("absent.key");
    let cert = dir.path().join("node.pem");
    let (code, stderr) = hserver(&["--tls-key-path", key.to_str().unwrap(), "--tls-cert-path", cert.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&format!("tls-key-path {}: cannot read", key.display())), "{stderr}");
}

#[test]
fn key_of_another_certificate_is_refused_at_startup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "node");
    let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
    let (cert_path, key_path) = (dir.path().join("node.pem"), dir.path().join("other.key"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let args = ["--tls-key-path", key_path.to_str().unwrap(), "--tls-cert-path", cert_path.to_str().unwrap()];
    let (code, stderr) = hserver(&args);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("does not match the certificate in tls-cert-path"), "{stderr}");
}
