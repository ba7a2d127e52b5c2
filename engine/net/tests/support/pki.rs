//! A throwaway PKI generated at test time with rcgen: a CA, a server certificate for 127.0.0.1 and
//! localhost, and a client certificate. Shared by the junction-net tests and the CLI tests
//! (`tests/mllp_interop.rs` includes this file by path).
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

use junction_net::{ClientTls, ServerTls};

/// PEM files in a temp dir: `ca.pem`, `server.pem`/`server.key`, `client.pem`/`client.key`.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all signed by the CA.
    pub fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        for (name, sans) in [
            ("server", vec!["localhost", "127.0.0.1"]),
            ("client", vec!["client"]),
        ] {
            let key = KeyPair::generate().unwrap();
            let params =
                CertificateParams::new(sans.into_iter().map(String::from).collect::<Vec<_>>())
                    .unwrap();
            let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem()).unwrap();
        }
        Self { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn server(&self, require_client_cert: bool) -> ServerTls {
        ServerTls {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: require_client_cert.then(|| self.path("ca.pem")),
        }
    }

    pub fn client(&self, with_identity: bool) -> ClientTls {
        ClientTls {
            ca: self.path("ca.pem"),
            identity: with_identity.then(|| (self.path("client.pem"), self.path("client.key"))),
            server_name: None,
        }
    }
}
