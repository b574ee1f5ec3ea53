//! Length-prefixed frames: a 4-byte big-endian length, then that many bytes. The length
//! is checked against the caller's limit before anything is allocated.

use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use zeroize::Zeroize;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    Oversized { len: usize, max: usize },
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads one frame of at most `max` bytes. `Ok(None)` is a clean end of stream between
/// frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut header = [0u8; 4];
    let mut filled = 0;
    while filled < header.len() {
        let rest = header.get_mut(filled..).unwrap_or_default();
        let n = reader.read(rest).await?;
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated)
            };
        }
        filled += n;
    }
    let len = u32::from_be_bytes(header) as usize;
    if len > max {
        return Err(FrameError::Oversized { len, max });
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await.map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            FrameError::Truncated
        } else {
            FrameError::Io(e)
        }
    })?;
    Ok(Some(body))
}

/// Writes one frame; refuses bodies over `max` (the receiver would refuse them).
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    body: &[u8],
    max: usize,
) -> Result<(), FrameError> {
    if body.len() > max {
        return Err(FrameError::Oversized {
            len: body.len(),
            max,
        });
    }
    let len = u32::try_from(body.len()).map_err(|_| FrameError::Oversized {
        len: body.len(),
        max,
    })?;
    // One write: over TLS that is one record, and the peer wakes once per frame.
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    let written = writer.write_all(&frame).await;
    frame.zeroize();
    written?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trips_and_limits_at_exactly_max() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_frame(&mut a, &[7u8; 100], 100).await.unwrap();
        write_frame(&mut a, &[], 100).await.unwrap();
        assert!(matches!(
            write_frame(&mut a, &[7u8; 101], 100).await,
            Err(FrameError::Oversized { len: 101, max: 100 })
        ));
        drop(a);
        assert_eq!(read_frame(&mut b, 100).await.unwrap(), Some(vec![7u8; 100]));
        assert_eq!(read_frame(&mut b, 100).await.unwrap(), Some(vec![]));
        assert_eq!(read_frame(&mut b, 100).await.unwrap(), None);
    }

    #[tokio::test]
    async fn refuses_oversize_before_reading_the_body() {
        // Claims 4 GiB: refused from the header alone.
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert!(matches!(
            read_frame(&mut input, 1 << 20).await,
            Err(FrameError::Oversized { .. })
        ));
        let mut input: &[u8] = &[0, 0, 0, 101];
        assert!(matches!(
            read_frame(&mut input, 100).await,
            Err(FrameError::Oversized { len: 101, max: 100 })
        ));
    }

    #[tokio::test]
    async fn truncated_frames_are_errors() {
        let mut input: &[u8] = &[0, 0];
        assert!(matches!(
            read_frame(&mut input, 100).await,
            Err(FrameError::Truncated)
        ));
        let mut input: &[u8] = &[0, 0, 0, 4, 1, 2];
        assert!(matches!(
            read_frame(&mut input, 100).await,
            Err(FrameError::Truncated)
        ));
    }
}
