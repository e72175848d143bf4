//! gRPC clients over mutual TLS for the tests, with certificates from the server's CA.

use super::{TestServer, cli, install_crypto};
use std::path::{Path, PathBuf};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// Issues a client certificate for `name` from the CA of `data_dir` with the CLI (which
/// refuses names of users that do not exist).
pub fn issue(data_dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    issue_with(data_dir, name, &[])
}

/// [`issue`] with the environment `env` (a database other than the data directory's).
pub fn issue_with(data_dir: &Path, name: &str, env: &[(&str, &str)]) -> (PathBuf, PathBuf) {
    let (ok, out, err) = cli(data_dir, &["certs", "issue-client", name], "", env);
    assert!(ok, "{out}{err}");
    let dir = data_dir.join("clients");
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-key.pem")),
    )
}

/// Issues a client certificate for a user who does not exist, through the library.
pub fn issue_for_nobody(data_dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(data_dir).expect("data dir");
    let issued = natterjack::dev_ca::issue_client(data_dir, name, &data_dir.join("clients"))
        .expect("issue a certificate");
    (issued.cert, issued.key)
}

/// A channel to the public gRPC listener, presenting `identity` if given.
pub fn channel(server: &TestServer, identity: Option<&(PathBuf, PathBuf)>) -> Channel {
    install_crypto();
    let ca = std::fs::read(server.data_dir().join("ca.pem")).expect("ca.pem");
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(cert).expect("certificate"),
            std::fs::read(key).expect("key"),
        ));
    }
    Channel::from_shared(server.grpc.clone().expect("grpc listener"))
        .expect("grpc url")
        .tls_config(tls)
        .expect("tls config")
        .connect_lazy()
}

/// The request id a gRPC status carries in its `x-request-id` metadata.
pub fn request_id_of(status: &tonic::Status) -> String {
    status
        .metadata()
        .get("x-request-id")
        .expect("an x-request-id")
        .to_str()
        .expect("a textual request id")
        .to_owned()
}
