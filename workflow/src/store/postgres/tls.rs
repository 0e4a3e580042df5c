//! TLS to the server, as the URL's `sslmode` asks: one connector, built at
//! open, that every connection of the store uses (the setup connection,
//! the pool that the reads and the writer share, the lease thread's).
//!
//! | `sslmode`           | root certificate | connection                                   |
//! |---------------------|------------------|----------------------------------------------|
//! | `disable`           | ignored          | in clear                                     |
//! | `prefer` (default)  | none             | TLS if the server offers it, not verified    |
//! | `prefer`            | given            | TLS if offered, verified against it          |
//! | `require`           | none             | TLS, verified against the system's roots     |
//! | `require`           | given            | TLS, verified against it                     |
//!
//! Verified means the chain and the host name (libpq's `verify-full`).
//! Without the `postgres-tls` feature there is no TLS: `prefer` connects in
//! clear, and `require` or a root certificate refuse to open.

use std::path::{Path, PathBuf};

use tokio_postgres::config::SslMode;

use crate::error::{Error, Result};

/// The connector every connection of the store is made with.
#[cfg(feature = "postgres-tls")]
pub(super) type Connector = tokio_postgres_rustls::MakeRustlsConnect;

/// The connector every connection of the store is made with.
#[cfg(not(feature = "postgres-tls"))]
pub(super) type Connector = tokio_postgres::NoTls;

/// Another handle on the store's connector, for one more connection.
// `NoTls` is `Copy`, rustls's connector is not: one `clone` for both builds.
#[allow(clippy::clone_on_copy)]
pub(super) fn share(connector: &Connector) -> Connector {
    connector.clone()
}

/// Which certificates the server's must chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Trust {
    /// No TLS will be made (`disable`), or it is opportunistic (`prefer`
    /// without a root certificate), as libpq does it: encrypted against a
    /// listener, not authenticated.
    Unverified,
    /// The root certificates of this system (`SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` override where they are read from).
    System,
    /// The certificates of a PEM file.
    File(PathBuf),
}

/// What the URL's `sslmode` and the builder's root certificate ask for.
pub(super) fn trust(mode: SslMode, root: Option<&Path>) -> Result<Trust> {
    let root = root.map(Path::to_path_buf);
    match (mode, root) {
        (SslMode::Disable, _) => Ok(Trust::Unverified),
        (SslMode::Prefer, None) => Ok(Trust::Unverified),
        (SslMode::Require, None) => Ok(Trust::System),
        (SslMode::Prefer | SslMode::Require, Some(path)) => Ok(Trust::File(path)),
        (other, _) => Err(Error::InvalidOption(format!(
            "the PostgreSQL URL's sslmode {other:?} is not supported: use disable, prefer or require"
        ))),
    }
}

/// Builds the connector. Reads files (the root certificates), so it runs
/// off the async executor.
#[cfg(feature = "postgres-tls")]
pub(super) fn connector(mode: SslMode, trust: &Trust) -> Result<Connector> {
    use std::sync::Arc;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("cannot set up TLS: {e}")))?;
    let mut config = match trust {
        Trust::Unverified => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth(),
        Trust::System => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
        Trust::File(path) => builder
            .with_root_certificates(file_roots(path)?)
            .with_no_client_auth(),
    };
    // What libpq 17 sends, and what a server reached with
    // `sslnegotiation=direct` requires.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    if mode == SslMode::Prefer && *trust == Trust::Unverified {
        tracing::debug!(
            "sslmode=prefer without a root certificate: TLS when the server offers it, its certificate not verified"
        );
    }
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Without the `postgres-tls` feature: no TLS, and a URL or an option that
/// asks for it refuses to open rather than connect in clear.
#[cfg(not(feature = "postgres-tls"))]
pub(super) fn connector(mode: SslMode, trust: &Trust) -> Result<Connector> {
    const ENABLE: &str = "enable the `postgres-tls` cargo feature of replayflow";
    if let Trust::File(path) = trust {
        return Err(Error::InvalidOption(format!(
            "a PostgreSQL root certificate (`{}`) was given, but this build has no TLS: {ENABLE}",
            path.display()
        )));
    }
    if mode == SslMode::Require {
        return Err(Error::InvalidOption(format!(
            "the PostgreSQL URL has sslmode=require, but this build has no TLS and will not connect in clear: {ENABLE}"
        )));
    }
    Ok(tokio_postgres::NoTls)
}

#[cfg(feature = "postgres-tls")]
fn system_roots() -> Result<rustls::RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "a root certificate of this system could not be read");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if ignored > 0 {
        tracing::warn!(
            ignored,
            "root certificates of this system that rustls cannot use were left out"
        );
    }
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(Error::Tls(format!(
            "sslmode=require verifies the server's certificate, and no root certificate of this system could be read{why}: install the system's CA certificates, or give the server's with `RuntimeBuilder::postgres_root_certificate`"
        )));
    }
    Ok(roots)
}

