//! The `serve` pipe protocol from hostile bytes: a reader splitting a stream
//! into request or reply frames (over the whole buffer, and through a
//! `FrameReader` fed in small chunks, which must agree), parsing each, and
//! decoding a hello.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pymw_core::wire::{WireError, frame};

/// Every frame `split_frame` accepts from the front of `buf`, then how the
/// stream ended: `Ok` for an incomplete (or no) tail, `Err` for a bad frame.
fn split_all(mut buf: &[u8], limit: u64, head: usize) -> (Vec<&[u8]>, Result<(), WireError>) {
    let mut frames = Vec::new();
    loop {
        match frame::split_frame(buf, limit, head) {
            Ok(Some((bytes, used))) => {
                assert_eq!(used, 4 + bytes.len());
                assert!(bytes.len() >= head);
                frames.push(bytes);
                buf = &buf[used..];
            }
            Ok(None) => return (frames, Ok(())),
            Err(e) => return (frames, Err(e)),
        }
    }
}

/// Hands out `data` a few bytes per read, as a pipe does.
struct Chunks<'a> {
    data: &'a [u8],
    sizes: std::iter::Cycle<std::slice::Iter<'static, usize>>,
}

impl std::io::Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (*self.sizes.next().expect("cycle"))
            .min(buf.len())
            .min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// What a pipe reader loop (`FrameReader` + `split_frame`) makes of `data`.
fn stream(data: &[u8], limit: u64, head: usize) -> (Vec<Vec<u8>>, Result<(), WireError>) {
    let mut source = Chunks {
        data,
        sizes: [1, 7, 64, 3, 4096, 2].iter().cycle(),
    };
    let mut reader = frame::FrameReader::new(0);
    let mut frames = Vec::new();
    loop {
        match frame::split_frame(reader.data(), limit, head) {
            Ok(Some((bytes, used))) => {
                frames.push(bytes.to_vec());
                reader.consume(used);
            }
            Ok(None) => {
                if reader.fill(&mut source).expect("reading a slice") == 0 {
                    return (frames, Ok(()));
                }
            }
            Err(e) => return (frames, Err(e)),
        }
    }
}

fn check(data: &[u8], limit: u64, head: usize) {
    let (frames, end) = split_all(data, limit, head);
    for &bytes in &frames {
        if head == frame::REQUEST_HEAD {
            let request = frame::parse_request(bytes);
            assert_eq!(request.payload.len(), bytes.len() - head);
        } else {
            let reply = frame::parse_reply(bytes);
            assert_eq!(reply.body.len(), bytes.len() - head);
            let _ = reply.outcome();
            let _ = reply.stats("host");
        }
    }
    let (streamed, streamed_end) = stream(data, limit, head);
    assert_eq!(streamed, frames, "FrameReader disagrees with split_frame");
    assert_eq!(streamed_end, end, "FrameReader ends differently");
}

fuzz_target!(|data: &[u8]| {
    check(data, 1 << 20, frame::REQUEST_HEAD);
    check(data, 1 << 20, frame::REPLY_HEAD);
    check(data, 64, frame::REPLY_HEAD);
    // A hello as the master reads it: magic, length, body.
    let hello = match data.strip_prefix(&frame::HELLO_MAGIC[..]) {
        Some(rest) => frame::split_frame(rest, 1 << 20, 0)
            .ok()
            .flatten()
            .map(|(body, _)| body),
        None => Some(data),
    };
    if let Some(Ok(hello)) = hello.map(frame::decode_hello) {
        let again = frame::encode_hello(&hello);
        assert_eq!(
            frame::decode_hello(&again[12..]).expect("re-encoded hello decodes"),
            hello
        );
    }
});
