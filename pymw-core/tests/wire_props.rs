//! Property tests of the wire format: envelopes and pipe frames round-trip,
//! and decoding hostile bytes gives an error, never a panic, a wrong value or
//! a large allocation.

use proptest::collection::vec;
use proptest::prelude::*;
use pymw_core::wire::frame::{self, Hello, Request};
use pymw_core::wire::{
    self, FORMAT_VERSION, Failure, HEADER_LEN, INPUT_MAGIC, InputBody, OUTPUT_MAGIC, Outcome,
    OutputBody, WireError, WorkerStats,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

// ---------------------------------------------------------------------------
// The largest single allocation made by the current thread, so that tests can
// check that a declared length never turns into an allocation.

struct PeakAlloc;

thread_local! {
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = PEAK.try_with(|peak| peak.set(peak.get().max(size)));
}

// SAFETY: forwards every call to `System` unchanged; only records sizes.
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: PeakAlloc = PeakAlloc;

/// Runs `f` and returns its result with the largest allocation it made.
fn peak_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    PEAK.with(|peak| peak.set(0));
    let value = f();
    (value, PEAK.with(Cell::get))
}

// ---------------------------------------------------------------------------
// Strategies. Bodies borrow, so strategies make owned data and the tests
// borrow from it.

fn any_failure() -> impl Strategy<Value = Failure> {
    prop_oneof![
        any::<String>().prop_map(|message| Failure::TaskError { message }),
        (any::<String>(), any::<Option<String>>())
            .prop_map(|(message, location)| Failure::Panic { message, location }),
        any::<String>().prop_map(|message| Failure::Decode { message }),
        any::<String>().prop_map(|message| Failure::VersionSkew { message }),
        any::<String>().prop_map(|name| Failure::UnknownTask { name }),
    ]
}

fn any_stats() -> impl Strategy<Value = WorkerStats> {
    (
        any::<u64>(),
        any::<Option<u64>>(),
        any::<u64>(),
        any::<String>(),
    )
        .prop_map(|(wall_ns, cpu_ns, peak_rss_kib, host)| WorkerStats {
            wall_ns,
            cpu_ns,
            peak_rss_kib,
            host,
        })
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..200)
}

/// An owned output body: `Err` is a failure, `Ok` the value bytes.
#[derive(Debug, Clone)]
struct OwnedOutput {
    task: String,
    fingerprint: u64,
    outcome: Result<Vec<u8>, Failure>,
    stats: WorkerStats,
}

impl OwnedOutput {
    fn body(&self) -> OutputBody<'_> {
        OutputBody {
            task: &self.task,
            fingerprint: self.fingerprint,
            outcome: match &self.outcome {
                Ok(value) => Outcome::Ok(value),
                Err(failure) => Outcome::Failed(failure.clone()),
            },
            stats: self.stats.clone(),
        }
    }
}

fn any_output() -> impl Strategy<Value = OwnedOutput> {
    (
        any::<String>(),
        any::<u64>(),
        prop_oneof![payload().prop_map(Ok), any_failure().prop_map(Err)],
        any_stats(),
    )
        .prop_map(|(task, fingerprint, outcome, stats)| OwnedOutput {
            task,
            fingerprint,
            outcome,
            stats,
        })
}

fn input_bytes(task: &str, fingerprint: u64, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    wire::encode_input(
        &InputBody {
            task,
            fingerprint,
            payload,
        },
        &mut bytes,
    );
    bytes
}

fn output_bytes(output: &OwnedOutput) -> Vec<u8> {
    let mut bytes = Vec::new();
    wire::encode_output(&output.body(), &mut bytes);
    bytes
}

