//! rustls client configuration for `mqtts://` (ring provider: no C toolchain needed for the
//! aarch64 build, unlike aws-lc).

use std::io::BufReader;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::config::TlsFiles;

fn certs(path: &std::path::Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let f = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut BufReader::new(f)).collect();
    let certs = certs.with_context(|| format!("read PEM certificates from {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{}: no PEM certificate found",
        path.display()
    );
    Ok(certs)
}

fn key(path: &std::path::Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    let f = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    rustls_pemfile::private_key(&mut BufReader::new(f))
        .with_context(|| format!("read PEM private key from {}", path.display()))?
        .with_context(|| format!("{}: no PEM private key found", path.display()))
}

/// Builds the client config: the CA bundle as the only roots, optional client certificate.
pub fn client_config(files: &TlsFiles) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for c in certs(&files.ca_file)? {
        roots
            .add(c)
            .with_context(|| format!("{}: unusable CA certificate", files.ca_file.display()))?;
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots);
    let cfg = match &files.client {
        Some((cert, k)) => builder
            .with_client_auth_cert(certs(cert)?, key(k)?)
            .context("client certificate and key do not match")?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}
