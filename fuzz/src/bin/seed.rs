//! Writes a few valid envelopes and frames into `CORPUS/<target>/`, the
//! starting points the fuzzer mutates. Usage: `seed CORPUS`.

// The sanitizer-coverage callbacks of the instrumented build live in libFuzzer.
extern crate libfuzzer_sys;

use pymw_core::wire::frame::{self, Hello};
use pymw_core::wire::{self, Failure, InputBody, Outcome, OutputBody, WorkerStats};
use std::path::Path;

fn failures() -> Vec<Failure> {
    vec![
        Failure::TaskError {
            message: "negative input".into(),
        },
        Failure::Panic {
            message: "index out of bounds".into(),
            location: Some("src/main.rs:3:5".into()),
        },
        Failure::Panic {
            message: "boom".into(),
            location: None,
        },
        Failure::Decode {
            message: "unexpected end of input".into(),
        },
        Failure::VersionSkew {
            message: "fingerprint differs".into(),
        },
        Failure::UnknownTask {
            name: "demo::cube".into(),
        },
    ]
}

fn stats(cpu_ns: Option<u64>) -> WorkerStats {
    WorkerStats {
        wall_ns: 1_234_567,
        cpu_ns,
        peak_rss_kib: 4096,
        host: "worker-7.example.org".into(),
    }
}

fn inputs() -> Vec<Vec<u8>> {
    let payloads: [&[u8]; 3] = [&[], &[7], &[0x80, 0x01, 3, b'a', b'b', b'c']];
    payloads
        .iter()
        .enumerate()
        .map(|(i, payload)| {
            let mut bytes = Vec::new();
            wire::encode_input(
                &InputBody {
                    task: "demo::square",
                    fingerprint: 0x0123_4567_89ab_cdef ^ i as u64,
                    payload,
                },
                &mut bytes,
            );
            bytes
        })
        .collect()
}

fn outputs() -> Vec<Vec<u8>> {
    let mut outcomes = vec![Outcome::Ok(&[49][..]), Outcome::Ok(&[])];
    outcomes.extend(failures().into_iter().map(Outcome::Failed));
    outcomes
        .into_iter()
        .enumerate()
        .map(|(i, outcome)| {
            let mut bytes = Vec::new();
            wire::encode_output(
                &OutputBody {
                    task: "demo::square",
                    fingerprint: 42,
                    outcome,
                    stats: stats((i % 2 == 0).then_some(999)),
                },
                &mut bytes,
            );
            bytes
        })
        .collect()
}

fn frames() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    let mut requests = Vec::new();
    frame::push_request(&mut requests, 1, 0, &[7]);
    frame::push_request(&mut requests, 2, 3, &[1, 2, 3]);
    seeds.push(requests);
    let mut replies = Vec::new();
    let at = frame::begin_reply(&mut replies, 1, frame::STATUS_OK, 10, Some(9), 4096);
    replies.push(49);
    frame::finish_reply(&mut replies, at);
    for failure in failures() {
        let at = frame::begin_reply(&mut replies, 2, frame::STATUS_FAILED, 10, None, 4096);
        replies.extend(postcard_failure(&failure));
        frame::finish_reply(&mut replies, at);
    }
    seeds.push(replies);
    let hello = frame::encode_hello(&Hello {
        format_version: wire::FORMAT_VERSION,
        pid: 4242,
        host: "worker-7".into(),
        tasks: vec![("demo::cube".into(), 1), ("demo::square".into(), 42)],
    });
    seeds.push(hello[12..].to_vec());
    seeds.push(hello);
    seeds
}

/// A failure as a reply body carries it.
fn postcard_failure(failure: &Failure) -> Vec<u8> {
    postcard::to_stdvec(failure).expect("postcard into Vec is infallible")
}

/// Each envelope twice: whole (decoded as it is) and as a body to wrap in a
/// valid header (see `pymw_fuzz::envelope`).
fn envelope_seeds(envelopes: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for envelope in envelopes {
        seeds.push([&[pymw_fuzz::WRAP][..], &envelope[wire::HEADER_LEN..]].concat());
        seeds.push([&[pymw_fuzz::RAW][..], &envelope].concat());
    }
    seeds
}

fn write_all(dir: &Path, seeds: &[Vec<u8>]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), seed)?;
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let Some(corpus) = std::env::args_os().nth(1) else {
        eprintln!("usage: seed CORPUS_DIR");
        std::process::exit(2);
    };
    let corpus = Path::new(&corpus);
    write_all(&corpus.join("fuzz_decode_input"), &envelope_seeds(inputs()))?;
    write_all(
        &corpus.join("fuzz_decode_output"),
        &envelope_seeds(outputs()),
    )?;
    write_all(&corpus.join("fuzz_frames"), &frames())?;
    Ok(())
}
