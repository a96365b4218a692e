//! Task identity and input hashes: SipHash-2-4 with a 128-bit output.
//!
//! Both are stored on disk and compared across runs and builds, so the
//! function must never change: it is SipHash-2-4-128 exactly as the reference
//! implementation (github.com/veorq/SipHash) computes it, checked against its
//! test vectors below, under two fixed keys (one per purpose, so an input hash
//! can never equal an identity by construction). It is not a cryptographic
//! commitment: someone who controls both inputs could build a collision on
//! purpose; for the inputs of one's own program, an accidental collision is
//! as likely as guessing a 128-bit number.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The key of [`input_hash`]: the ASCII bytes `pymw-input-v1` and three zero
/// bytes.
const INPUT_KEY: [u64; 2] = [
    u64::from_le_bytes(*b"pymw-inp"),
    u64::from_le_bytes(*b"ut-v1\0\0\0"),
];

/// The key of [`TaskIdentity`]: the ASCII bytes `pymw-task-id-v1` and a zero
/// byte.
const IDENTITY_KEY: [u64; 2] = [
    u64::from_le_bytes(*b"pymw-tas"),
    u64::from_le_bytes(*b"k-id-v1\0"),
];

/// SipHash-2-4 with a 128-bit output, as the reference implementation writes
/// it (two little-endian 64-bit words).
pub(crate) fn siphash128(key: [u64; 2], data: &[u8]) -> [u8; 16] {
    #[inline(always)]
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13);
        v[1] ^= v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16);
        v[3] ^= v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21);
        v[3] ^= v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17);
        v[1] ^= v[2];
        v[2] = v[2].rotate_left(32);
    }
    let [k0, k1] = key;
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d ^ 0xee,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let m = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let mut last = [0u8; 8];
    let tail = chunks.remainder();
    last[..tail.len()].copy_from_slice(tail);
    let b = u64::from_le_bytes(last) | ((data.len() as u64) << 56);
    v[3] ^= b;
    round(&mut v);
    round(&mut v);
    v[0] ^= b;
    v[2] ^= 0xee;
    for _ in 0..4 {
        round(&mut v);
    }
    let low = v[0] ^ v[1] ^ v[2] ^ v[3];
    v[1] ^= 0xdd;
    for _ in 0..4 {
        round(&mut v);
    }
    let high = v[0] ^ v[1] ^ v[2] ^ v[3];
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&low.to_le_bytes());
    out[8..].copy_from_slice(&high.to_le_bytes());
    out
}

fn write_hex(bytes: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

fn parse_hex16(s: &str) -> Result<[u8; 16], ParseHexError> {
    let s = s.as_bytes();
    if s.len() != 32 {
        return Err(ParseHexError);
    }
    let mut out = [0u8; 16];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let text = std::str::from_utf8(pair).map_err(|_| ParseHexError)?;
        out[i] = u8::from_str_radix(text, 16).map_err(|_| ParseHexError)?;
    }
    Ok(out)
}

/// A string that is not 32 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 32 hexadecimal digits")]
pub struct ParseHexError;

/// The hash of a task's input bytes (its postcard-encoded arguments).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct InputHash(pub [u8; 16]);

/// Hashes a task's input bytes (SipHash-2-4-128 under the input key).
pub fn input_hash(input: &[u8]) -> InputHash {
    InputHash(siphash128(INPUT_KEY, input))
}

impl fmt::Display for InputHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(&self.0, f)
    }
}

impl fmt::Debug for InputHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InputHash({self})")
    }
}

impl FromStr for InputHash {
    type Err = ParseHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex16(s).map(InputHash)
    }
}

/// Who a task is within a run, the same across restarts of the master: a
/// 128-bit hash of the task's fingerprint (its name and types), the hash of
/// its input bytes and its position in its map or submission sequence. A
/// changed input or a rebuilt task with other types is a new task, never a
/// stale result.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TaskIdentity(pub [u8; 16]);

