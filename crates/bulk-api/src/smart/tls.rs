//! TLS for outgoing HTTPS: fetching clients' JWKS.
//!
//! reqwest is built with `rustls-no-provider`: no crypto provider is compiled
//! into it (aws-lc needs cmake and builds slowly), and a client it configures
//! itself panics unless a process-wide default provider was installed. So
//! every reqwest client in a process linking this crate is built here, with a
//! `rustls::ClientConfig` naming the ring provider explicitly; nothing is
//! installed process-wide.
//!
//! Roots: the platform's (as reqwest's own rustls setup uses them, through
//! `rustls-platform-verifier`: on Linux the system CA bundle), plus the
//! certificates of `auth.jwks_ca_file` for a hospital's private PKI.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::ClientConfig;
use rustls_platform_verifier::Verifier;

fn ring() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS configuration trusting the platform roots plus `extra_roots`.
/// Fails when it would trust nothing (no system CA bundle and no extra root),
/// or when an extra root is not a usable CA certificate.
pub(crate) fn client_config(extra_roots: Vec<CertificateDer<'static>>) -> Result<ClientConfig, String> {
    let provider = ring();
    let verifier = Verifier::new_with_extra_roots(extra_roots, provider.clone())
        .map_err(|e| format!("TLS roots: {e} (install the system CA certificates or set auth.jwks_ca_file)"))?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous() // Not dangerous: a full WebPKI verifier, only with our root set.
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

/// The CA certificates of a PEM bundle; an unreadable file, or one with no
/// certificate, is an error (a mistyped path must not silently trust less).
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate bundle: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// A reqwest client builder whose TLS uses ring and the platform roots.
///
/// Every reqwest client in a process that links `bulk-api` (tests, tools)
/// must start from this (or install a rustls default provider itself):
/// reqwest's own TLS setup panics without a provider. Where the platform has
/// no CA certificates it trusts no server, so plain `http://` still works and
/// `https://` fails closed.
pub fn http_client() -> reqwest::ClientBuilder {
    let config = client_config(Vec::new()).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "no TLS roots: this HTTP client can reach no https:// server");
        trusting_nothing()
    });
    reqwest::Client::builder().tls_backend_preconfigured(config)
}

/// A TLS configuration that trusts no server: for clients that only ever
/// speak plain HTTP, so they do not depend on the platform's CA bundle.
pub(crate) fn trusting_nothing() -> ClientConfig {
    ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_or_missing_is_an_error() {
        let dir = std::env::temp_dir().join(format!("fhir-bulk-ca-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").expect("write");
        assert!(read_ca_file(&empty).expect_err("empty").contains("no PEM certificate"));
        assert!(read_ca_file(&dir.join("missing.pem")).expect_err("missing").contains("cannot read"));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_client_builds_without_any_process_wide_crypto_provider() {
        assert!(CryptoProvider::get_default().is_none(), "no test installs a default provider");
        http_client().build().expect("builds with the explicit ring provider");
        assert!(CryptoProvider::get_default().is_none(), "building a client installs none either");
    }
}