/// An envelope with a valid header (magic, version, length, checksum) around
/// arbitrary body bytes, so that the postcard decoder sees hostile input.
fn envelope_around(magic: [u8; 8], body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
    bytes.extend_from_slice(&magic);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32(body).to_le_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// CRC-32 (IEEE), bitwise, written from the spec rather than taken from the
/// crate under test.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Feeds `buf` through `split_frame` as a reader would, parsing every frame
/// it accepts; returns how many frames were accepted.
fn drain_frames(mut buf: &[u8], limit: u64, head: usize) -> usize {
    let mut frames = 0;
    while let Ok(Some((bytes, used))) = frame::split_frame(buf, limit, head) {
        assert!(used <= buf.len() && used == 4 + bytes.len());
        if head == frame::REQUEST_HEAD {
            let request = frame::parse_request(bytes);
            assert_eq!(request.payload.len(), bytes.len() - frame::REQUEST_HEAD);
        } else {
            let reply = frame::parse_reply(bytes);
            let _ = reply.outcome();
            let _ = reply.stats("h");
        }
        buf = &buf[used..];
        frames += 1;
    }
    frames
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Round trips.

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn input_envelope_round_trips(
        task in any::<String>(),
        fingerprint in any::<u64>(),
        payload in payload(),
    ) {
        let bytes = input_bytes(&task, fingerprint, &payload);
        let body = wire::decode_input(&bytes).unwrap();
        prop_assert_eq!(&body, &InputBody { task: &task, fingerprint, payload: &payload });
        // Appended to a buffer that already holds something, it is the same envelope.
        let mut appended = vec![7; 3];
        wire::encode_input(&body, &mut appended);
        prop_assert_eq!(&appended[3..], &bytes[..]);
    }

    #[test]
    fn output_envelope_round_trips(output in any_output()) {
        let bytes = output_bytes(&output);
        prop_assert_eq!(wire::decode_output(&bytes).unwrap(), output.body());
        // The two kinds never decode as each other.
        let is_bad_magic = matches!(wire::decode_input(&bytes), Err(WireError::BadMagic { .. }));
        prop_assert!(is_bad_magic);
    }

    #[test]
    fn request_frames_round_trip(
        requests in vec((any::<u64>(), any::<u32>(), payload()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = Vec::new();
        for (key, index, payload) in &requests {
            frame::push_request(&mut buf, *key, *index, payload);
        }
        let mut rest = &buf[..];
        for (key, index, payload) in &requests {
            let (bytes, used) = frame::split_frame(rest, 1 << 20, frame::REQUEST_HEAD)
                .unwrap()
                .unwrap();
            prop_assert_eq!(
                frame::parse_request(bytes),
                Request { key: *key, task_index: *index, payload }
            );
            rest = &rest[used..];
        }
        prop_assert!(rest.is_empty());
        // A torn first frame asks for more bytes.
        let first = 4 + frame::REQUEST_HEAD + requests[0].2.len();
        let torn = &buf[..cut.index(first)];
        prop_assert_eq!(frame::split_frame(torn, 1 << 20, frame::REQUEST_HEAD), Ok(None));
    }

    #[test]
    fn reply_frames_round_trip(
        key in any::<u64>(),
        wall_ns in any::<u64>(),
        // u64::MAX on the wire means "not measured".
        cpu_ns in prop::option::of(0..u64::MAX),
        peak_rss_kib in any::<u64>(),
        outcome in prop_oneof![payload().prop_map(Ok), any_failure().prop_map(Err)],
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = Vec::new();
        let (status, body) = match &outcome {
            Ok(value) => (frame::STATUS_OK, value.clone()),
            Err(failure) => (frame::STATUS_FAILED, postcard::to_stdvec(failure).unwrap()),
        };
        let at = frame::begin_reply(&mut buf, key, status, wall_ns, cpu_ns, peak_rss_kib);
        buf.extend_from_slice(&body);
        frame::finish_reply(&mut buf, at);

        let (bytes, used) = frame::split_frame(&buf, 1 << 20, frame::REPLY_HEAD).unwrap().unwrap();
        prop_assert_eq!(used, buf.len());
        let reply = frame::parse_reply(bytes);
        prop_assert_eq!(reply.key, key);
        prop_assert_eq!(reply.status, status);
        prop_assert_eq!(reply.body, &body[..]);
        prop_assert_eq!(
            reply.stats("host"),
            WorkerStats { wall_ns, cpu_ns, peak_rss_kib, host: "host".into() }
        );
        prop_assert_eq!(reply.outcome().map(<[u8]>::to_vec), outcome);
        let torn = &buf[..cut.index(buf.len())];
        prop_assert_eq!(frame::split_frame(torn, 1 << 20, frame::REPLY_HEAD), Ok(None));
    }

    #[test]
    fn hello_round_trips(
        format_version in any::<u16>(),
        pid in any::<u32>(),
        host in any::<String>(),
        tasks in vec((any::<String>(), any::<u64>()), 0..8),
    ) {
        let hello = Hello { format_version, pid, host, tasks };
        let bytes = frame::encode_hello(&hello);
        prop_assert_eq!(&bytes[..8], &frame::HELLO_MAGIC[..]);
        let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        prop_assert_eq!(len, bytes.len() - 12);
        prop_assert_eq!(frame::decode_hello(&bytes[12..]).unwrap(), hello);
    }
}

/// Hands out `data` in reads of the given sizes (cycled), as a pipe does.
struct Chunks<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl std::io::Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let size = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// A `FrameReader` fed in arbitrary chunks yields the frames that
    /// `split_frame` finds in the whole stream, and stops where it stops.
    #[test]
    fn frame_reader_agrees_with_split_frame(
        requests in vec((any::<u64>(), any::<u32>(), vec(any::<u8>(), 0..3000)), 0..6),
        garbage in vec(any::<u8>(), 0..40),
        sizes in vec(1..5000usize, 1..8),
        capacity in 0..200usize,
    ) {
        let mut buf = Vec::new();
        for (key, index, payload) in &requests {
            frame::push_request(&mut buf, *key, *index, payload);
        }
        buf.extend_from_slice(&garbage);
        let limit = 1 << 16;

        let mut expected = Vec::new();
        let mut rest = &buf[..];
        let expected_end = loop {
            match frame::split_frame(rest, limit, frame::REQUEST_HEAD) {
                Ok(Some((bytes, used))) => {
                    expected.push(bytes.to_vec());
                    rest = &rest[used..];
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        prop_assert!(expected.len() >= requests.len());

        let mut source = Chunks { data: &buf, sizes, next: 0 };
        let mut reader = frame::FrameReader::new(capacity);
        let mut streamed = Vec::new();
        let streamed_end = loop {
            match frame::split_frame(reader.data(), limit, frame::REQUEST_HEAD) {
                Ok(Some((bytes, used))) => {
                    streamed.push(bytes.to_vec());
                    reader.consume(used);
                }
                Ok(None) => {
                    if reader.fill(&mut source).unwrap() == 0 {
                        break Ok(());
                    }
                }
                Err(e) => break Err(e),
            }
        };
        prop_assert_eq!(streamed, expected);
        prop_assert_eq!(streamed_end, expected_end);
    }
}

// ---------------------------------------------------------------------------
// Hostile bytes: errors, never panics, never a wrong value.

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..300)) {
        let _ = wire::decode_input(&bytes);
        let _ = wire::decode_output(&bytes);
        let _ = frame::decode_hello(&bytes);
        drain_frames(&bytes, 1 << 16, frame::REQUEST_HEAD);
        drain_frames(&bytes, 1 << 16, frame::REPLY_HEAD);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_magic_never_panic(
        rest in vec(any::<u8>(), 0..64),
        output in any::<bool>(),
    ) {
        let mut bytes = if output { OUTPUT_MAGIC.to_vec() } else { INPUT_MAGIC.to_vec() };
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&rest);
        let _ = wire::decode_input(&bytes);
        let _ = wire::decode_output(&bytes);
    }

    /// Past the checksum, the body decoder sees hostile bytes; whatever it
    /// accepts must re-encode to an envelope that decodes to the same value.
    #[test]
    fn arbitrary_bodies_never_panic(body in vec(any::<u8>(), 0..200)) {
        if let Ok(input) = wire::decode_input(&envelope_around(INPUT_MAGIC, &body)) {
            let again = input_bytes(input.task, input.fingerprint, input.payload);
            prop_assert_eq!(wire::decode_input(&again).unwrap(), input);
        }
        if let Ok(output) = wire::decode_output(&envelope_around(OUTPUT_MAGIC, &body)) {
            let mut again = Vec::new();
            wire::encode_output(&output, &mut again);
            prop_assert_eq!(wire::decode_output(&again).unwrap(), output);
        }
    }

    /// A corrupted body with a matching checksum (a bug or a forger, not the
    /// network) still decodes to an error or to a value that round-trips.
    #[test]
    fn corrupted_bodies_with_a_fixed_checksum_never_panic(
        output in any_output(),
        at in any::<prop::sample::Index>(),
        flip in 1..=u8::MAX,
    ) {
        let bytes = output_bytes(&output);
        let mut body = bytes[HEADER_LEN..].to_vec();
        let at = at.index(body.len());
        body[at] ^= flip;
        if let Ok(decoded) = wire::decode_output(&envelope_around(OUTPUT_MAGIC, &body)) {
            let mut again = Vec::new();
            wire::encode_output(&decoded, &mut again);
            prop_assert_eq!(wire::decode_output(&again).unwrap(), decoded);
        }
    }

    #[test]
    fn any_byte_flip_of_an_input_envelope_is_an_error(
        task in any::<String>(),
        fingerprint in any::<u64>(),
        payload in payload(),
        at in any::<prop::sample::Index>(),
        flip in 1..=u8::MAX,
    ) {
        let mut bytes = input_bytes(&task, fingerprint, &payload);
        let at = at.index(bytes.len());
        bytes[at] ^= flip;
        prop_assert!(wire::decode_input(&bytes).is_err(), "flip {flip:#04x} at {at} decoded");
    }

    #[test]
    fn any_byte_flip_of_an_output_envelope_is_an_error(
        output in any_output(),
        at in any::<prop::sample::Index>(),
        flip in 1..=u8::MAX,
    ) {
        let mut bytes = output_bytes(&output);
        let at = at.index(bytes.len());
        bytes[at] ^= flip;
        prop_assert!(wire::decode_output(&bytes).is_err(), "flip {flip:#04x} at {at} decoded");
    }

    #[test]
    fn truncated_or_extended_envelopes_are_errors(
        output in any_output(),
        cut in any::<prop::sample::Index>(),
        extra in vec(any::<u8>(), 1..8),
    ) {
        let bytes = output_bytes(&output);
        let cut = cut.index(bytes.len());
        prop_assert!(wire::decode_output(&bytes[..cut]).is_err(), "prefix of {cut} bytes decoded");
        let mut longer = bytes.clone();
        longer.extend_from_slice(&extra);
        prop_assert_eq!(
            wire::decode_output(&longer).map(|_| ()),
            Err(WireError::TrailingBytes(extra.len() as u64))
        );

        let input = input_bytes(&output.task, output.fingerprint, &[]);
        let cut = cut.min(input.len() - 1);
        prop_assert!(wire::decode_input(&input[..cut]).is_err(), "prefix of {cut} bytes decoded");
    }
}

// ---------------------------------------------------------------------------
// Declared lengths are checked before anything is allocated.

/// Generous bound for the bookkeeping of an error value (its message).
const SMALL: usize = 4096;

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn huge_declared_body_length_is_refused_without_allocating(
        declared in (1u64 << 20)..=u64::MAX,
        payload in payload(),
    ) {
        let mut bytes = input_bytes("t", 1, &payload);
        bytes[10..18].copy_from_slice(&declared.to_le_bytes());
        let (result, peak) = peak_allocation(|| wire::decode_input_with_limit(&bytes, 1 << 20));
        prop_assert_eq!(
            result.map(|_| ()),
            Err(WireError::TooLarge { declared, limit: 1 << 20 })
        );
        prop_assert!(peak <= SMALL, "allocated {peak} bytes");
        // With no limit at all, the short input is reported truncated, still
        // without allocating for the declared length.
        let (result, peak) = peak_allocation(|| wire::decode_input_with_limit(&bytes, u64::MAX));
        let is_truncated = matches!(result, Err(WireError::Truncated { .. }));
        prop_assert!(is_truncated);
        prop_assert!(peak <= SMALL, "allocated {peak} bytes");
    }

    #[test]
    fn huge_declared_frame_length_is_refused_without_allocating(
        declared in (1u32 << 16)..=u32::MAX,
        rest in vec(any::<u8>(), 0..64),
    ) {
        let mut buf = declared.to_le_bytes().to_vec();
        buf.extend_from_slice(&rest);
        let (result, peak) = peak_allocation(|| {
            frame::split_frame(&buf, 1 << 16, frame::REPLY_HEAD).map(|f| f.is_some())
        });
        prop_assert_eq!(
            result,
            Err(WireError::TooLarge { declared: u64::from(declared), limit: 1 << 16 })
        );
        prop_assert!(peak <= SMALL, "allocated {peak} bytes");
        // Under a limit it accepts, the frame is incomplete: wait for more bytes.
        let (result, peak) = peak_allocation(|| {
            frame::split_frame(&buf, u64::MAX, frame::REPLY_HEAD).map(|f| f.is_some())
        });
        prop_assert_eq!(result, Ok(false));
        prop_assert!(peak <= SMALL, "allocated {peak} bytes");
    }

    /// Strings and byte strings inside a body are bounded by the bytes present.
    #[test]
    fn huge_declared_inner_lengths_do_not_allocate(varint in vec(0x80u8..=0xff, 1..10)) {
        // A task name whose declared length is as large as the varint allows.
        let mut body = varint;
        body.push(0x01);
        let bytes = envelope_around(OUTPUT_MAGIC, &body);
        let (result, peak) = peak_allocation(|| wire::decode_output(&bytes).map(|_| ()));
        let is_malformed = matches!(result, Err(WireError::Malformed(_)));
        prop_assert!(is_malformed);
        prop_assert!(peak <= SMALL, "allocated {peak} bytes");
    }
}

#[test]
fn the_allocation_probe_sees_allocations() {
    let (buffer, peak) = peak_allocation(|| vec![0u8; 100_000]);
    assert_eq!(buffer.len(), 100_000);
    assert!(peak >= 100_000, "{peak}");
}

#[test]
fn hello_with_a_huge_declared_task_count_allocates_at_most_a_bounded_amount() {
    // format_version 1, pid 1, empty host, then 2^63 tasks.
    let mut bytes = vec![1, 1, 0];
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    let (result, peak) = peak_allocation(|| frame::decode_hello(&bytes));
    assert!(matches!(result, Err(WireError::Malformed(_))), "{result:?}");
    // serde caps a sequence's preallocation at 1 MiB, whatever it declares.
    assert!(peak <= (1 << 20) + SMALL, "allocated {peak} bytes");
}
