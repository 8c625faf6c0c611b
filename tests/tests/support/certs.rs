//! Test PKI made on the fly with rcgen: a CA, a server certificate for 127.0.0.1/localhost and
//! client certificates whose common name is the MQTT identity (`use_identity_as_username`).
//! Written as PEM files for Mosquitto and the gateway, and kept in memory for rustls clients.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate and its key, on disk and in memory.
#[derive(Debug)]
pub struct Issued {
    /// PEM certificate file.
    pub cert_file: PathBuf,
    /// PEM private key file (PKCS#8).
    pub key_file: PathBuf,
    /// DER certificate.
    pub cert_der: CertificateDer<'static>,
    /// DER key (PKCS#8).
    pub key_der: Vec<u8>,
}

/// A certificate authority that signs server and client certificates.
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
    dir: PathBuf,
    name: String,
    /// PEM file of the CA certificate.
    pub cert_file: PathBuf,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("cert_file", &self.cert_file)
            .finish()
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

impl Ca {
    /// A new CA named `name`, its PEM written to `{dir}/{name}.pem`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Footfall tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign CA");
        let cert_file = dir.join(format!("{name}.pem"));
        write(&cert_file, &cert.pem());
        Ca {
            cert,
            key,
            dir: dir.to_owned(),
            name: name.to_owned(),
            cert_file,
        }
    }

    fn issue(&self, file_stem: &str, cn: &str, sans: Vec<SanType>, server: bool) -> Issued {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign leaf certificate");
        // Named after the issuing CA too: two CAs may issue the same name in one directory.
        let cert_file = self.dir.join(format!("{}-{file_stem}.pem", self.name));
        let key_file = self.dir.join(format!("{}-{file_stem}.key", self.name));
        write(&cert_file, &cert.pem());
        write(&key_file, &key.serialize_pem());
        Issued {
            cert_file,
            key_file,
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// A server certificate for `127.0.0.1` and `localhost`.
    pub fn server(&self, file_stem: &str) -> Issued {
        self.issue(
            file_stem,
            "localhost",
            vec![
                SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                SanType::DnsName("localhost".try_into().expect("dns name")),
                // OpenSSL clients (mosquitto_pub) match an IP-literal host against DNS names.
                SanType::DnsName("127.0.0.1".try_into().expect("dns name")),
            ],
            true,
        )
    }

    /// A client certificate with common name `cn` (the MQTT username with
    /// `use_identity_as_username true`).
    pub fn client(&self, cn: &str) -> Issued {
        self.issue(&format!("client-{cn}"), cn, Vec::new(), false)
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }
}

/// A rustls client config trusting `ca` and presenting `client` (if any).
pub fn client_config(ca: &Ca, client: Option<&Issued>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).expect("add CA root");
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots);
    let cfg = match client {
        Some(c) => builder
            .with_client_auth_cert(
                vec![c.cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key_der.clone())),
            )
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(cfg)
}
