//! TLS for `rediss://` URLs: the user's options (`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`,
//! `ssl_cert_reqs`, redis-py's names), turned into a redis-rs `Client` for command connections and into a
//! rustls `ClientConfig` for the supervisor's own pub/sub socket.
//!
//! rustls runs on the `ring` crypto provider (no cmake/nasm needed to build), installed process-wide once
//! before the first TLS connection. Certificates are read when a client is built (at `Broker`/`Consumer`/
//! supervisor start), not at every reconnect.
//!
//! WARN: fork safety. A TLS session is state (sequence numbers, keys) shared with the server: a forked child
//! writing on its parent's session would corrupt it for both. Children build their own clients after fork
//! and leak (never use, never drop) the parent's objects, as for plain connections.

use std::sync::{Arc, OnceLock};

use redis::{Client, ClientTlsConfig, ErrorKind, RedisError, RedisResult, TlsCertificates};

use super::url::connection_info;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How to verify the server and who we are. Default: verify against the system's CA certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file of the CA certificate(s) to trust instead of the system's.
    pub ca_certs: Option<String>,
    /// PEM file of the client certificate chain (mutual TLS).
    pub certfile: Option<String>,
    /// PEM file of the client's private key; None: the key is in `certfile`.
    pub keyfile: Option<String>,
    /// `ssl_cert_reqs="none"`: accept any server certificate, any name (encryption without
    /// authentication; for tests and private networks only).
    pub insecure: bool,
}

/// A `rediss://` (or `valkeys://`) URL.
pub fn is_tls_url(url: &str) -> bool {
    matches!(
        url.split_once("://"),
        Some(("rediss" | "valkeys" | "rediss+cluster", _))
    )
}

/// Install the `ring` provider as rustls's process default, once. redis-rs builds its configs with
/// `ClientConfig::builder()`, which needs one.
pub fn install_crypto_provider() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // NOTE: Err means some provider is installed already, which is all we need.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn config_error(detail: String) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, "invalid TLS settings", detail))
}

fn read_pem(option: &str, path: Option<&String>) -> Result<Option<Vec<u8>>, String> {
    path.map(|p| std::fs::read(p).map_err(|e| format!("cannot read {option} {p:?}: {e}")))
        .transpose()
}

impl TlsOptions {
    /// From the Python options; `cert_reqs` is redis-py's `ssl_cert_reqs`: "required" (default) or "none".
    pub fn from_options(
        ca_certs: Option<String>,
        certfile: Option<String>,
        keyfile: Option<String>,
        cert_reqs: Option<&str>,
    ) -> Result<Self, String> {
        let insecure = match cert_reqs.unwrap_or("required") {
            "required" => false,
            "none" => true,
            other => return Err(format!("ssl_cert_reqs must be 'required' or 'none', got {other:?}")),
        };
        if keyfile.is_some() && certfile.is_none() {
            return Err("ssl_keyfile needs ssl_certfile".to_owned());
        }
        Ok(Self {
            ca_certs,
            certfile,
            keyfile,
            insecure,
        })
    }

    /// Anything beyond the defaults was asked for.
    pub fn is_set(&self) -> bool {
        *self != Self::default()
    }

