//! A peer that does not follow the protocol, for tests only (feature `adversary`): it
//! completes TLS with a context's key, then sends a hello carrying whatever document the
//! caller makes for the connection's exporter value, and reports the other side's
//! verdict. Production builds do not contain this module.

use super::evidence::{Hello, MAX_HELLO_LEN, MAX_VERDICT_LEN, decode_verdict};
use super::{ChannelContext, ChannelError, TLS_SERVER_NAME, exporter};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use transport::frame::{read_frame, write_frame};

impl ChannelContext {
    /// Dials over `stream` as this context's node, but sends `make_document(exporter)` as
    /// its evidence. Returns the peer's verdict: `Ok(())` accepted, `Err(reason)` refused.
    pub async fn connect_sending<S>(
        &self,
        stream: S,
        make_document: impl FnOnce(&[u8; 32]) -> Vec<u8>,
    ) -> Result<Result<(), String>, ChannelError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let name =
            ServerName::try_from(TLS_SERVER_NAME).map_err(|e| ChannelError::Tls(e.to_string()))?;
        let mut tls = tokio_rustls::TlsConnector::from(self.client.clone())
            .connect(name, stream)
            .await?;
        let exporter = exporter(tls.get_ref().1)?;
        let hello = Hello {
            node_id: self.node_id.clone(),
            document: make_document(&exporter),
        };
        write_frame(&mut tls, &hello.encode()?, MAX_HELLO_LEN).await?;
        // The peer's verdict on ours comes first; its own hello follows only if accepted.
        let verdict = read_frame(&mut tls, MAX_VERDICT_LEN)
            .await?
            .ok_or(ChannelError::Closed)?;
        decode_verdict(&verdict)
    }

    /// The DER SubjectPublicKeyInfo of this context's TLS key.
    pub fn tls_spki(&self) -> &[u8] {
        self.identity.spki_der()
    }
}