#[cfg(feature = "postgres-tls")]
fn file_roots(path: &Path) -> Result<rustls::RootCertStore> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let unreadable = |e: &dyn std::fmt::Display| {
        Error::Tls(format!(
            "cannot read the root certificate `{}`: {e}",
            path.display()
        ))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
        let cert = cert.map_err(|e| unreadable(&e))?;
        roots.add(cert).map_err(|e| unreadable(&e))?;
    }
    if roots.is_empty() {
        return Err(unreadable(&"no PEM certificate in it"));
    }
    Ok(roots)
}

/// Accepts any certificate but checks that the server holds its key: what
/// libpq does with `sslmode=prefer` and no root certificate.
#[cfg(feature = "postgres-tls")]
#[derive(Debug)]
struct Unverified(std::sync::Arc<rustls::crypto::CryptoProvider>);

#[cfg(feature = "postgres-tls")]
impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A clearer error for a connection at open that failed in its TLS
/// handshake, or `None` when it failed otherwise.
#[cfg_attr(not(feature = "postgres-tls"), allow(unused_variables))]
pub(super) fn explain(e: &tokio_postgres::Error, mode: SslMode, trust: &Trust) -> Option<Error> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        // tokio-postgres gives this refusal no type of its own: its text is
        // all there is to tell it by.
        if mode == SslMode::Require && s.to_string() == "server does not support TLS" {
            return Some(Error::Tls(
                "the PostgreSQL server does not accept TLS connections, and the URL's sslmode=require forbids connecting in clear"
                    .into(),
            ));
        }
        #[cfg(feature = "postgres-tls")]
        if let Some(rustls) = rustls_error(s) {
            return Some(Error::Tls(handshake_failure(rustls, trust)));
        }
        source = s.source();
    }
    None
}

/// The rustls error inside `e`, which tokio-rustls wraps in an `io::Error`
/// (whose `source` skips the wrapped error itself).
#[cfg(feature = "postgres-tls")]
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(found) = e.downcast_ref::<rustls::Error>() {
        return Some(found);
    }
    e.downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

#[cfg(feature = "postgres-tls")]
fn handshake_failure(e: &rustls::Error, trust: &Trust) -> String {
    if !matches!(e, rustls::Error::InvalidCertificate(_)) {
        return format!("the TLS handshake with the PostgreSQL server failed: {e}");
    }
    match trust {
        Trust::System => format!(
            "the PostgreSQL server's certificate is not trusted ({e}): with sslmode=require it must be signed by a root certificate of this system and name the host of the URL; give the server's CA with `RuntimeBuilder::postgres_root_certificate` (or name it in SSL_CERT_FILE)"
        ),
        Trust::File(path) => format!(
            "the PostgreSQL server's certificate is not trusted ({e}): it must be signed by the root certificate in `{}` and name the host of the URL",
            path.display()
        ),
        Trust::Unverified => format!("the PostgreSQL server's certificate was refused: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_and_root_certificate_decide_what_is_verified() {
        let ca = Path::new("/etc/ca.pem");
        let file = Trust::File(ca.to_path_buf());
        let cases = [
            (SslMode::Disable, None, Trust::Unverified),
            (SslMode::Disable, Some(ca), Trust::Unverified),
            (SslMode::Prefer, None, Trust::Unverified),
            (SslMode::Prefer, Some(ca), file.clone()),
            (SslMode::Require, None, Trust::System),
            (SslMode::Require, Some(ca), file),
        ];
        for (mode, root, expected) in cases {
            assert_eq!(
                trust(mode, root).expect("a supported mode"),
                expected,
                "{mode:?} {root:?}"
            );
        }
    }

    #[cfg(not(feature = "postgres-tls"))]
    #[test]
    fn without_the_feature_require_and_a_root_certificate_refuse_to_open() {
        let required = connector(SslMode::Require, &Trust::System).expect_err("refused");
        assert!(
            required.to_string().contains("`postgres-tls`"),
            "{required}"
        );
        let file = Trust::File(PathBuf::from("/etc/ca.pem"));
        let rooted = connector(SslMode::Prefer, &file).expect_err("refused");
        assert!(rooted.to_string().contains("`postgres-tls`"), "{rooted}");
        assert!(connector(SslMode::Prefer, &Trust::Unverified).is_ok());
        assert!(connector(SslMode::Disable, &Trust::Unverified).is_ok());
    }

    #[cfg(feature = "postgres-tls")]
    #[test]
    fn a_root_certificate_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("replayflow-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let e = connector(SslMode::Require, &Trust::File(empty.clone()))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let missing = dir.join("missing.pem");
        let e = connector(SslMode::Require, &Trust::File(missing))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("missing.pem"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
