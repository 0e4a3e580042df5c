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

/// The file parameters of a libpq URL, which tokio-postgres does not read.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Files {
    /// `sslrootcert`: the certificates the server's must chain to.
    pub root: Option<PathBuf>,
    /// `sslcert`: this client's certificate (and its chain).
    pub cert: Option<PathBuf>,
    /// `sslkey`: its private key.
    pub key: Option<PathBuf>,
}

/// Takes `sslrootcert`, `sslcert` and `sslkey` out of a `postgres://` URL's
/// query (percent-decoded), leaving the rest for tokio-postgres. A
/// `key=value` connection string is left as it is.
pub(super) fn split_files(url: &str) -> Result<(String, Files)> {
    let mut files = Files::default();
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), files));
    };
    if !(base.starts_with("postgres://") || base.starts_with("postgresql://")) {
        return Ok((url.to_owned(), files));
    }
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "sslrootcert" => &mut files.root,
            "sslcert" => &mut files.cert,
            "sslkey" => &mut files.key,
            _ => {
                kept.push(pair);
                continue;
            }
        };
        let path = percent_decode(value).ok_or_else(|| {
            Error::InvalidOption(format!(
                "the PostgreSQL URL's {key} is not a valid percent-encoded path"
            ))
        })?;
        *slot = Some(PathBuf::from(path));
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, files))
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Builds the connector, with this client's certificate and key if given.
/// Reads files (the certificates), so it runs off the async executor.
#[cfg(feature = "postgres-tls")]
pub(super) fn connector(
    mode: SslMode,
    trust: &Trust,
    client: Option<&(PathBuf, PathBuf)>,
) -> Result<Connector> {
    use std::sync::Arc;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("cannot set up TLS: {e}")))?;
    let builder = match trust {
        Trust::Unverified => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider))),
        Trust::System => builder.with_root_certificates(system_roots()?),
        Trust::File(path) => builder.with_root_certificates(file_roots(path)?),
    };
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let (chain, key_der) = client_identity(cert, key)?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                Error::Tls(format!(
                    "the client certificate `{}` and key `{}` cannot be used together: {e}",
                    cert.display(),
                    key.display()
                ))
            })?
        }
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
pub(super) fn connector(
    mode: SslMode,
    trust: &Trust,
    client: Option<&(PathBuf, PathBuf)>,
) -> Result<Connector> {
    const ENABLE: &str = "enable the `postgres-tls` cargo feature of replayflow";
    if let Some((cert, _)) = client {
        return Err(Error::InvalidOption(format!(
            "a PostgreSQL client certificate (`{}`) was given, but this build has no TLS: {ENABLE}",
            cert.display()
        )));
    }
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

/// This client's certificate chain and key, from their PEM files.
#[cfg(feature = "postgres-tls")]
fn client_identity(
    cert: &Path,
    key: &Path,
) -> Result<(
    Vec<rustls::pki_types::CertificateDer<'static>>,
    rustls::pki_types::PrivateKeyDer<'static>,
)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let unreadable = |path: &Path, what: &str, e: &dyn std::fmt::Display| {
        Error::Tls(format!(
            "cannot read the client {what} `{}`: {e}",
            path.display()
        ))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| unreadable(cert, "certificate", &e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| unreadable(cert, "certificate", &e))?;
    if chain.is_empty() {
        return Err(unreadable(cert, "certificate", &"no PEM certificate in it"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| unreadable(key, "key", &e))?;
    Ok((chain, key_der))
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
    if let Some(db) = e.as_db_error()
        && db.message().contains("client certificate")
    {
        return Some(Error::Tls(format!(
            "the PostgreSQL server refused the connection: {}; give this client's certificate and key with `RuntimeBuilder::postgres_client_certificate`, or sslcert and sslkey in the URL",
            db.message()
        )));
    }
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
    fn libpq_file_parameters_are_taken_out_of_the_url() {
        let (rest, files) = split_files(
            "postgres://u@h/db?sslmode=require&sslrootcert=%2Fetc%2Fca.pem&sslcert=/c.crt&application_name=x&sslkey=k%20y.pem",
        )
        .expect("a valid URL");
        assert_eq!(rest, "postgres://u@h/db?sslmode=require&application_name=x");
        assert_eq!(
            files,
            Files {
                root: Some(PathBuf::from("/etc/ca.pem")),
                cert: Some(PathBuf::from("/c.crt")),
                key: Some(PathBuf::from("k y.pem")),
            }
        );
        let (rest, files) = split_files("postgres://u@h/db?sslcert=/c.crt").expect("valid");
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(files.cert, Some(PathBuf::from("/c.crt")));
        let plain = "host=h user=u sslmode=require";
        assert_eq!(
            split_files(plain).expect("valid"),
            (plain.to_owned(), Files::default())
        );
        assert!(split_files("postgres://h/db?sslcert=%zz").is_err());
    }

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
        let required = connector(SslMode::Require, &Trust::System, None).expect_err("refused");
        assert!(
            required.to_string().contains("`postgres-tls`"),
            "{required}"
        );
        let file = Trust::File(PathBuf::from("/etc/ca.pem"));
        let rooted = connector(SslMode::Prefer, &file, None).expect_err("refused");
        assert!(rooted.to_string().contains("`postgres-tls`"), "{rooted}");
        assert!(connector(SslMode::Prefer, &Trust::Unverified, None).is_ok());
        assert!(connector(SslMode::Disable, &Trust::Unverified, None).is_ok());
        let client = (PathBuf::from("/etc/c.crt"), PathBuf::from("/etc/c.key"));
        let e = connector(SslMode::Prefer, &Trust::Unverified, Some(&client)).expect_err("refused");
        assert!(e.to_string().contains("client certificate"), "{e}");
    }

    #[cfg(feature = "postgres-tls")]
    #[test]
    fn a_root_certificate_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("replayflow-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let e = connector(SslMode::Require, &Trust::File(empty.clone()), None)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let missing = dir.join("missing.pem");
        let e = connector(SslMode::Require, &Trust::File(missing), None)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("missing.pem"), "{e}");
        // A client certificate without a key that reads.
        let cert = dir.join("client.crt");
        std::fs::write(&cert, "not a certificate\n").expect("write");
        let client = (cert, dir.join("client.key"));
        let e = connector(SslMode::Prefer, &Trust::Unverified, Some(&client))
            .err()
            .expect("refused");
        assert!(e.to_string().contains("client certificate"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
