//! Helpers shared by the fuzz targets and the seed program.
//!
//! Envelopes carry a CRC-32 of their body, so almost every mutation of a
//! valid envelope stops at the checksum and the fuzzer never reaches the body
//! decoder. The envelope targets therefore read a mode byte first:
//!
//! - [`WRAP`] followed by body bytes: the body gets a valid header (magic,
//!   version, length, checksum), so the postcard decoder sees hostile bytes;
//! - anything else followed by bytes: the bytes are decoded as they are, so
//!   the header checks see hostile bytes too.

use pymw_core::wire::{FORMAT_VERSION, HEADER_LEN};
use std::borrow::Cow;

/// Mode byte: wrap the rest in a valid header.
pub const WRAP: u8 = 0;
/// Mode byte: decode the rest as it is.
pub const RAW: u8 = 1;

/// `body` behind a valid envelope header of the given magic.
pub fn wrap(magic: [u8; 8], body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
    bytes.extend_from_slice(&magic);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// The envelope bytes a fuzz input stands for (see the module docs).
pub fn envelope(magic: [u8; 8], data: &[u8]) -> Option<Cow<'_, [u8]>> {
    match data.split_first()? {
        (&WRAP, body) => Some(Cow::Owned(wrap(magic, body))),
        (_, raw) => Some(Cow::Borrowed(raw)),
    }
}