impl TaskIdentity {
    /// The identity of the task at `position` running the task with
    /// `fingerprint` on `input` (postcard-encoded arguments).
    pub fn new(fingerprint: u64, input: &[u8], position: u64) -> TaskIdentity {
        TaskIdentity::from_parts(fingerprint, input_hash(input), position)
    }

    /// The same as [`TaskIdentity::new`], from an input hash already computed.
    pub fn from_parts(fingerprint: u64, input: InputHash, position: u64) -> TaskIdentity {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&fingerprint.to_le_bytes());
        bytes[8..24].copy_from_slice(&input.0);
        bytes[24..].copy_from_slice(&position.to_le_bytes());
        TaskIdentity(siphash128(IDENTITY_KEY, &bytes))
    }

    /// The identity as 32 lowercase hexadecimal digits.
    pub fn to_hex(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for TaskIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(&self.0, f)
    }
}

impl fmt::Debug for TaskIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskIdentity({self})")
    }
}

impl FromStr for TaskIdentity {
    type Err = ParseHexError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_hex16(s).map(TaskIdentity)
    }
}

macro_rules! hex_serde {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.collect_str(self)
                } else {
                    self.0.serialize(serializer)
                }
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                if deserializer.is_human_readable() {
                    let text = String::deserialize(deserializer)?;
                    text.parse().map_err(serde::de::Error::custom)
                } else {
                    <[u8; 16]>::deserialize(deserializer).map(Self)
                }
            }
        }
    };
}
hex_serde!(TaskIdentity);
hex_serde!(InputHash);

/// A `HashMap` hasher for identities, which are already uniformly random:
/// their first eight bytes are the hash.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdentityHash;

impl std::hash::BuildHasher for IdentityHash {
    type Hasher = IdentityHasher;
    fn build_hasher(&self) -> IdentityHasher {
        IdentityHasher(0)
    }
}

/// See [`IdentityHash`].
#[derive(Debug, Default)]
pub struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 16]` hashes as its length (a usize) then its bytes.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }
    fn write_usize(&mut self, _: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `vectors_sip128` of the reference implementation: key 00..0f, message
    /// 00..len-1.
    #[test]
    fn reference_vectors() {
        let key = [
            u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]),
            u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]),
        ];
        let message: Vec<u8> = (0..64).collect();
        let expected = [
            (0, "a3817f04ba25a8e66df67214c7550293"),
            (1, "da87c1d86b99af44347659119b22fc45"),
            (2, "8177228da4a45dc7fca38bdef60affe4"),
            (3, "9c70b60c5267a94e5f33b6b02985ed51"),
            (4, "f88164c12d9c8faf7d0f6e7c7bcd5579"),
            (5, "1368875980776f8854527a07690e9627"),
            (6, "14eeca338b208613485ea0308fd7a15e"),
            (7, "a1f1ebbed8dbc153c0b84aa61ff08239"),
            (8, "3b62a9ba6258f5610f83e264f31497b4"),
            (9, "264499060ad9baabc47f8b02bb6d71ed"),
        ];
        for (len, want) in expected {
            assert_eq!(hex(&siphash128(key, &message[..len])), want, "length {len}");
        }
    }

    /// The values every store ever written depends on.
    #[test]
    fn stable_values() {
        assert_eq!(
            input_hash(b"").to_string(),
            hex(&siphash128(INPUT_KEY, b""))
        );
        let a = TaskIdentity::new(7, b"abc", 0);
        assert_eq!(a, TaskIdentity::from_parts(7, input_hash(b"abc"), 0));
        assert_ne!(a, TaskIdentity::new(7, b"abc", 1));
        assert_ne!(a, TaskIdentity::new(8, b"abc", 0));
        assert_ne!(a, TaskIdentity::new(7, b"abd", 0));
        assert_eq!(a.to_hex().parse::<TaskIdentity>().unwrap(), a);
        assert_eq!(
            TaskIdentity::new(1, &[1, 2, 3], 42).to_hex(),
            STABLE_IDENTITY
        );
    }

    /// Pinned: changing it would orphan every stored run and cache entry.
    const STABLE_IDENTITY: &str = "00cb268cc25c6bd832cd69e93d2a8ac2";
}