    /// TLS options with a plain URL are a mistake worth reporting (they would be ignored).
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        if self.is_set() && !is_tls_url(url) {
            return Err("ssl_* options need a rediss:// url".to_owned());
        }
        Ok(())
    }

    /// The redis-rs client for `url` with these options. Reads the PEM files now.
    pub fn client(&self, url: &str) -> RedisResult<Client> {
        self.check_url(url).map_err(config_error)?;
        if !is_tls_url(url) {
            return Client::open(connection_info(url)?);
        }
        install_crypto_provider();
        let info = connection_info(self.node_url(url).as_str())?;
        match self.certificates()? {
            None => Client::open(info),
            Some(certs) => Client::build_with_tls(info, certs),
        }
    }

    /// A TLS URL (`rediss://`) with the `#insecure` fragment when certificates are not verified. NOTE: redis-rs
    /// turns that fragment into "no certificate verification, no SNI".
    pub fn node_url(&self, url: &str) -> String {
        if self.insecure && !url.contains('#') {
            format!("{url}#insecure")
        } else {
            url.to_owned()
        }
    }

    /// The CA and client certificates to give redis-rs, None for the defaults. Reads the PEM files now.
    pub fn certificates(&self) -> RedisResult<Option<TlsCertificates>> {
        let root_cert = read_pem("ssl_ca_certs", self.ca_certs.as_ref()).map_err(config_error)?;
        if root_cert.is_some() {
            // NOTE: redis-rs would take a file without certificates as an empty trust store.
            self.root_store().map_err(config_error)?;
        }
        let client_tls = self.client_identity_pem().map_err(config_error)?;
        if root_cert.is_none() && client_tls.is_none() {
            return Ok(None);
        }
        Ok(Some(TlsCertificates { client_tls, root_cert }))
    }

    fn client_identity_pem(&self) -> Result<Option<ClientTlsConfig>, String> {
        let Some(client_cert) = read_pem("ssl_certfile", self.certfile.as_ref())? else {
            return Ok(None);
        };
        let client_key = match read_pem("ssl_keyfile", self.keyfile.as_ref())? {
            Some(key) => key,
            None => client_cert.clone(),
        };
        Ok(Some(ClientTlsConfig {
            client_cert,
            client_key,
        }))
    }

    /// A rustls config equivalent to what redis-rs builds, for the pub/sub socket.
    pub fn rustls_config(&self) -> Result<Arc<ClientConfig>, String> {
        install_crypto_provider();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
        } else {
            builder.with_root_certificates(self.root_store()?)
        };
        let mut config = match self.client_identity_pem()? {
            Some(pem) => {
                let chain = CertificateDer::pem_slice_iter(&pem.client_cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("ssl_certfile is not a PEM certificate chain: {e}"))?;
                let key = PrivateKeyDer::from_pem_slice(&pem.client_key)
                    .map_err(|e| format!("no private key found in ssl_keyfile/ssl_certfile: {e}"))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("unusable client certificate: {e}"))?
            }
            None => builder.with_no_client_auth(),
        };
        if self.insecure {
            config.enable_sni = false;
        }
        Ok(Arc::new(config))
    }

    fn root_store(&self) -> Result<RootCertStore, String> {
        let mut store = RootCertStore::empty();
        if let Some(pem) = read_pem("ssl_ca_certs", self.ca_certs.as_ref())? {
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("ssl_ca_certs is not a PEM certificate file: {e}"))?;
                store
                    .add(cert)
                    .map_err(|e| format!("unusable certificate in ssl_ca_certs: {e}"))?;
            }
            if store.is_empty() {
                return Err("ssl_ca_certs holds no certificate".to_owned());
            }
            return Ok(store);
        }
        let found = rustls_native_certs::load_native_certs();
        store.add_parsable_certificates(found.certs);
        if store.is_empty() {
            let why = found.errors.first().map(ToString::to_string).unwrap_or_default();
            return Err(format!("no system CA certificates found ({why}); set ssl_ca_certs"));
        }
        Ok(store)
    }
}

/// `ssl_cert_reqs="none"`: any certificate is accepted, but handshake signatures are still checked.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_urls() {
        assert!(is_tls_url("rediss://h:1/0"));
        assert!(is_tls_url("valkeys://h"));
        assert!(!is_tls_url("redis://h:1/0"));
        assert!(!is_tls_url("unix:///tmp/x"));
        assert!(!is_tls_url("rediss"));
    }

    #[test]
    fn options_need_a_tls_url() {
        let opts = TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        };
        assert!(opts.check_url("redis://h").is_err());
        assert!(opts.check_url("rediss://h").is_ok());
        assert!(TlsOptions::default().check_url("redis://h").is_ok());
        assert!(opts.client("redis://h").is_err());
    }

    #[test]
    fn missing_files_are_named() {
        let opts = TlsOptions {
            ca_certs: Some("/nonexistent/ca.pem".to_owned()),
            ..TlsOptions::default()
        };
        let err = opts.rustls_config().expect_err("missing file");
        assert!(
            err.contains("ssl_ca_certs") && err.contains("/nonexistent/ca.pem"),
            "{err}"
        );
        let err = opts
            .client("rediss://127.0.0.1:1")
            .expect_err("missing file")
            .to_string();
        assert!(err.contains("ssl_ca_certs"), "{err}");
    }

    #[test]
    fn insecure_config_builds_without_roots() {
        let opts = TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        };
        assert!(!opts.rustls_config().expect("config").enable_sni);
        assert!(opts.client("rediss://127.0.0.1:1/0").is_ok());
    }
}
