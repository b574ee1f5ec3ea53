//! Arbitrary byte streams through `read_frame`, read whole and in small chunks. Reading
//! may not panic, every frame must respect the limit and be the bytes the stream carries,
//! and chunking may not change the outcome.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, ReadBuf};
use transport::frame::{FrameError, read_frame};

const MAX: usize = 4096;

/// Polls a future whose reader never waits: it must finish on the first poll.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a reader that never waits left the future pending"),
    }
}

/// Hands out at most `chunk` bytes per read.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.chunk.min(buf.remaining()).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        buf.put_slice(head);
        self.data = rest;
        Poll::Ready(Ok(()))
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Frame(Vec<u8>),
    End,
    Oversized(usize),
    Truncated,
}

fn outcome(result: Result<Option<Vec<u8>>, FrameError>) -> Outcome {
    match result {
        Ok(Some(frame)) => Outcome::Frame(frame),
        Ok(None) => Outcome::End,
        Err(FrameError::Oversized { len, max }) => {
            assert_eq!(max, MAX);
            assert!(len > MAX);
            Outcome::Oversized(len)
        }
        Err(FrameError::Truncated) => Outcome::Truncated,
        Err(e) => panic!("in-memory reader failed: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let mut whole = stream;
    let mut chunked = Chunked {
        data: stream,
        chunk: usize::from(chunk % 8) + 1,
    };
    loop {
        let offset = stream.len() - whole.len();
        let a = outcome(ready(read_frame(&mut whole, MAX)));
        let b = outcome(ready(read_frame(&mut chunked, MAX)));
        assert_eq!(a, b);
        let Outcome::Frame(frame) = a else {
            if a == Outcome::End {
                assert_eq!(offset, stream.len());
            }
            return;
        };
        assert!(frame.len() <= MAX);
        let header = u32::try_from(frame.len())
            .expect("bounded by MAX")
            .to_be_bytes();
        assert_eq!(stream.get(offset..offset + 4), Some(&header[..]));
        assert_eq!(
            stream.get(offset + 4..offset + 4 + frame.len()),
            Some(&frame[..])
        );
        assert_eq!(stream.len() - whole.len(), offset + 4 + frame.len());
    }
});
