//! Certificates made fresh for each test with rcgen (no private key is checked in): one CA, a
//! server certificate for `localhost` and `127.0.0.1`, and client certificates, written as PEM
//! files into a temp dir that lives as long as the [`TestPki`].

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use tempfile::TempDir;

/// A CA and the files of the certificates it issued.
pub struct TestPki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its private key, as PEM files.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestPki {
    /// A new CA named `name`; its certificate is [`TestPki::ca_cert`].
    pub fn new(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("modelgate-pki-")
            .tempdir()
            .expect("temp dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("self-sign the CA");
        let pki = Self { dir, ca };
        write(&pki.ca_cert(), &pki.ca.pem());
        pki
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate (PEM), what clients trust and servers check client certificates with.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate valid for `localhost` and `127.0.0.1`.
    pub fn server(&self, name: &str) -> CertFiles {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned()]).expect("server params");
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(name, params)
    }

    /// A client certificate with common name `name`, for mTLS.
    pub fn client(&self, name: &str) -> CertFiles {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(name, params)
    }

    fn issue(&self, name: &str, mut params: CertificateParams) -> CertFiles {
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.ca).expect("sign");
        let files = CertFiles {
            cert: self.dir.path().join(format!("{name}.pem")),
            key: self.dir.path().join(format!("{name}-key.pem")),
        };
        write(&files.cert, &cert.pem());
        write(&files.key, &key.serialize_pem());
        files
    }
}

fn write(path: &Path, pem: &str) {
    std::fs::write(path, pem).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
