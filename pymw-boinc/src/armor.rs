//! Text armor for binary input envelopes.
//!
//! Remote submission sends inputs inline, inside the request's XML, which
//! can carry only text (see [`crate::remote`]). An input envelope is binary,
//! so it travels as
//!
//! ```text
//! pymw-input-base64 <job name>
//! <standard base64, 76 characters per line>
//! ```
//!
//! The job name in the first line makes every job's inline file distinct:
//! the server names an inline file after the MD5 of its content, and two
//! jobs sharing one file would lose it to `file_deleter` when the first of
//! them is assimilated. The worker role (`boinc-run`) accepts an input in
//! either form: a raw envelope (it starts with the envelope's magic bytes)
//! or this armor.

/// First word of an armored input.
pub const ARMOR_HEADER: &str = "pymw-input-base64";

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const LINE: usize = 76;

/// Armors `bytes` for the job `tag` (a name without whitespace).
pub fn armor(tag: &str, bytes: &[u8]) -> String {
    let encoded = encode(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / LINE + tag.len() + 24);
    out.push_str(ARMOR_HEADER);
    out.push(' ');
    out.push_str(tag);
    out.push('\n');
    for chunk in encoded.as_bytes().chunks(LINE) {
        // Base64 is ASCII.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Whether `head` (the start of a file) is an armored input.
pub fn is_armored(head: &[u8]) -> bool {
    head.starts_with(ARMOR_HEADER.as_bytes())
        && head
            .get(ARMOR_HEADER.len())
            .is_none_or(|&b| b == b' ' || b == b'\n' || b == b'\r')
}

/// The bytes of an armored input; at most `limit` of them.
pub fn dearmor(text: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    if !is_armored(text) {
        return Err(format!("not a `{ARMOR_HEADER}` text"));
    }
    let body = match text.iter().position(|&b| b == b'\n') {
        Some(p) => &text[p + 1..],
        None => &[][..],
    };
    let too_large = || format!("armored input decodes to more than {limit} bytes");
    let coded = body.iter().filter(|b| !b.is_ascii_whitespace()).count() as u64;
    if (coded / 4).saturating_mul(3) > limit.saturating_add(3) {
        return Err(too_large());
    }
    let bytes = decode(body)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Standard base64 with padding.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |i: u32| char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]);
        out.push(sextet(0));
        out.push(sextet(1));
        out.push(if chunk.len() > 1 { sextet(2) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(3) } else { '=' });
    }
    out
}

/// Decodes standard base64, ignoring ASCII whitespace; padding is optional.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut padding = 0usize;
    for (i, &c) in text.iter().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding += 1;
                continue;
            }
            c if c.is_ascii_whitespace() => continue,
            _ => return Err(format!("invalid base64 byte {c:#04x} at offset {i}")),
        };
        if padding > 0 {
            return Err(format!("base64 data after padding at offset {i}"));
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 || padding > 2 {
        return Err("truncated base64 data".to_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors_and_round_trip() {
        for (plain, coded) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain), coded);
            assert_eq!(decode(coded.as_bytes()).unwrap(), plain);
        }
        let bytes: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let text = armor("job_1", &bytes);
        assert!(text.starts_with("pymw-input-base64 job_1\n"));
        assert!(
            text.lines()
                .all(|l| l.len() <= 76 || l.starts_with(ARMOR_HEADER))
        );
        assert_eq!(dearmor(text.as_bytes(), 1000).unwrap(), bytes);
        assert!(dearmor(text.as_bytes(), 10).is_err());
        assert!(decode(b"Zm9v!").is_err());
        assert!(decode(b"Zg==Zg").is_err());
        assert!(decode(b"Z").is_err());
        assert!(!is_armored(b"pymw-input-base64x"));
        assert!(is_armored(b"pymw-input-base64\nZg=="));
    }
}
